/**
 * `trace`: one text through the model, layer by layer. For the residual stream after the
 * embeddings, after each block and after ln_f it prints the mean, std and max |x| at the scored
 * token and over all tokens; which token the score head reads and why; and, with a golden file
 * holding PyTorch's hidden states (fixtures/export_golden.py writes them), the max |Δ| per layer
 * and the first layer that leaves the tolerance. A bug hunter's tool and a teacher's: `--json`
 * also gives every step inside every block (ln_1, attn.c_attn, ...), which docs/walkthrough.md
 * is generated from.
 *
 * It runs the synchronous core: forward() of src/model/gpt2.ts with its onHiddenState hook,
 * through a runner that records each kernel call's output and passes the call on unchanged.
 */
import type { PackedLinear } from "../../kernels/contract.js";
import { widen16 } from "../../kernels/half.js";
import { FormatError, Gpt2RewardError } from "../errors.js";
import { forward } from "../model/gpt2.js";
import { parsePoolingRule, scoredPosition, type PoolingRule } from "../model/pooling.js";
import { DEFAULT_MAX_LENGTH, SyncRewardModel } from "../model/sync-model.js";
import { ENDOFTEXT, ENDOFTEXT_ID, tokenPiece } from "../model/tokenizer.js";
import type { Runner } from "../run/runner.js";
import { defineCommand, positiveInt, UsageError } from "./args.js";
import { LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg } from "./common.js";
import { readGoldenJson, textsBeside } from "./golden.js";

export const DEFAULT_TRACE_TOLERANCE = 2e-5;

export const trace = defineCommand({
  name: "trace",
  summary: "Follow one text through the model layer by layer: residual-stream statistics, the scored token, and (with --golden) where we leave PyTorch.",
  usage: "--model MODEL [options] [TEXT]",
  options: {
    model: MODEL_OPTION,
    golden: { type: "string", short: "g", value: "FILE", help: "a golden JSON file with PyTorch's hidden states (fixtures/golden/*.json; \"-\" for standard input): compare every layer" },
    tolerance: { type: "string", value: "X", default: "2e-5", help: "a layer leaves the tolerance when max |Δ| > X · max(1, max |x| of PyTorch's layer)" },
    json: { type: "boolean", help: "print one JSON object (every layer, and every step inside each block) instead of the table" },
    pooling: { type: "string", value: "RULE", default: "last-non-pad", help: "which token the score head reads: last-non-pad, before-first-pad or non-pad-count" },
    "max-length": MAX_LENGTH_OPTION,
    ...LOAD_OPTIONS,
  },
  details: `${MODEL_HELP}

TEXT is tokenized and left-truncated as score does. With --golden and no TEXT, the golden file's own
ids are traced (the text its hidden states were computed for); with both, TEXT must give those ids.
Layers: embeddings (wte + wpe), h.0 ... h.N-1 (the residual stream after each block), ln_f (applied
to every token). PyTorch's output_hidden_states reports ln_f of the last block instead of its raw
output, so the last block has no PyTorch row of its own: ln_f checks it.
Exit status: 0, or 1 when --golden finds a layer outside the tolerance.`,
  examples: [
    `gpt2-reward trace -m fixtures/models/demo $'User: Hi there!\\nBot: Hello!'`,
    "gpt2-reward trace -m fixtures/models/demo --golden fixtures/golden/demo.json",
    "gpt2-reward trace -m fixtures/models/demo --kernels ref --json 'hello'",
  ],
  async run(values, positionals) {
    const { model: spec, rest } = modelArg("trace", values.model, positionals, false);
    if (rest.length > 1) throw new UsageError(`trace takes one TEXT, got ${rest.length}`);
    const pooling = parsePoolingRule(values.pooling ?? "last-non-pad");
    if (!pooling) throw new UsageError(`--pooling must be last-non-pad, before-first-pad or non-pad-count, got "${values.pooling}"`);
    const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
    const tolerance = values.tolerance === undefined ? DEFAULT_TRACE_TOLERANCE : Number(values.tolerance);
    if (!(tolerance > 0)) throw new UsageError(`--tolerance must be a positive number, got "${values.tolerance}"`);
    const golden = values.golden === undefined ? undefined : await readHiddenStates(values.golden);
    if (rest.length === 0 && !golden) throw new UsageError("trace needs a TEXT (or --golden FILE, to trace the golden file's own ids)");

    const model = await SyncRewardModel.fromPretrained(spec, loadOptions(values));
    try {
      let text: string | null, ids: number[], truncated = false;
      if (rest.length === 1) {
        text = rest[0];
        ({ ids, truncated } = model.tokenize(text, maxLength));
        if (golden && !sameIds(ids, golden.ids)) {
          throw new Gpt2RewardError(`${golden.file}: its hidden states are for ids [${golden.ids.join(", ")}], TEXT gives [${ids.join(", ")}]: leave TEXT out to trace the golden ids`);
        }
      } else {
        ({ text, ids } = golden!);
        model.checkMaxLength(Math.max(1, ids.length));
        const problem = model.checkIds(ids);
        if (problem) throw new FormatError(golden!.file, `hidden_states.ids: ${problem}`);
      }
      const report = traceIds(model, ids, { pooling, golden: golden && { ...golden, tolerance } });
      const out: TraceReport = { model: spec, text, truncated, ...report };
      process.stdout.write(values.json ? JSON.stringify(out, null, 1) + "\n" : formatTrace(out));
      return out.golden && out.golden.firstOutside !== null ? 1 : 0;
    } finally {
      await model.close();
    }
  },
});

// ---------------------------------------------------------------------------------------------
// What a trace holds

/** Over some values: their mean, their (population) standard deviation, their largest |x|. */
export interface Stats {
  mean: number;
  std: number;
  maxAbs: number;
}

export interface LayerTrace {
  /** "embeddings", "h.0" ... "h.N-1" (after that block), "ln_f" (applied to every token). */
  name: string;
  /** At the scored token, and over all tokens, of the residual stream after this layer. */
  scored: Stats;
  all: Stats;
  /** Against PyTorch's hidden state for this layer, when a golden file has one. */
  golden?: { maxAbsDiff: number; scale: number; within: boolean };
}

/** One kernel call inside a block: its output, (rows, cols). */
export interface StepTrace {
  block: number;
  /** ln_1, attn.c_attn, attn, attn.c_proj, residual, ln_2, mlp.c_fc, mlp.c_proj, residual. */
  step: string;
  /** The checkpoint key of its weights (transformer.h.N. omitted), or null for attn and residual. */
  key: string | null;
  shape: [number, number];
  scored: Stats;
  all: Stats;
  /** The first values of the scored token's row, to show what the numbers look like. */
  head: number[];
}

export interface TraceReport {
  model: string;
  text: string | null;
  truncated: boolean;
  config: { n_layer: number; n_embd: number; n_head: number; n_inner: number; num_labels: number; pad_token_id: number | null; layer_norm_epsilon: number };
  kernels: string;
  threads: number;
  ids: number[];
  pieces: string[];
  scored: { position: number; id: number; piece: string; pooling: PoolingRule; padId: number | null; why: string };
  embeddings: { wte: number[]; wpe: number[]; head: number[] };
  layers: LayerTrace[];
  steps: StepTrace[];
  logits: number[];
  labels: string[];
  golden?: { file: string; textIndex: number | null; tolerance: number; firstOutside: string | null };
}

export interface GoldenHiddenStates {
  file: string;
  textIndex: number | null;
  text: string | null;
  ids: number[];
  /** PyTorch's output_hidden_states: embeddings, blocks 1..n-1, then ln_f of block n. Each (T, C). */
  layers: number[][];
}

// ---------------------------------------------------------------------------------------------
// Tracing

const HEAD = 4;

/**
 * Runs `ids` as a batch of one through forward() and collects every layer and every step.
 * Needs the synchronous core: a SyncRewardModel's config, weights and runner.
 */
export function traceIds(
  model: SyncRewardModel, ids: number[],
  opts: { pooling: PoolingRule; golden?: GoldenHiddenStates & { tolerance: number } },
): Omit<TraceReport, "model" | "text" | "truncated"> {
  const { config, weights } = model;
  const C = config.n_embd;
  const T = ids.length;
  const position = scoredPosition(ids, config.pad_token_id, opts.pooling);
  const rowStats = (x: Float32Array, cols: number) => ({
    scored: stats(x.subarray(position * cols, (position + 1) * cols)),
    all: stats(x.subarray(0, T * cols)),
  });

  // Names for the weights the runner sees, after the checkpoint keys.
  const names = new Map<PackedLinear | Float32Array, { block: number; step: string; key: string }>();
  weights.h.forEach((b, l) => {
    const add = (w: PackedLinear | Float32Array, step: string) => names.set(w, { block: l, step, key: `h.${l}.${step}` });
    add(b.ln_1.weight, "ln_1");
    add(b.attn.c_attn, "attn.c_attn");
    add(b.attn.c_proj, "attn.c_proj");
    add(b.ln_2.weight, "ln_2");
    add(b.mlp.c_fc, "mlp.c_fc");
    add(b.mlp.c_proj, "mlp.c_proj");
  });
  const steps: StepTrace[] = [];
  let block = -1;
  const record = (step: string, key: string | null, out: Float32Array, rows: number, cols: number) => {
    if (rows !== T || block < 0) return; // ln_f: a layer of its own (below)
    steps.push({ block, step, key, shape: [rows, cols], ...rowStats(out, cols), head: Array.from(out.subarray(position * cols, position * cols + HEAD)) });
  };
  const inner = model.runner;
  const traced: Runner = {
    kernels: inner.kernels,
    threads: inner.threads,
    layernorm(out, inp, weight, bias, rows, cols, eps) {
      inner.layernorm(out, inp, weight, bias, rows, cols, eps);
      const name = names.get(weight);
      block = name ? name.block : -1;
      if (name) record(name.step, name.key, out, rows, cols);
    },
    linear(out, inp, w, rows, gelu, scratch) {
      inner.linear(out, inp, w, rows, gelu, scratch);
      const name = names.get(w)!;
      record(gelu ? `${name.step}+gelu` : name.step, name.key, out, rows, w.outDim);
    },
    attention(out, qkv, seqStarts, nHead, cols, scratch) {
      inner.attention(out, qkv, seqStarts, nHead, cols, scratch);
      record("attn", null, out, T, cols);
    },
    residual(out, a, b, n) {
      inner.residual(out, a, b, n);
      record("residual", null, out, T, n / T);
    },
    close: () => inner.close(),
  };

  const layers: LayerTrace[] = [];
  let embedded: number[] = [];
  const [logits] = forward(model, traced, [ids], [position], {
    onHiddenState: (index, x) => {
      const name = index === 0 ? "embeddings" : index <= config.n_layer ? `h.${index - 1}` : "ln_f";
      if (index === 0) embedded = Array.from(x.subarray(position * C, position * C + HEAD));
      layers.push({ name, ...rowStats(x, C) });
      if (opts.golden) {
        const ref = goldenLayer(opts.golden, index, config.n_layer);
        if (ref) layers[layers.length - 1].golden = compare(x.subarray(0, T * C), ref, opts.golden.tolerance);
      }
    },
  });

  const id = ids[position];
  const wte = new Float32Array(HEAD);
  if (weights.wteDType === "F32") wte.set((weights.wte as Float32Array).subarray(id * C, id * C + HEAD));
  else widen16(wte, weights.wte as Uint16Array, id * C, HEAD, weights.wteDType);
  return {
    config: {
      n_layer: config.n_layer, n_embd: C, n_head: config.n_head, n_inner: config.n_inner, num_labels: config.num_labels,
      pad_token_id: config.pad_token_id, layer_norm_epsilon: config.layer_norm_epsilon,
    },
    kernels: model.kernels,
    threads: model.threads,
    ids,
    pieces: ids.map(tokenPiece),
    scored: { position, id, piece: tokenPiece(id), pooling: opts.pooling, padId: config.pad_token_id, why: poolingWhy(ids, config.pad_token_id, opts.pooling) },
    embeddings: { wte: Array.from(wte), wpe: Array.from(weights.wpe.subarray(position * C, position * C + HEAD)), head: embedded },
    layers,
    steps,
    logits: Array.from(logits),
    labels: config.labels,
    ...(opts.golden && {
      golden: {
        file: opts.golden.file, textIndex: opts.golden.textIndex, tolerance: opts.golden.tolerance,
        firstOutside: layers.find((l) => l.golden && !l.golden.within)?.name ?? null,
      },
    }),
  };
}

export function stats(x: ArrayLike<number>): Stats {
  let sum = 0, maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    sum += x[i];
    maxAbs = Math.max(maxAbs, Math.abs(x[i]));
  }
  const mean = sum / x.length;
  let sq = 0;
  for (let i = 0; i < x.length; i++) sq += (x[i] - mean) ** 2;
  return { mean, std: Math.sqrt(sq / x.length), maxAbs };
}

/** Why the score head reads `ids[position]`, in words (src/model/pooling.ts has the rules). */
function poolingWhy(ids: number[], padId: number | null, rule: PoolingRule): string {
  if (padId === null) return "config.json has no pad_token_id, so the score head reads the last token (as HF does for one text)";
  const pad = `the pad id ${padId}${padId === ENDOFTEXT_ID ? ` (${ENDOFTEXT})` : ""}`;
  if (!ids.includes(padId)) return `no token is ${pad}, so every pooling rule reads the last token`;
  switch (rule) {
    case "last-non-pad":
      return `last-non-pad (current transformers): the rightmost token that is not ${pad}; a text of pad ids only gives 0`;
    case "before-first-pad":
      return `before-first-pad (transformers 4.32 to 4.48): the token before the first ${pad}, wrapping round to the last token when the text starts with it`;
    case "non-pad-count":
      return `non-pad-count (transformers 4.31 and older): the number of tokens that are not ${pad}, minus one`;
  }
}

/** PyTorch's hidden state for our layer `index` (0 embeddings, 1..n after block index-1, n+1 ln_f), if it reports one. */
function goldenLayer(g: GoldenHiddenStates, index: number, nLayer: number): number[] | null {
  if (index < nLayer) return g.layers[index];
  if (index === nLayer + 1) return g.layers[nLayer];
  return null; // the last block's raw output: PyTorch reports ln_f of it instead
}

/** The golden tests' rule: float32 noise grows with the values, so the tolerance scales with max(1, max |x|). */
function compare(ours: Float32Array, ref: number[], tolerance: number): { maxAbsDiff: number; scale: number; within: boolean } {
  if (ref.length !== ours.length) throw new Gpt2RewardError(`golden hidden state has ${ref.length} values, the model gives ${ours.length}: is it this model's golden file?`);
  let maxAbsDiff = 0, scale = 1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ours[i] - ref[i]);
    maxAbsDiff = d > maxAbsDiff || Number.isNaN(d) ? (Number.isNaN(d) ? Infinity : d) : maxAbsDiff;
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return { maxAbsDiff, scale, within: maxAbsDiff <= tolerance * scale };
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** A golden file's hidden_states (following "same_as"), and its text when texts.json is beside it. */
export async function readHiddenStates(path: string): Promise<GoldenHiddenStates> {
  const { file, json: g } = await readGoldenJson(path);
  const hs = g.hidden_states as { text_index?: unknown; ids?: unknown; layers?: unknown } | undefined;
  if (typeof hs !== "object" || hs === null || !Array.isArray(hs.ids) || !Array.isArray(hs.layers) || hs.layers.some((l) => !Array.isArray(l))) {
    throw new FormatError(file, "no hidden_states {ids, layers} (per-layer hidden states, as fixtures/export_golden.py writes them)");
  }
  const textIndex = typeof hs.text_index === "number" ? hs.text_index : null;
  const texts = Array.isArray(g.texts) ? (g.texts as unknown[]) : textsBeside(file);
  const text = textIndex !== null ? texts?.[textIndex] : undefined;
  return { file: path === "-" ? file : path, textIndex, text: typeof text === "string" ? text : null, ids: hs.ids as number[], layers: hs.layers as number[][] };
}

// ---------------------------------------------------------------------------------------------
// The table

const num = (x: number) => (x === 0 ? "0" : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(4));
const cells = (s: Stats) => [num(s.mean), num(s.std), num(s.maxAbs)];

export function formatTrace(r: TraceReport): string {
  const c = r.config;
  const lines: string[] = [];
  lines.push(`model    ${r.model}: ${c.n_layer} layers, n_embd ${c.n_embd}, ${c.n_head} heads, ${c.num_labels} label(s); ${r.kernels} kernels, ${r.threads} thread(s)`);
  if (r.text !== null) lines.push(`text     ${JSON.stringify(r.text)}${r.truncated ? " (left-truncated)" : ""}`);
  lines.push(`tokens   ${r.ids.length}: ${r.pieces.map((p) => JSON.stringify(p)).join(" ")}`);
  lines.push(`ids      [${r.ids.join(", ")}]`);
  lines.push(`scored   position ${r.scored.position}, ${JSON.stringify(r.scored.piece)} (id ${r.scored.id}): ${r.scored.why}`);
  lines.push(`logits   ${r.logits.map((v, i) => `${r.labels[i]} ${v}`).join(", ")}`);
  lines.push("");
  lines.push(`the residual stream after each layer (std: population std; max|x|: largest magnitude)`);
  const header = ["", `scored token (${r.scored.position})`, "", "", "|", `all ${r.ids.length} tokens`, "", "", ...(r.golden ? ["|", "vs PyTorch", ""] : [])];
  const names = ["layer", "mean", "std", "max|x|", "|", "mean", "std", "max|x|", ...(r.golden ? ["|", "max|Δ|", ""] : [])];
  const rows = r.layers.map((l) => [
    l.name, ...cells(l.scored), "|", ...cells(l.all),
    ...(r.golden ? ["|", ...(l.golden ? [num(l.golden.maxAbsDiff), l.golden.within ? "ok" : `> ${num(r.golden.tolerance * l.golden.scale)}`] : ["—", "¹"])] : []),
  ]);
  lines.push(...table([header, names, ...rows]));
  if (r.golden) {
    const tol = r.golden.tolerance.toExponential();
    lines.push(`¹ PyTorch's hidden states hold ln_f of the last block, not its raw output: the ln_f row checks it.`);
    lines.push("");
    const first = r.layers.find((l) => l.name === r.golden!.firstOutside);
    lines.push(first
      ? `first layer outside the tolerance: ${first.name}, max |Δ| ${num(first.golden!.maxAbsDiff)} > ${tol} · ${num(first.golden!.scale)} (${r.golden.file})`
      : `every layer within ${tol} · max(1, max |x|) of PyTorch (${r.golden.file})`);
  }
  return lines.join("\n") + "\n";
}

/** Columns padded to their widest cell: the first (names) to the left, numbers to the right. A group title spills right. */
function table(rows: string[][]): string[] {
  const body = rows.slice(1);
  const widths = rows[1].map((_, i) => Math.max(...body.map((r) => (r[i] ?? "").length)));
  const line = (r: string[], title: boolean) =>
    r.map((cell, i) => (i === 0 || title ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ").trimEnd();
  return [line(rows[0], true), ...body.map((r) => line(r, false))];
}
