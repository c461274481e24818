/**
 * One end-to-end configuration in a process of its own, so its peak RSS is its own:
 *   node dist/bench/e2e-child.js --model DIR --kernels ts|wasm --threads N
 *        [--batch S --len T --reps R --warmup full|small|none] [--dtype f32|f16|bf16]
 * Loads the model (timed), scores R batches of S random texts of T tokens after a warm-up, and
 * prints one JSON line (E2eChildResult). --batch 0 only loads: the load-time benchmark.
 *   node dist/bench/e2e-child.js --floor FILE
 * times the floor under any load instead: FILE read whole into fresh memory (page faults plus
 * the copy out of the page cache, which every loader without mmap pays), as {"floorMs": ...}.
 */
import "../src/platform/node.js";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { SyncRewardModel, type WeightDTypeChoice } from "../src/model/sync-model.js";
import { cpuMark, cpuUse, type CpuUse } from "./cpu.js";
import { randomIds, rng } from "./random.js";
import { childArg } from "./child-args.js";

export interface E2eChildResult {
  kernels: string;
  threads: number;
  batch: number;
  len: number;
  loadMs: number;
  /** Wall time of each timed batch, ms. */
  batchMs: number[];
  /** CPU use during each timed batch: ours, and other processes' (contention). */
  batchCpu: CpuUse[];
  /** Logit of the first text of the last batch: equal across thread counts if the split is exact. */
  firstLogit: number | null;
  /** process.memoryUsage().rss right after loading, bytes. */
  rssAfterLoad: number;
  /** Peak resident set of the whole process (all threads), bytes. */
  maxRss: number;
}

const arg = (name: string, fallback?: string): string => childArg("e2e-child", name, fallback);

export interface FloorChildResult {
  floorMs: number;
  bytes: number;
}

const floorFile = arg("floor", "");
if (floorFile) {
  // The same kind of memory the model's weights live in: a shared WebAssembly.Memory, grown once.
  const fd = openSync(floorFile, "r");
  const bytes = fstatSync(fd).size;
  const t0 = performance.now();
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  const dst = new Uint8Array(memory.buffer, 0, bytes);
  for (let at = 0; at < bytes;) {
    const n = readSync(fd, dst, at, Math.min(1 << 26, bytes - at), at);
    if (n === 0) throw new Error(`e2e-child: ${floorFile} ended early`);
    at += n;
  }
  const result: FloorChildResult = { floorMs: performance.now() - t0, bytes };
  closeSync(fd);
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

const kernels = arg("kernels") as "ts" | "wasm";
const threads = Number(arg("threads"));
const batch = Number(arg("batch", "0"));
const len = Number(arg("len", "0"));
const reps = Number(arg("reps", "1"));
const warmup = arg("warmup", "full");
const dtype = arg("dtype", "f32") as WeightDTypeChoice;

const t0 = performance.now();
const model = SyncRewardModel.load(arg("model"), { kernels, threads, dtype });
const loadMs = performance.now() - t0;
const rssAfterLoad = process.memoryUsage().rss;

const batchMs: number[] = [];
let firstLogit: number | null = null;
const batchCpu: CpuUse[] = [];
if (batch > 0) {
  const next = rng(7);
  const texts = Array.from({ length: batch }, () => randomIds(next, len));
  const score = (ids: number[][]) => model.scoreIds(ids, { batchSize: ids.length, maxLength: len });
  // "small": one short text, enough for V8 to optimize every kernel (and the pool's threads to
  // start) when a full batch of the pure-TS kernels would take a minute.
  if (warmup === "full") score(texts);
  else if (warmup === "small") score([texts[0].slice(0, 32)]);
  for (let r = 0; r < reps; r++) {
    const before = cpuMark();
    const results = score(texts);
    const after = cpuMark();
    batchMs.push(after.wallMs - before.wallMs);
    batchCpu.push(cpuUse(before, after));
    firstLogit = results[0].logits[0];
    if (!results.every((x) => x.logits.every(Number.isFinite))) throw new Error("e2e-child: non-finite logits");
  }
}
await model.close();

const result: E2eChildResult = {
  kernels, threads, batch, len, loadMs, batchMs, batchCpu, firstLogit, rssAfterLoad,
  maxRss: process.resourceUsage().maxRSS * 1024, // maxRSS is in KiB
};
process.stdout.write(JSON.stringify(result) + "\n");
