/**
 * One onnxruntime configuration in a process of its own (onnxruntime-web fixes its thread count
 * when its wasm first starts, so each thread count needs a fresh process):
 *   node dist/bench/peer-child.js --peer onnxruntime-node|onnxruntime-web --onnx FILE
 *        --threads N --batch S --len T --reps R
 * The peers are optional and never in package.json: imported by name, typed loosely.
 * Prints one JSON line (PeerChildResult).
 */
import { cpuMark, cpuUse, type CpuUse } from "./cpu.js";
import type { TimedBatches } from "./e2e.js";
import { randomIds, rng } from "./random.js";
import { childArg } from "./child-args.js";

export interface PeerChildResult extends TimedBatches {
  peer: string;
  threads: number;
  batch: number;
  len: number;
  loadMs: number;
  maxRss: number;
}

const arg = (name: string): string => childArg("peer-child", name);

const peer = arg("peer");
const threads = Number(arg("threads"));
const batch = Number(arg("batch"));
const len = Number(arg("len"));
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

// The same random texts as bench/e2e-child.ts: no padding, so the mask is all ones.
const next = rng(7);
const ids = BigInt64Array.from(Array.from({ length: batch }, () => randomIds(next, len)).flat(), (x) => BigInt(x));
const feeds: Record<string, unknown> = {};
for (const name of session.inputNames as string[]) {
  if (name === "input_ids") feeds[name] = new ort.Tensor("int64", ids, [batch, len]);
  else if (name === "attention_mask") feeds[name] = new ort.Tensor("int64", new BigInt64Array(batch * len).fill(1n), [batch, len]);
  else if (name === "position_ids") feeds[name] = new ort.Tensor("int64", BigInt64Array.from({ length: batch * len }, (_, i) => BigInt(i % len)), [batch, len]);
  else throw new Error(`peer-child: the ONNX model has an input "${name}" this benchmark does not know how to fill`);
}
await session.run(feeds); // warm-up
const batchMs: number[] = [];
const batchCpu: CpuUse[] = [];
for (let r = 0; r < reps; r++) {
  // process.cpuUsage counts every thread of the process: onnxruntime-node's native pool and
  // onnxruntime-web's worker threads alike.
  const before = cpuMark();
  await session.run(feeds);
  const after = cpuMark();
  batchMs.push(after.wallMs - before.wallMs);
  batchCpu.push(cpuUse(before, after));
}
const result: PeerChildResult = { peer, threads, batch, len, loadMs, batchMs, batchCpu, maxRss: process.resourceUsage().maxRSS * 1024 };
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0); // onnxruntime-web's worker threads would otherwise keep the process alive
