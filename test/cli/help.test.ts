/** The conventions every subcommand shares: --help, --version, short flags, "-", --model, one-line usage errors. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, jsonLines, ROOT, runCli } from "../helpers/cli.js";

const COMMANDS = ["score", "serve", "rank", "merge", "tokenize", "inspect", "convert", "demo", "verify", "trace"];
const SMALL = join(FIXTURES, "models", "f16-8head");
const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-help-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("help and conventions", () => {
  it.each(COMMANDS)("%s --help and -h print usage, options with defaults and an example, exit 0", (command) => {
    for (const flag of ["--help", "-h"]) {
      const r = runCli([command, flag]);
      expect(r.status).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^usage: gpt2-reward ${command} `));
      expect(r.stdout).toMatch(/\noptions:\n/);
      expect(r.stdout).toMatch(/-h, --help/);
      expect(r.stdout).toMatch(new RegExp(`\\nexamples?:\\n  gpt2-reward ${command}`));
      // inspect's options (--model, --json) have no default to show; every other command has some.
      if (command !== "inspect") expect(r.stdout).toMatch(/ \(default: [^)]+\)\n/);
    }
  });

  it("--help wins over other mistakes on the same line", () => {
    const r = runCli(["score", "--frobnicate", "--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: gpt2-reward score/);
  });

  it("lists the commands on --help, and on no command (to stderr, exit 2)", () => {
    const help = runCli(["--help"]);
    expect(help.status).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toMatch(new RegExp(`\\n  ${c} `));
    const none = runCli([]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/^usage: gpt2-reward COMMAND/);
  });

  it("prints the package version for --version, alone or after a command", () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    for (const args of [["--version"], ["-V"], ["score", "--version"], ["inspect", "--version"]]) {
      const r = runCli(args);
      expect(r.status, args.join(" ")).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  it.each(COMMANDS)("%s answers an unknown option with one line pointing to its --help, exit 2", (command) => {
    const r = runCli([command, "--frobnicate"]);
    expect([r.status, r.stdout, r.stderr]).toEqual([2, "", `gpt2-reward: ${command}: unknown option --frobnicate; see gpt2-reward ${command} --help\n`]);
  });

  it("answers every other command-line mistake with one line pointing to the command's --help, exit 2", () => {
    const cases: [string[], string][] = [
      [["score", "-m", SMALL, "--batch-size", "0", "hi"], 'gpt2-reward: --batch-size must be a positive integer, got "0"; see gpt2-reward score --help\n'],
      [["convert", SMALL], "gpt2-reward: convert takes MODEL and one OUT.safetensors; see gpt2-reward convert --help\n"],
      [["rank", "-m", SMALL, "-c", "hi"], "gpt2-reward: --context needs at least one REPLY argument; see gpt2-reward rank --help\n"],
      [["merge"], "gpt2-reward: merge needs the shard outputs to merge; see gpt2-reward merge --help\n"],
      [["verify", "-m", SMALL], "gpt2-reward: verify needs --model and --golden; see gpt2-reward verify --help\n"],
      [["verify", "-m", SMALL, "-g", "x.json", "--kernels", "ref", "-t", "2"], "gpt2-reward: --kernels ref runs on one thread (the plain reference loops), got --threads 2; see gpt2-reward verify --help\n"],
      [["serve", "-m", SMALL, "--port", "http"], 'gpt2-reward: --port must be an integer from 0 to 65535, got "http"; see gpt2-reward serve --help\n'],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect([r.status, r.stdout, r.stderr], args.join(" ")).toEqual([2, "", message]);
    }
  });

  it("answers an unknown option or a missing value with one line pointing to --help, exit 2", () => {
    const cases: [string[], RegExp][] = [
      [["score", "--frobnicate"], /^gpt2-reward: score: unknown option --frobnicate; see gpt2-reward score --help\n$/],
      [["inspect", SMALL, "-x"], /^gpt2-reward: inspect: unknown option -x; see gpt2-reward inspect --help\n$/],
      [["score", "-m"], /^gpt2-reward: score: -m, --model needs a value; see gpt2-reward score --help\n$/],
      [["score", "--model", SMALL, "--input", "-q"], /^gpt2-reward: score: --input needs a value \(to give one that starts with "-", write --input=-\.\.\.\)/],
      [["inspect", "--json=yes", SMALL], /^gpt2-reward: inspect: option '--json' does not take an argument; see gpt2-reward inspect --help\n$/],
      [["frobnicate"], /^gpt2-reward: unknown command "frobnicate"; see gpt2-reward --help\n$/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
  });

  it("takes short flags for the common options, and - for standard input and output", () => {
    const long = runCli(["score", "--model", SMALL, "--max-length", "4", "--batch-size", "2", "--threads", "1", "hello there, how are you"]);
    const short = runCli(["score", "-m", SMALL, "-l", "4", "-b", "2", "-t", "1", "-o", "-", "-i", "-"], JSON.stringify({ text: "hello there, how are you" }) + "\n");
    expect(short.status).toBe(0);
    expect(short.stdout).toBe(long.stdout);
    expect(jsonLines(short.stdout)[0]).toMatchObject({ index: 0, tokens: 4, truncated: true });
  });

  it("takes - as standard input for rank and tokenize, and as standard output for merge", () => {
    const rankArgs = ["rank", "-m", SMALL, "-t", "1", "-c", "User: hi\nBot:", " hello", " go away"];
    const [direct] = jsonLines(runCli(rankArgs).stdout);
    const ranked = runCli(["rank", "-m", SMALL, "-t", "1", "-i", "-"], JSON.stringify({ context: "User: hi\nBot:", replies: [" hello", " go away"] }) + "\n");
    expect(jsonLines(ranked.stdout)).toEqual([direct]);
    expect(runCli(["tokenize", "-i", "-"], "{\"text\": \"hi there\"}\n").stdout).toBe(runCli(["tokenize", "hi there"]).stdout);
    const input = join(tmp, "merge-in.jsonl");
    writeFileSync(input, ["a", "b", "c"].map((text) => JSON.stringify({ text })).join("\n") + "\n");
    const parts = [0, 1].map((i) => join(tmp, `merge-part-${i}.jsonl`));
    parts.forEach((part, i) => expect(runCli(["score", "-q", "-m", SMALL, "-t", "1", "-i", input, "-o", part, "--shard", `${i}/2`]).status).toBe(0));
    const merged = runCli(["merge", "-o", "-", ...parts]);
    expect(merged.status, merged.stderr).toBe(0);
    expect(merged.stdout).toBe(runCli(["score", "-q", "-m", SMALL, "-t", "1", "-i", input]).stdout);
  });

  it("takes the model as --model or, for inspect and convert, positionally", () => {
    const positional = runCli(["inspect", SMALL, "--json"]);
    expect(positional.status).toBe(0);
    expect(runCli(["inspect", "--json", "--model", SMALL]).stdout).toBe(positional.stdout);
    const a = join(tmp, "a", "model.safetensors");
    const b = join(tmp, "b", "model.safetensors");
    mkdirSync(join(tmp, "a"));
    mkdirSync(join(tmp, "b"));
    for (const args of [["convert", SMALL, a], ["convert", "--model", SMALL, "-o", b]]) {
      const r = runCli(args);
      expect(r.status, r.stderr).toBe(0);
    }
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
  });

  it("reads dtype names as torch and HF write them, in one parser for score and convert", () => {
    const f16 = runCli(["score", "-m", SMALL, "--dtype", "f16", "-t", "1", "hello"]);
    for (const name of ["half", "float16", "torch.float16", "FP16"]) expect(runCli(["score", "-m", SMALL, "--dtype", name, "-t", "1", "hello"]).stdout, name).toBe(f16.stdout);
    mkdirSync(join(tmp, "bf"));
    const out = join(tmp, "bf", "model.safetensors");
    expect(runCli(["convert", SMALL, out, "--dtype", "bfloat16"]).status).toBe(0);
    expect(runCli(["inspect", out]).stdout).toMatch(/wte\.weight\s+BF16/);
    const bad = runCli(["convert", SMALL, join(tmp, "x.safetensors"), "--dtype", "f8"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('gpt2-reward: --dtype must be f32|f16|bf16 (or float32, fp16, float16, half, bfloat16, ...), got "f8"; see gpt2-reward convert --help\n');
  });
});
