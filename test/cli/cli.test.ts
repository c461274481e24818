/** The gpt2-reward command as a user runs it: output format, exit codes, errors, long jobs. */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RewardModel } from "../../src/model/async-model.js";
import { spawnSync } from "node:child_process";
import { CLI, FIXTURES, jsonLines, runCli, startCli } from "../helpers/cli.js";
import { filesFromFolder, startFakeHub } from "../helpers/fake-hub.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const BIN = join(FIXTURES, "models", "f16-8head-bin");
const texts: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8"));
const made: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-cli-"));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe("score", () => {
  it("prints one JSON line per TEXT argument with logits, token count and truncation", () => {
    const r = runCli(["score", "--model", SMALL, "User: hi\nBot: hello", texts[60]]);
    expect(r.status).toBe(0);
    const out = jsonLines(r.stdout);
    expect(out.map((o) => o.index)).toEqual([0, 1]);
    expect(out[0]).toMatchObject({ tokens: 7, truncated: false });
    expect(out[1]).toMatchObject({ tokens: 256, truncated: true });
    expect((out[0].logits as number[]).length).toBe(1);
  });

  it("gives the same logits as the API", async () => {
    const model = await RewardModel.load(SMALL, { threads: 1 });
    const api = await model.score(texts.slice(0, 5));
    await model.close();
    const cli = jsonLines(runCli(["score", "--model", SMALL, ...texts.slice(0, 5)]).stdout);
    expect(cli.map((o) => o.logits)).toEqual(api.map((r) => r.logits));
  });

  it("reads JSON lines from stdin, reports bad lines in place and exits 1", () => {
    const input = [
      JSON.stringify({ text: "hello" }),
      "{not json",
      JSON.stringify({ ids: [464, 3290] }),
      JSON.stringify({ text: "" }),
      JSON.stringify({ ids: [1, 50257] }),
      JSON.stringify({ foo: 1 }),
      JSON.stringify({ text: "bye" }),
    ].join("\n");
    const r = runCli(["score", "--model", SMALL, "--batch-size", "2"], input);
    expect(r.status).toBe(1);
    const out = jsonLines(r.stdout);
    expect(out.map((o) => o.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(out.map((o) => ("error" in o ? "error" : "ok"))).toEqual(["ok", "error", "ok", "error", "error", "error", "ok"]);
    expect(out[3].error).toMatch(/empty text/);
    expect(out[4].error).toMatch(/50257 is outside the vocabulary/);
    // Nothing but JSON on stdout; on stderr no progress (not a terminal), only the summary, which says why the status is 1.
    expect(r.stderr).toMatch(/^gpt2-reward: done: 7 line\(s\): 3 scored, 4 failed \(first at line 2: invalid JSON: [^\n]*\), 0 truncated, in [^\n]*\n$/);
  });

  it("truncates ids from the left like texts", () => {
    const ids = Array.from({ length: 300 }, (_, i) => (i * 7919) % 50000);
    const a = jsonLines(runCli(["score", "--model", SMALL, "--max-length", "16"], JSON.stringify({ ids }) + "\n").stdout)[0];
    const b = jsonLines(runCli(["score", "--model", SMALL], JSON.stringify({ ids: ids.slice(-16) }) + "\n").stdout)[0];
    expect(a).toMatchObject({ tokens: 16, truncated: true });
    expect(a.logits).toEqual(b.logits);
  });

  it("offers the older pooling rules, which differ on a literal <|endoftext|>", () => {
    const text = "hi<|endoftext|>there";
    const rules = ["last-non-pad", "before-first-pad", "non-pad-count"].map((p) => jsonLines(runCli(["score", "--model", SMALL, "--pooling", p, text]).stdout)[0].logits);
    expect(new Set(rules.map(String)).size).toBe(3);
  });

  it("scores a pytorch_model.bin folder exactly like its safetensors twin, with any thread count and kernels", () => {
    const runs = [
      ["--model", SMALL, "--threads", "1", "--kernels", "ts"],
      ["--model", BIN, "--threads", "2", "--kernels", "ts"],
      ["--model", BIN, "--threads", "1", "--kernels", "wasm"],
    ].map((a) => runCli(["score", ...a, ...texts.slice(0, 6)]));
    for (const r of runs) expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(runs[1].stdout)).toEqual(jsonLines(runs[0].stdout));
    const wasm = jsonLines(runs[2].stdout).map((o) => o.logits as number[]);
    jsonLines(runs[0].stdout).forEach((o, i) => expect(Math.abs((o.logits as number[])[0] - wasm[i][0])).toBeLessThan(2e-5));
  });

  it("reports a user mistake in one line, without a stack trace, and a non-zero exit", () => {
    const cases = [
      ["score", "--model", "/nonexistent/model", "hi"],
      ["score", "hi"],
      ["score", "--model", SMALL, "--pooling", "first", "hi"],
      ["score", "--model", SMALL, "--batch-size", "0", "hi"],
      ["score", "--model", SMALL, "--max-length", "400", "hi"], // n_positions is 320
      ["score", "--model", SMALL, "--input", "/nonexistent.jsonl"],
      ["score", "--model", SMALL, "--dtype", "f8", "hi"],
      ["score", "--model", SMALL, "--dtype", "bf16", "hi"], // stored as F16: cannot stay BF16
      ["frobnicate"],
    ];
    for (const args of cases) {
      const r = runCli(args);
      expect(r.status, args.join(" ")).not.toBe(0);
      expect(r.stdout, args.join(" ")).toBe("");
      const lines = r.stderr.trim().split("\n");
      expect(lines[0], args.join(" ")).toMatch(/^gpt2-reward: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      if (args[0] !== "frobnicate") expect(lines, args.join(" ")).toHaveLength(1);
    }
  });
});

describe("long jobs", () => {
  const makeInput = (dir: string, n: number) => {
    const lines = Array.from({ length: n }, (_, i) => (i % 997 === 5 ? "{broken" : JSON.stringify({ text: `${texts[i % texts.length].slice(0, 120)} #${i}` })));
    const file = join(dir, "in.jsonl");
    writeFileSync(file, lines.join("\n") + "\n");
    return file;
  };

  it("killed with SIGKILL mid-way and resumed, ends with one complete line per input and the logits of an uninterrupted run", async () => {
    const dir = tmp();
    const input = makeInput(dir, 20_000);
    const full = join(dir, "full.jsonl");
    const resumed = join(dir, "resumed.jsonl");
    expect(runCli(["score", "--model", SMALL, "--input", input, "--output", full]).status).toBe(1); // the broken lines

    const { child, done } = startCli(["score", "--model", SMALL, "--input", input, "--output", resumed]);
    // Kill once some output exists but well before the end.
    for (let i = 0; i < 600 && !(existsSync(resumed) && statSync(resumed).size > 20_000); i++) await new Promise((r) => setTimeout(r, 25));
    child.kill("SIGKILL");
    const killed = await done;
    expect(killed.signal).toBe("SIGKILL");
    const partial = readFileSync(resumed, "utf8");
    expect(partial.endsWith("\n")).toBe(true);
    const before = partial.split("\n").length - 1;
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(20_000);

    // Without --resume the finished work is protected.
    const refused = runCli(["score", "--model", SMALL, "--input", input, "--output", resumed]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/already holds results; use --resume/);

    const resumedRun = runCli(["score", "--model", SMALL, "--input", input, "--output", resumed, "--resume"]);
    expect(resumedRun.status).toBe(1);
    const [a, b] = [readFileSync(resumed, "utf8").split("\n"), readFileSync(full, "utf8").split("\n")];
    expect(a.length).toBe(b.length);
    a.forEach((line, i) => expect(line, `line ${i} (killed after ${before} lines)`).toBe(b[i]));
    // The summary counts this run's lines and says how many the killed run had written.
    const n = (k: number) => k.toLocaleString("en-US");
    expect(resumedRun.stderr).toMatch(new RegExp(`^gpt2-reward: done: ${n(20_000 - before)} line\\(s\\): .*; ${n(before)} line\\(s\\) were already in the output \\(--resume\\)\\n$`));
    // Resuming a finished job scores nothing and says why.
    const again = runCli(["score", "--model", SMALL, "--input", input, "--output", resumed, "--resume"]);
    expect(again.stderr).toMatch(new RegExp(`^gpt2-reward: done: 0 line\\(s\\): .*; ${n(20_000)} line\\(s\\) were already in the output \\(--resume\\)\\n$`));
  });

  it("answers each line typed at it without waiting for a full window or the end of the input", async () => {
    const { child, done } = startCli(["score", "--model", SMALL]);
    let seen = "";
    child.stdout.on("data", (d) => (seen += d));
    const lineCount = () => seen.split("\n").filter((l) => l).length;
    const until = async (n: number) => {
      for (let waited = 0; lineCount() < n; waited += 20) {
        if (waited > 20_000) throw new Error(`no answer to line ${n} after 20 s; stdout so far: ${seen}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    child.stdin.write(JSON.stringify({ text: "first" }) + "\n");
    await until(1);
    child.stdin.write(JSON.stringify({ text: "second" }) + "\n" + JSON.stringify({ text: "third" }) + "\n");
    await until(3);
    child.stdin.end();
    const r = await done;
    expect(r.code).toBe(0);
    expect(jsonLines(r.stdout).map((o) => o.index)).toEqual([0, 1, 2]);
  });

  it("on Ctrl-C (SIGINT) writes the lines it has read and exits 130", async () => {
    const dir = tmp();
    const out = join(dir, "out.jsonl");
    const { child, done } = startCli(["score", "--model", SMALL, "--output", out, "--batch-size", "4"]);
    for (let i = 0; i < 10; i++) child.stdin.write(JSON.stringify({ text: `line ${i}` }) + "\n");
    // stdin stays open: once the ten lines are written, the job is waiting for more input.
    for (let t = 0; t < 600 && !(existsSync(out) && readFileSync(out, "utf8").split("\n").length > 10); t++) await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGINT");
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    expect(jsonLines(readFileSync(out, "utf8")).map((o) => o.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe("verify", () => {
  const golden = join(FIXTURES, "golden", "f16-8head.json");

  it("passes on the fixture with either kernel set, thread count and weight dtype, and fails on a golden one logit off", () => {
    for (const [kernels, threads, dtype] of [["ts", "1", "f32"], ["wasm", "2", "f32"], ["wasm", "2", "f16"], ["ts", "1", "f16"]]) {
      const r = runCli(["verify", "--model", SMALL, "--golden", golden, "--kernels", kernels, "--threads", threads, "--dtype", dtype]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^OK: \d+ golden cases .* max \|logit − HF\| = \S+ \(tolerance 0\.0001\), token ids differing from HF: 0\n$/);
    }
    const g = JSON.parse(readFileSync(golden, "utf8"));
    g.singles[3].logits["non-pad-count"][0] += 1e-3;
    const bad = join(tmp(), "golden.json");
    writeFileSync(bad, JSON.stringify(g));
    const r = runCli(["verify", "--model", SMALL, "--golden", bad, "--kernels", "ts", "--threads", "1"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL: .* max \|logit − HF\| = 1\.0\de-3/);
  });
});

describe("tokenize, inspect, convert, demo", () => {
  it("tokenize prints HF's ids, with <|endoftext|> as 50256", () => {
    const r = runCli(["tokenize", "hi<|endoftext|>there"]);
    expect(r.status).toBe(0);
    expect(jsonLines(r.stdout)).toEqual([{ index: 0, ids: [5303, 50256, 8117], truncated: false }]);
  });

  it("inspect lists format, config and every tensor with dtype and shape", () => {
    const r = runCli(["inspect", BIN]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/pytorch, 33 tensors/);
    expect(r.stdout).toMatch(/transformer\.h\.1\.attn\.c_attn\.weight\s+F16\s+\[32, 96\]/);
    expect(r.stdout).toMatch(/2 layers, n_embd 32, 8 heads, n_inner 48/);
  });

  it("convert turns a pytorch_model.bin into a safetensors file that scores identically, in f32 and bf16", () => {
    const dir = tmp();
    const out = join(dir, "model.safetensors");
    const r = runCli(["convert", BIN, out, "--dtype", "f32"]);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(dir, "config.json"))).toBe(true);
    const a = runCli(["score", "--model", BIN, ...texts.slice(0, 4)]).stdout;
    const b = runCli(["score", "--model", dir, ...texts.slice(0, 4)]).stdout;
    expect(b).toBe(a); // F16 → F32 is exact, so the scores are the same bits
    const bf = join(tmp(), "m.safetensors");
    expect(runCli(["convert", dir, bf, "--dtype", "bf16"]).status).toBe(0);
    expect(runCli(["inspect", bf]).stdout).toMatch(/wte\.weight\s+BF16/);
  });

  it("demo ranks the sample conversations and says the demo weights are random", () => {
    const r = runCli(["demo"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/RANDOM weights/);
    expect(r.stdout).toMatch(/--model/);
    expect(r.stdout.match(/^\s+\d+\s+-?\d+\.\d{6}/gm)).toHaveLength(8);
  });
});

describe("memory on long inputs", () => {
  // A heap cap, not a peak-RSS difference: V8 grows its heap lazily, so RSS moves by tens of MB with GC
  // timing alone, while a cap is all-or-nothing. 300,000 parsed lines alone do not fit in 48 MB (the
  // control below shows it), so a job that held its input or its output in memory would die here.
  const LINES = 300_000;
  const HEAP_MB = 48;
  const input = (): string => {
    const file = join(tmp(), "in.jsonl");
    writeFileSync(file, Array.from({ length: LINES }, (_, i) => JSON.stringify({ ids: [1 + (i % 50000), 2, 3] })).join("\n") + "\n");
    return file;
  };
  const capped = (script: string, ...args: string[]) =>
    spawnSync(process.execPath, [`--max-old-space-size=${HEAP_MB}`, "--input-type=module", "-e", script, ...args], { encoding: "utf8" });

  it(`scores ${LINES.toLocaleString("en")} lines in a ${HEAP_MB} MB heap (input streamed, output written as it goes)`, () => {
    const file = input();
    const out = join(tmp(), "out.jsonl");
    const script = `import(${JSON.stringify(CLI)}).then(async (m) => {
      process.exitCode = await m.main(["score", "--model", ${JSON.stringify(SMALL)}, "--input", ${JSON.stringify(file)}, "--batch-size", "64", "--output", ${JSON.stringify(out)}, "--quiet"]); })`;
    const r = capped(script);
    expect(r.status, r.stderr.slice(0, 2000)).toBe(0);
    const lines = readFileSync(out, "utf8").split("\n");
    expect(lines).toHaveLength(LINES + 1);
    expect(JSON.parse(lines[LINES - 1]!).index).toBe(LINES - 1);

    // The control: the same lines merely parsed and kept exceed the cap.
    const hold = `import("node:fs").then((fs) => { const rows = fs.readFileSync(process.argv[1], "utf8").split("\\n").map((l) => l && JSON.parse(l)); console.log(rows.length); })`;
    const control = capped(hold, file);
    expect(control.status).not.toBe(0);
    expect(control.stderr).toMatch(/heap out of memory/);
  }, 180_000);
});

describe("a Hub model on the command line", () => {
  it("downloads owner/name into the HF cache, scores it, then scores it offline from the cache", async () => {
    const hub = await startFakeHub({ repos: { "ChaiML/tiny-reward": { files: filesFromFolder(BIN) } } });
    try {
      const cache = tmp();
      const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN: "", HF_HUB_OFFLINE: "" };
      const online = startCli(["score", "--model", "ChaiML/tiny-reward", ...texts.slice(0, 3)], env);
      const r1 = await online.done;
      expect(r1.code, r1.stderr).toBe(0);
      expect(existsSync(join(cache, "models--ChaiML--tiny-reward", "refs", "main"))).toBe(true);
      const local = runCli(["score", "--model", BIN, ...texts.slice(0, 3)]);
      expect(r1.stdout).toBe(local.stdout);

      const before = hub.requests.length;
      const offline = await startCli(["score", "--model", "ChaiML/tiny-reward", ...texts.slice(0, 3)], { ...env, HF_HUB_OFFLINE: "1" }).done;
      expect(offline.code, offline.stderr).toBe(0);
      expect(offline.stdout).toBe(local.stdout);
      expect(hub.requests.length).toBe(before);

      const missing = await startCli(["score", "--model", "ChaiML/other", "hi"], { ...env, HF_HUB_OFFLINE: "1" }).done;
      expect(missing.code).toBe(1);
      expect(missing.stderr.trim().split("\n")).toHaveLength(1);
      expect(missing.stderr).toMatch(/ChaiML\/other/);
    } finally {
      await hub.close();
    }
  });
});
