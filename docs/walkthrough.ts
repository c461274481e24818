/**
 * Fills the numbers of docs/walkthrough.md from `gpt2-reward trace --json`: every block between
 * `<!-- trace:NAME -->` and `<!-- /trace -->` is rewritten from a trace of the bundled demo
 * model, so the walkthrough never shows a number the code did not print.
 *
 *   npm run walkthrough            # rewrites docs/walkthrough.md
 *   node dist/docs/walkthrough.js --check   # exit 1 if the file's numbers differ from a fresh trace
 *
 * The traces use the reference kernels on one thread (pure JavaScript arithmetic, the same on
 * every machine), through the built CLI (dist/).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../src/cli/args.js";
import type { Stats, TraceReport } from "../src/cli/trace.js";
import { planBatch } from "../src/model/batch-plan.js";

export const WALKTHROUGH = join(PACKAGE_ROOT, "docs", "walkthrough.md");
const MODEL = "fixtures/models/demo";
const GOLDEN = "fixtures/golden/demo.json";

/** `gpt2-reward trace --json --kernels ref -t 1 -m fixtures/models/demo ...args`, run from the package root. */
export function traceJson(args: string[]): TraceReport {
  const cli = join(PACKAGE_ROOT, "dist", "src", "cli", "main.js");
  const r = spawnSync(process.execPath, [cli, "trace", "--json", "--kernels", "ref", "-t", "1", "-m", MODEL, ...args], { cwd: PACKAGE_ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`trace ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as TraceReport;
}

// ---------------------------------------------------------------------------------------------
// Formatting: 4 significant digits, which float noise between machines cannot reach

const n4 = (x: number) => (x === 0 ? "0" : Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(4));
const vec = (xs: number[]) => `[${xs.map(n4).join(", ")}, …]`;
const stat = (s: Stats) => `${n4(s.mean)} / ${n4(s.std)} / ${n4(s.maxAbs)}`;
const code = (s: string) => "`" + s + "`";
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;

/** Where each step of a block is computed: the line of src/model/gpt2.ts, and the reference loop it reaches. */
const STEP_CODE: Record<string, [string, string]> = {
  ln_1: ["runner.layernorm(xn, x, ln_1 …)", "layernormReference"],
  "attn.c_attn": ["runner.linear(qkv, xn, attn.c_attn …)", "matmulReference"],
  attn: ["runner.attention(att, qkv, queries …)", "attentionReference → softmaxReference"],
  "attn.c_proj": ["runner.linear(proj, att, attn.c_proj …)", "matmulReference"],
  ln_2: ["runner.layernorm(xn, xq, ln_2 …)", "layernormReference"],
  "mlp.c_fc+gelu": ["runner.linear(fc, xn, mlp.c_fc, …, gelu)", "matmulReference, geluReference"],
  "mlp.c_proj": ["runner.linear(proj, fc, mlp.c_proj …)", "matmulReference"],
};

const SHAPE_NAMES = (r: TraceReport) => (shape: [number, number]) => {
  const [rows, cols] = shape;
  const C = r.config.n_embd;
  const c = cols === C ? "C" : cols === 3 * C ? "3C" : cols === 4 * C ? "4C" : String(cols);
  return `(${rows}, ${cols}) = (N, ${c})`;
};

// ---------------------------------------------------------------------------------------------
// The blocks

export function renderBlocks(): Record<string, string> {
  const main = traceJson(["--golden", GOLDEN]);
  const pos = main.scored.position;
  const blocks: Record<string, string> = {};

  blocks.command = [
    "```",
    `$ npx gpt2-reward trace -m ${MODEL} --golden ${GOLDEN} --kernels ref`,
    "```",
  ].join("\n");

  blocks.tokens = [
    `Text (fixtures/golden/texts.json, text ${main.golden!.textIndex}): ${code(JSON.stringify(main.text))}`,
    "",
    row(["position", ...main.pieces.map((_, i) => String(i))]),
    row(["---", ...main.pieces.map(() => "---")]),
    row(["piece", ...main.pieces.map((p) => code(JSON.stringify(p)))]),
    row(["id", ...main.ids.map(String)]),
    "",
    `${main.ids.length} tokens, so N = ${main.ids.length} rows from here on; C = n_embd = ${main.config.n_embd}, ${main.config.n_head} heads of ${main.config.n_embd / main.config.n_head}, 4C = n_inner = ${main.config.n_inner}.`,
  ].join("\n");

  const emb = main.layers[0];
  blocks.embeddings = [
    `At the last token (position ${pos}, ${code(JSON.stringify(main.scored.piece))}, id ${main.scored.id}), the first 4 of its ${main.config.n_embd} values:`,
    "",
    "```",
    ...[[`wte[${main.scored.id}]`, main.embeddings.wte], [`wpe[${pos}]`, main.embeddings.wpe], [`x[${pos}]`, main.embeddings.head]]
      .map(([name, v]) => `${(name as string).padEnd(9)} = ${vec(v as number[])}`),
    "```",
    "",
    `Over that token's ${main.config.n_embd} values, mean / std / max|x| = ${stat(emb.scored)}; over all ${main.ids.length} tokens ${stat(emb.all)}.`,
  ].join("\n");

  const shape = SHAPE_NAMES(main);
  const block0 = main.steps.filter((s) => s.block === 0);
  let residuals = 0;
  blocks.block0 = [
    row(["step", "src/model/gpt2.ts", "ref kernel (kernels/ref-kernels.ts)", "output shape", `at token ${pos}: first values`, "mean / std / max\\|x\\|"]),
    row(["---", "---", "---", "---", "---", "---"]),
    ...block0.map((s) => {
      const [call, loop] = s.step === "residual"
        ? [`runner.residual(xq, xq, proj …)`, "residualReference"]
        : STEP_CODE[s.step];
      const name = s.step === "residual" ? (residuals++ === 0 ? "x + attn" : "x + mlp") : s.step;
      return row([code(name), code(call), loop, shape(s.shape), vec(s.head), stat(s.scored)]);
    }),
  ].join("\n");

  // Two texts packed into one batch (src/model/batch-plan.ts): the mask is what attention's loops visit.
  const texts = ["User: hi\nBot: hello!", "User: hi\nBot: go away"];
  const [a, b] = texts.map((t) => traceJson([t]));
  const plan = planBatch([a.ids, b.ids], [a.scored.position, b.scored.position]);
  const R = plan.ids.length;
  const sees = Array.from({ length: R }, () => new Set<number>());
  for (let k = 0; k < plan.rows.blocks.length; k += 5) {
    const [qRow, count, , keyStart, seen] = plan.rows.blocks.subarray(k, k + 5);
    for (let i = 0; i < count; i++) for (let j = 0; j < seen + i; j++) sees[qRow + i].add(plan.rows.keyRows[keyStart + j]);
  }
  const pieceOf = (id: number, pos: number) => (a.ids[pos] === id ? a.pieces[pos] : b.pieces[pos]);
  blocks.mask = [
    `${texts.map((t, i) => `${code(JSON.stringify(t))} (${[a, b][i].ids.length} tokens)`).join(" and ")} in one batch: they share their first ${a.ids.findIndex((id, i) => id !== b.ids[i])} tokens, so the batch computes R = ${R} rows, not ${a.ids.length + b.ids.length}. Row = query, column = key, ■ = attended:`,
    "",
    "```",
    ...Array.from({ length: R }, (_, q) =>
      `${String(q).padStart(2)} ${JSON.stringify(pieceOf(plan.ids[q], plan.positions[q])).padEnd(9)} ${Array.from({ length: R }, (_, k) => (sees[q].has(k) ? "■" : "·")).join(" ")}`),
    "```",
  ].join("\n");

  blocks.layers = [
    row(["layer", `token ${pos}: mean / std / max\\|x\\|`, `all ${main.ids.length} tokens: mean / std / max\\|x\\|`, "max \\|Δ\\| vs PyTorch"]),
    row(["---", "---", "---", "---"]),
    ...main.layers.map((l) => row([code(l.name), stat(l.scored), stat(l.all), l.golden ? n4(l.golden.maxAbsDiff) : "— (PyTorch reports ln_f of it)"])),
    "",
    main.golden!.firstOutside === null
      ? `Every layer is within ${main.golden!.tolerance.toExponential()} · max(1, max|x|) of PyTorch's hidden states (${GOLDEN}).`
      : `First layer outside the tolerance: ${main.golden!.firstOutside}.`,
  ].join("\n");

  const text = "hi<|endoftext|>there";
  const rules = ["last-non-pad", "before-first-pad", "non-pad-count"].map((p) => traceJson(["--pooling", p, text]));
  blocks.pooling = [
    `Here: position ${pos} (${code(JSON.stringify(main.scored.piece))}), because ${main.scored.why}.`,
    "",
    `A text holding the pad id shows why the rule matters: ${code(JSON.stringify(text))} is ${rules[0].pieces.map((p) => code(JSON.stringify(p))).join(" ")} (ids ${rules[0].ids.join(", ")}).`,
    "",
    row(["--pooling", "scored position", "piece", "logit"]),
    row(["---", "---", "---", "---"]),
    ...rules.map((r) => row([code(r.scored.pooling), String(r.scored.position), code(JSON.stringify(r.scored.piece)), n4(r.logits[0])])),
  ].join("\n");

  const lnf = main.layers[main.layers.length - 1];
  const ts = traceJson(["--golden", GOLDEN, "--kernels", "ts"]);
  blocks.score = [
    `ln_f at token ${pos}: mean / std / max|x| = ${stat(lnf.scored)}.`,
    `score: (1, ${main.config.n_embd}) · (${main.config.num_labels}, ${main.config.n_embd})ᵀ → (1, ${main.config.num_labels}): ${main.labels.map((l, i) => `${l} = ${main.logits[i].toPrecision(7)}`).join(", ")}. That is the reward.`,
  ].join("\n");

  blocks.kernels = [
    row(["kernels", "logit", "largest max \\|Δ\\| vs PyTorch over the layers"]),
    row(["---", "---", "---"]),
    ...[main, ts].map((r) => row([code(r.kernels), r.logits[0].toPrecision(7), n4(Math.max(...r.layers.map((l) => l.golden?.maxAbsDiff ?? 0)))])),
  ].join("\n");
  return blocks;
}

/** The markdown with each marked block's body replaced; throws on a marker without its block. */
export function fillBlocks(markdown: string, blocks: Record<string, string>): string {
  const seen = new Set<string>();
  const out = markdown.replace(/(<!-- trace:([\w-]+) -->\n)[\s\S]*?(<!-- \/trace -->)/g, (_, open: string, name: string, close: string) => {
    if (!(name in blocks)) throw new Error(`docs/walkthrough.md: no block named ${name}`);
    seen.add(name);
    return `${open}${blocks[name]}\n${close}`;
  });
  const missing = Object.keys(blocks).filter((b) => !seen.has(b));
  if (missing.length > 0) throw new Error(`docs/walkthrough.md: no marker for ${missing.join(", ")}`);
  return out;
}

function main(): number {
  const current = readFileSync(WALKTHROUGH, "utf8");
  const fresh = fillBlocks(current, renderBlocks());
  if (process.argv.includes("--check")) {
    if (fresh === current) return 0;
    process.stderr.write("docs/walkthrough.md: its numbers differ from a fresh trace; run `npm run walkthrough`\n");
    return 1;
  }
  writeFileSync(WALKTHROUGH, fresh);
  process.stderr.write(`wrote ${WALKTHROUGH}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) process.exitCode = main();
