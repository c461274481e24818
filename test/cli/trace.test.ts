/**
 * `gpt2-reward trace` through the built CLI: the layer table, the scored token and why, --json,
 * and the bug hunt it exists for: a copied model with one block's weights perturbed is caught at
 * exactly that block, while the untouched model stays within PyTorch's tolerance at every layer.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readSafetensorsHeader } from "../../src/formats/safetensors.js";
import type { TraceReport } from "../../src/cli/trace.js";
import { encode } from "../../src/model/tokenizer.js";
import { FIXTURES, runCli } from "../helpers/cli.js";

const DEMO = join(FIXTURES, "models", "demo");
const DEMO_GOLDEN = join(FIXTURES, "golden", "demo.json");
const golden = JSON.parse(readFileSync(DEMO_GOLDEN, "utf8")) as { hidden_states: { text_index: number; ids: number[]; layers: number[][] } };
const texts = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8")) as string[];
const LAYERS = ["embeddings", ...Array.from({ length: 12 }, (_, l) => `h.${l}`), "ln_f"];

function traceJson(args: string[]): { status: number | null; report: TraceReport; stderr: string } {
  const r = runCli(["trace", "--json", "-t", "1", ...args]);
  return { status: r.status, report: r.stdout ? JSON.parse(r.stdout) : null, stderr: r.stderr };
}

describe("trace", () => {
  const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-trace-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each(["ref", "ts", "wasm"])("with %s kernels: the untouched demo model stays within 2e-5 of PyTorch at every layer (exit 0)", (kernels) => {
    const { status, report } = traceJson(["-m", DEMO, "--golden", DEMO_GOLDEN, "--kernels", kernels]);
    expect(status).toBe(0);
    expect(report.kernels).toBe(kernels);
    expect(report.layers.map((l) => l.name)).toEqual(LAYERS);
    expect(report.golden).toMatchObject({ tolerance: 2e-5, firstOutside: null, textIndex: golden.hidden_states.text_index });
    // Every layer PyTorch reports is compared; the last block's raw output is not among them.
    expect(report.layers.filter((l) => l.golden).map((l) => l.name)).toEqual(LAYERS.filter((n) => n !== "h.11"));
    for (const l of report.layers) if (l.golden) expect(l.golden.maxAbsDiff, l.name).toBeLessThanOrEqual(2e-5 * l.golden.scale);
    // Without TEXT it traced the golden file's own ids, and found their text in texts.json beside it.
    expect(report.ids).toEqual(golden.hidden_states.ids);
    expect(report.text).toBe(texts[golden.hidden_states.text_index]);
  });

  it("names exactly the perturbed block as the first layer to leave the tolerance, in a copied model", () => {
    const copy = join(tmp, "perturbed");
    mkdirSync(copy);
    copyFileSync(join(DEMO, "config.json"), join(copy, "config.json"));
    const file = join(copy, "model.safetensors");
    copyFileSync(join(DEMO, "model.safetensors"), file);
    // Scale block 3's MLP output weights by 1.01, rewriting the tensor's bytes in the copy.
    const header = readSafetensorsHeader(file);
    const entry = header.entries.get("transformer.h.3.mlp.c_proj.weight")!;
    expect(entry.dtype).toBe("F32");
    const bytes = readFileSync(file);
    const w = new Float32Array(bytes.buffer, bytes.byteOffset + header.dataStart + entry.begin, (entry.end - entry.begin) / 4);
    for (let i = 0; i < w.length; i++) w[i] *= 1.01;
    writeFileSync(file, bytes);

    const r = runCli(["trace", "-t", "1", "-m", copy, "--golden", DEMO_GOLDEN]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/first layer outside the tolerance: h\.3, max \|Δ\| /);
    const { status, report } = traceJson(["-m", copy, "--golden", DEMO_GOLDEN]);
    expect(status).toBe(1);
    expect(report.golden!.firstOutside).toBe("h.3");
    const byName = new Map(report.layers.map((l) => [l.name, l]));
    for (const name of ["embeddings", "h.0", "h.1", "h.2"]) expect(byName.get(name)!.golden!.within, name).toBe(true);
    expect(byName.get("h.3")!.golden!.within).toBe(false);
  });

  it("says which token is scored and why, with the pad id, for each pooling rule", () => {
    const text = "hi<|endoftext|>there";
    const want = { "last-non-pad": 2, "before-first-pad": 0, "non-pad-count": 1 } as const;
    for (const [pooling, position] of Object.entries(want)) {
      const { status, report } = traceJson(["-m", DEMO, "--pooling", pooling, text]);
      expect(status).toBe(0);
      expect(report.pieces).toEqual(["hi", "<|endoftext|>", "there"]);
      expect(report.scored).toMatchObject({ position, pooling, padId: 50256, id: report.ids[position] });
      expect(report.scored.why).toContain(pooling);
      expect(report.scored.why).toContain("50256");
    }
    const plain = traceJson(["-m", DEMO, "User: hi"]).report;
    expect(plain.scored.position).toBe(plain.ids.length - 1);
    expect(plain.scored.why).toMatch(/no token is the pad id 50256 .*last token/);
  });

  it("gives the logits score gives, and every step inside every block with its shape", () => {
    const text = "User: Hi there!\nBot: Hello!";
    const { report } = traceJson(["-m", DEMO, "--kernels", "ts", text]);
    const scored = JSON.parse(runCli(["score", "-t", "1", "--kernels", "ts", "-m", DEMO, text]).stdout);
    expect(report.logits).toEqual(scored.logits);
    const T = report.ids.length, C = report.config.n_embd;
    const block0 = report.steps.filter((s) => s.block === 0).map((s) => [s.step, s.shape]);
    expect(block0).toEqual([
      ["ln_1", [T, C]], ["attn.c_attn", [T, 3 * C]], ["attn", [T, C]], ["attn.c_proj", [T, C]], ["residual", [T, C]],
      ["ln_2", [T, C]], ["mlp.c_fc+gelu", [T, 4 * C]], ["mlp.c_proj", [T, C]], ["residual", [T, C]],
    ]);
    expect(report.steps).toHaveLength(12 * 9);
    // The residual step's output is the residual stream after the block.
    const last = report.steps.filter((s) => s.block === 0 && s.step === "residual")[1];
    expect(last.all).toEqual(report.layers[1].all);
  });

  it("prints the table: one row per layer, and the scored token", () => {
    const r = runCli(["trace", "-t", "1", "-m", DEMO, "User: hi"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    const rows = r.stdout.split("\n").filter((l) => /^(embeddings|h\.\d+|ln_f) /.test(l));
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(LAYERS);
    const ids = encode("User: hi");
    expect(r.stdout).toContain(`\nscored   position ${ids.length - 1}, " hi" (id ${ids[ids.length - 1]}): `);
  });

  it('reads the golden file from standard input for "-", and a texts.json beside a golden file that is not one is ignored', () => {
    const fromFile = traceJson(["-m", DEMO, "--golden", DEMO_GOLDEN]);
    const fromStdin = runCli(["trace", "--json", "-t", "1", "-m", DEMO, "--golden", "-"], readFileSync(DEMO_GOLDEN));
    expect(fromStdin.status, fromStdin.stderr).toBe(0);
    const report = JSON.parse(fromStdin.stdout) as TraceReport;
    expect(report.golden?.file).toBe("standard input");
    expect(report.layers).toEqual(fromFile.report.layers);
    const dir = join(tmp, "bad-texts");
    mkdirSync(dir);
    copyFileSync(DEMO_GOLDEN, join(dir, "demo.json"));
    writeFileSync(join(dir, "texts.json"), "{not json");
    const beside = traceJson(["-m", DEMO, "--golden", join(dir, "demo.json")]);
    expect(beside.status, beside.stderr).toBe(0);
    expect(beside.report.layers).toEqual(fromFile.report.layers);
  });

  it("refuses a TEXT that is not the golden file's, more than one TEXT, and no TEXT at all, in one line each", () => {
    const wrong = runCli(["trace", "-t", "1", "-m", DEMO, "--golden", DEMO_GOLDEN, "something else"]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/^gpt2-reward: .*demo\.json: its hidden states are for ids \[.*\], TEXT gives \[.*\]: leave TEXT out/);
    const two = runCli(["trace", "-m", DEMO, "a", "b"]);
    expect([two.status, two.stderr.trim()]).toEqual([2, "gpt2-reward: trace takes one TEXT, got 2; see gpt2-reward trace --help"]);
    const none = runCli(["trace", "-m", DEMO]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/^gpt2-reward: trace needs a TEXT/);
    const noStates = runCli(["trace", "-m", DEMO, "--golden", join(FIXTURES, "golden", "tokenizer.json")]);
    expect(noStates.status).toBe(1);
    expect(noStates.stderr).toMatch(/tokenizer\.json: no hidden_states/);
    // Golden files that are not: each one line naming the file, never a stack trace.
    const write = (name: string, text: string) => (writeFileSync(join(tmp, name), text), join(tmp, name));
    const bad: [string, string][] = [
      [write("loop.json", '{"same_as": "loop"}'), 'loop.json: "same_as" "loop" does not lead to a golden file'],
      [write("null.json", "null"), "null.json: not a golden file: expected a JSON object, got null"],
      [write("half.json", '{"hidden_states": '), "half.json: not a golden file: not JSON ("],
    ];
    const badRuns = bad.map(([file, message]) => {
      const r = runCli(["trace", "-m", DEMO, "--golden", file]);
      expect([r.status, r.stderr.includes(message)], r.stderr).toEqual([1, true]);
      return r;
    });
    for (const r of [wrong, two, none, noStates, ...badRuns]) expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(1);
  });
});
