/** The conventions every subcommand shares: --help, --version, short flags, "-", --model, one-line usage errors. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, jsonLines, ROOT, runCli } from "../helpers/cli.js";

const COMMANDS = ["score", "rank", "tokenize", "inspect", "convert", "demo", "verify", "trace"];
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
    expect(bad.stderr).toBe('gpt2-reward: --dtype must be f32|f16|bf16 (or float32, fp16, float16, half, bfloat16, ...), got "f8"\n');
  });
});
