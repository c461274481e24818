/**
 * One onnxruntime configuration in a process of its own (onnxruntime-web fixes its thread count
 * when its wasm first starts, so each thread count needs a fresh process):
 *   node dist/bench/peer-child.js --peer onnxruntime-node|onnxruntime-web --onnx FILE
 *        --threads N --batch S --len T --reps R
 *   node dist/bench/peer-child.js ... --threads N --workload chat|best-of-n --order input|sorted --reps R [--texts K]
 * The second form scores a workload of bench/workload-texts.ts (its first K texts; default all) as the model card's Python does:
 * batches of 8 (in input order, or after sorting the texts longest first), each padded on the
 * right with the pad id to its longest text, with the attention mask; one rep times them all.
 * The peers are optional and never in package.json: imported by name, typed loosely.
 * Prints one JSON line (PeerChildResult).
 */
import { cpuMark, cpuUse, type CpuUse } from "./cpu.js";
import type { TimedBatches } from "./e2e.js";
import { randomIds, rng } from "./random.js";
import { childArg } from "./child-args.js";
import { WORKLOAD_BATCH, workloadTexts, type WorkloadName } from "./workload-texts.js";

export interface PeerChildResult extends TimedBatches {
  peer: string;
  threads: number;
  batch: number;
  len: number;
  loadMs: number;
  maxRss: number;
  /** Workloads: the texts' tokens, and the tokens of the padded batches the peer computed. */
  tokens?: number;
  paddedTokens?: number;
}

const arg = (name: string, fallback?: string): string => childArg("peer-child", name, fallback);

const peer = arg("peer");
const threads = Number(arg("threads"));
const workload = arg("workload", "") as WorkloadName | "";
const reps = Number(arg("reps"));

const mod: any = await import(peer);
const ort = mod.default ?? mod;
let options: Record<string, unknown> = {};
if (peer === "onnxruntime-web") {
  ort.env.wasm.numThreads = threads;
} else {
  options = { intraOpNumThreads: threads, interOpNumThreads: 1, executionProviders: ["cpu"], graphOptimizationLevel: "all" };
}
const t0 = performance.now();
const session = await ort.InferenceSession.create(arg("onnx"), options);
const loadMs = performance.now() - t0;

/** One batch's feeds: ids right-padded with the pad id to the longest text, the mask 1 on real tokens. */
const PAD = 50256n;
function feedsOf(texts: number[][]): Record<string, unknown> {
  const len = Math.max(...texts.map((t) => t.length));
  const ids = new BigInt64Array(texts.length * len).fill(PAD);
  const mask = new BigInt64Array(texts.length * len);
  texts.forEach((t, s) => t.forEach((id, i) => ((ids[s * len + i] = BigInt(id)), (mask[s * len + i] = 1n))));
  const feeds: Record<string, unknown> = {};
  for (const name of session.inputNames as string[]) {
    if (name === "input_ids") feeds[name] = new ort.Tensor("int64", ids, [texts.length, len]);
    else if (name === "attention_mask") feeds[name] = new ort.Tensor("int64", mask, [texts.length, len]);
    else if (name === "position_ids") feeds[name] = new ort.Tensor("int64", BigInt64Array.from({ length: texts.length * len }, (_, i) => BigInt(i % len)), [texts.length, len]);
    else throw new Error(`peer-child: the ONNX model has an input "${name}" this benchmark does not know how to fill`);
  }
  return feeds;
}

// The same random texts as bench/e2e-child.ts (no padding: the mask is all ones), or a workload's batches.
let batches: number[][][];
if (workload) {
  const all = workloadTexts(workload);
  const texts = all.slice(0, Number(arg("texts", String(all.length))));
  const ordered = arg("order") === "sorted" ? texts.slice().sort((a, b) => b.length - a.length) : texts;
  batches = [];
  for (let b = 0; b < ordered.length; b += WORKLOAD_BATCH) batches.push(ordered.slice(b, b + WORKLOAD_BATCH));
} else {
  const next = rng(7);
  batches = [Array.from({ length: Number(arg("batch")) }, () => randomIds(next, Number(arg("len"))))];
}
const feeds = batches.map(feedsOf);
await session.run(feeds[0]); // warm-up
const batchMs: number[] = [];
const batchCpu: CpuUse[] = [];
for (let r = 0; r < reps; r++) {
  // process.cpuUsage counts every thread of the process: onnxruntime-node's native pool and
  // onnxruntime-web's worker threads alike.
  const before = cpuMark();
  for (const f of feeds) await session.run(f);
  const after = cpuMark();
  batchMs.push(after.wallMs - before.wallMs);
  batchCpu.push(cpuUse(before, after));
}
const texts = batches.flat();
const batch = texts.length;
const len = Math.max(...texts.map((t) => t.length));
const tokens = texts.reduce((a, t) => a + t.length, 0);
const paddedTokens = batches.reduce((a, b) => a + b.length * Math.max(...b.map((t) => t.length)), 0);
const result: PeerChildResult = { peer, threads, batch, len, loadMs, batchMs, batchCpu, maxRss: process.resourceUsage().maxRSS * 1024, tokens, paddedTokens };
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0); // onnxruntime-web's worker threads would otherwise keep the process alive
