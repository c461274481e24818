/**
 * One realistic workload (bench/workload-texts.ts) scored by our model in a process of its own:
 *   node dist/bench/workload-child.js --model DIR --workload chat|best-of-n --kernels ts|wasm --threads N [--texts K]
 * Loads the model, scores the workload's first K texts (default all) in input order in batches of
 * 8, after a warm-up batch, as SyncRewardModel.scoreIds does (truncated ids, pooling at the last
 * non-pad token, src/model/gpt2.ts's forward), through a Runner that also times every matmul
 * (`linear`) call it forwards to the model's own runner. Prints one JSON line (WorkloadChildResult).
 */
import "../src/platform/node.js";
import { forward } from "../src/model/gpt2.js";
import { planBatch } from "../src/model/batch-plan.js";
import { scoredPosition } from "../src/model/pooling.js";
import { SyncRewardModel } from "../src/model/sync-model.js";
import type { Runner } from "../src/run/runner.js";
import { cpuMark, cpuUse } from "./cpu.js";
import type { TimedBatches } from "./e2e.js";
import { childArg } from "./child-args.js";
import { WORKLOAD_BATCH, workloadTexts, type WorkloadName } from "./workload-texts.js";

/** batchMs and batchCpu hold one entry: the whole workload, timed as one. */
export interface WorkloadChildResult extends TimedBatches {
  workload: WorkloadName;
  kernels: string;
  threads: number;
  texts: number;
  /** Tokens of the texts, and rows the forward passes computed (shared prefixes once). */
  tokens: number;
  rows: number;
  /** Wall time of the workload's matmul calls, ms. */
  matmulMs: number;
  /** Floating-point operations of those matmul calls: 2 · rows · in · out each. */
  matmulFlops: number;
  /** The last text's first logit: equal across thread counts and runs. */
  lastLogit: number;
}

const arg = (name: string, fallback?: string): string => childArg("workload-child", name, fallback);
const workload = arg("workload") as WorkloadName;
const kernels = arg("kernels") as "ts" | "wasm";
const threads = Number(arg("threads"));
const all = workloadTexts(workload);
const texts = all.slice(0, Number(arg("texts", String(all.length))));

const model = SyncRewardModel.load(arg("model"), { kernels, threads });
const inner = model.runner;
let matmulMs = 0;
let matmulFlops = 0;
const timed: Runner = {
  ...inner,
  linear: (out, inp, w, rows, gelu, scratch) => {
    const t = performance.now();
    inner.linear(out, inp, w, rows, gelu, scratch);
    matmulMs += performance.now() - t;
    matmulFlops += 2 * rows * w.inDim * w.outDim;
  },
};

const score = (batch: number[][]) => forward(model, timed, batch, batch.map((ids) => scoredPosition(ids, model.config.pad_token_id, "last-non-pad")));
// Warm-up: wasm the first batch; pure TS one short text, which gets every kernel optimized (a
// full pure-TS batch takes tens of seconds).
if (kernels === "wasm") score(texts.slice(0, WORKLOAD_BATCH));
else score([texts[0].slice(0, 32)]);
matmulMs = 0;
matmulFlops = 0;

let rows = 0;
let lastLogit = NaN;
const before = cpuMark();
for (let b = 0; b < texts.length; b += WORKLOAD_BATCH) {
  const batch = texts.slice(b, b + WORKLOAD_BATCH);
  const logits = score(batch);
  lastLogit = logits[logits.length - 1][0];
}
const after = cpuMark();
for (let b = 0; b < texts.length; b += WORKLOAD_BATCH) {
  const batch = texts.slice(b, b + WORKLOAD_BATCH);
  rows += planBatch(batch, batch.map((ids) => ids.length - 1)).ids.length;
}
await model.close();

const result: WorkloadChildResult = {
  workload, kernels, threads, texts: texts.length, tokens: texts.reduce((a, t) => a + t.length, 0), rows,
  batchMs: [after.wallMs - before.wallMs], batchCpu: [cpuUse(before, after)], matmulMs, matmulFlops, lastLogit,
};
process.stdout.write(JSON.stringify(result) + "\n");
