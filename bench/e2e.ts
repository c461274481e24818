/**
 * End-to-end scoring and load time of GPT-2 base, one child process per measurement
 * (bench/e2e-child.ts) so that each configuration's peak RSS and JIT state are its own. Children
 * run one after another: on a 2-core machine two at once would time each other.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { leastContended, waitForQuiet, type CpuUse } from "./cpu.js";
import type { E2eChildResult, FloorChildResult } from "./e2e-child.js";
import type { OpsChildResult } from "./ops-child.js";

export type KernelName = "ts" | "wasm";

/** Batch shapes (texts × tokens): one long text, the default batch of 8, many short texts. */
export const E2E_SHAPES: [number, number][] = [[1, 256], [8, 128], [16, 64]];

/** A batch during which other processes used more than this many cores counts as contended. */
export const CONTENDED = 0.25;

/** What a child that times batches reports (bench/e2e-child.ts, bench/peer-child.ts). */
export interface TimedBatches {
  /** Wall time of each timed batch, ms. */
  batchMs: number[];
  /** CPU use during each timed batch: ours, and other processes' (contention). */
  batchCpu: CpuUse[];
}

/** A child's timed batches summed up with the contention in mind. */
export interface QuietMedian {
  /** Median of the uncontended batches' times (of all of them if every batch was contended). */
  medianMs: number;
  /** How many of the timed batches were contended. */
  contended: number;
  /** Mean CPU other processes used during the timed batches, in cores. */
  otherCores: number | null;
}

export interface E2eResult extends E2eChildResult, QuietMedian {
  minMs: number;
  tokensPerSec: number;
  warmup: string;
}

export interface LoadResult {
  kernels: KernelName;
  /** One per child process, after one unmeasured load that warms the page cache. */
  loadMs: number[];
  medianMs: number;
  /** File bytes / median load time. */
  mbPerSec: number;
  rssAfterLoad: number;
  maxRss: number;
  /**
   * The floor under any load on this machine, timed between the loads: the file read whole into
   * fresh memory (page faults + the copy out of the page cache, no checks, no packing).
   */
  floorMs: number[];
  floorMedianMs: number;
}

export interface E2eOptions {
  quick: boolean;
  kernels: KernelName[];
  threads: number[];
  log: (msg: string) => void;
}

const CHILD = fileURLToPath(new URL("./e2e-child.js", import.meta.url));
const OPS_CHILD = fileURLToPath(new URL("./ops-child.js", import.meta.url));

/** Before each child: wait up to this long for other processes to calm down (see bench/cpu.ts). */
const quietWait = (quick: boolean) => waitForQuiet(quick ? 10_000 : 30_000);

/**
 * Runs a child that times batches, each time on a machine as quiet as quietWait can find; a
 * child whose every batch was contended runs again, up to `attempts` runs in all. Returns the
 * least contended run with the median of its quiet batches.
 */
export async function runTimedChild<T extends TimedBatches>(script: string, args: string[], attempts: number, quick: boolean): Promise<T & QuietMedian> {
  const r = await leastContended(attempts, () => {
    quietWait(quick);
    return runChild(script, args) as T;
  }, (c) => Math.min(...c.batchCpu.map((u) => u.otherCores ?? 0)), CONTENDED);
  return { ...r, ...quietMedian(r) };
}

/** The median of the uncontended batches (of all if every batch was contended), and the contention. */
export function quietMedian({ batchMs, batchCpu }: TimedBatches): QuietMedian {
  const quiet = batchMs.filter((_, i) => !((batchCpu[i].otherCores ?? 0) > CONTENDED));
  const others = batchCpu.map((c) => c.otherCores).filter((x): x is number => x !== null);
  return { medianMs: median(quiet.length ? quiet : batchMs), contended: batchMs.length - quiet.length,
    otherCores: others.length ? others.reduce((a, b) => a + b, 0) / others.length : null };
}

export function runChild(script: string, args: string[]): unknown {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(" ")}: exited with ${r.status ?? r.signal}`);
  const last = r.stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last);
}

/**
 * Rounds and repetitions per configuration. Each round runs one child per thread count, one
 * after the other, so the 1-thread and 2-thread timings of a shape are taken in alternation: on
 * a shared machine whose cores slow down for minutes at a time (see the capacity section), a
 * 1→2 speed-up must compare timings from the same minutes, not from two different ones.
 * A pure-TS 8×128 batch takes tens of seconds, so it is warmed with one short text (which
 * already gets every kernel optimized) and timed once per round, two rounds (one with --quick);
 * wasm batches take seconds and get a full warm-up batch and two timings per round, three rounds.
 */
function plan(kernels: KernelName, quick: boolean): { rounds: number; reps: number; warmup: "full" | "small" } {
  if (kernels === "ts") return { rounds: quick ? 1 : 2, reps: 1, warmup: "small" };
  return { rounds: quick ? 1 : 3, reps: 2, warmup: "full" };
}

export async function benchE2e(modelDir: string, opts: E2eOptions): Promise<E2eResult[]> {
  const results: E2eResult[] = [];
  for (const kernels of opts.kernels) {
    const { rounds, reps, warmup } = plan(kernels, opts.quick);
    for (const [batch, len] of E2E_SHAPES) {
      const runs = new Map<number, E2eChildResult[]>(opts.threads.map((t) => [t, []]));
      for (let round = 0; round < rounds; round++) {
        for (const threads of opts.threads) {
          opts.log(`e2e: ${kernels}, ${threads} thread(s), ${batch}×${len}, round ${round + 1}/${rounds}: ${reps} rep(s) after a ${warmup} warm-up`);
          // A wasm child whose every batch was contended is run again (up to twice); a pure-TS one would cost minutes.
          const attempts = kernels === "wasm" && !opts.quick ? 3 : 1;
          runs.get(threads)!.push(await runTimedChild<E2eChildResult>(CHILD, ["--model", modelDir, "--kernels", kernels, "--threads", String(threads),
            "--batch", String(batch), "--len", String(len), "--reps", String(reps), "--warmup", warmup], attempts, opts.quick));
        }
      }
      for (const threads of opts.threads) results.push({ ...merge(runs.get(threads)!, `${kernels} ${batch}×${len} ${threads} thread(s)`), warmup });
    }
  }
  return results;
}

/** One row from the children of its rounds: all their batches, the median load, the largest RSS. */
function merge(rs: E2eChildResult[], what: string): Omit<E2eResult, "warmup"> {
  const all: E2eChildResult = {
    ...rs[rs.length - 1],
    loadMs: median(rs.map((r) => r.loadMs)),
    batchMs: rs.flatMap((r) => r.batchMs),
    batchCpu: rs.flatMap((r) => r.batchCpu),
    rssAfterLoad: Math.max(...rs.map((r) => r.rssAfterLoad)),
    maxRss: Math.max(...rs.map((r) => r.maxRss)),
  };
  if (rs.some((r) => r.firstLogit !== all.firstLogit)) throw new Error(`e2e: ${what}: logits differ between runs`);
  const q = quietMedian(all);
  return { ...all, ...q, minMs: Math.min(...all.batchMs), tokensPerSec: (all.batch * all.len * 1000) / q.medianMs };
}

export interface DtypeResult extends Omit<E2eResult, "warmup"> {
  dtype: "f32" | "bf16";
}

/**
 * `--dtype bf16` against `--dtype f32` on the same BF16 checkpoint: wasm, 8×128, 1 and 2 threads,
 * the four configurations alternating in rounds. The logits must be the same bits.
 */
export async function benchDtype(modelDir: string, opts: E2eOptions): Promise<DtypeResult[]> {
  const rounds = opts.quick ? 1 : 2;
  const keys = opts.threads.flatMap((threads) => (["f32", "bf16"] as const).map((dtype) => ({ dtype, threads })));
  const runs = new Map(keys.map((k) => [k, [] as E2eChildResult[]]));
  for (let round = 0; round < rounds; round++) {
    for (const k of keys) {
      opts.log(`dtype: wasm, --dtype ${k.dtype}, ${k.threads} thread(s), 8×128, round ${round + 1}/${rounds}`);
      runs.get(k)!.push(await runTimedChild<E2eChildResult>(CHILD, ["--model", modelDir, "--kernels", "wasm", "--threads", String(k.threads),
        "--batch", "8", "--len", "128", "--reps", "2", "--warmup", "full", "--dtype", k.dtype], opts.quick ? 1 : 2, opts.quick));
    }
  }
  const results = keys.map((k) => ({ ...merge(runs.get(k)!, `--dtype ${k.dtype} ${k.threads} thread(s)`), dtype: k.dtype }));
  if (results.some((r) => r.firstLogit !== results[0].firstLogit)) throw new Error("dtype: --dtype bf16 and f32 give different logits");
  return results;
}

export function benchLoad(modelDir: string, file: string, fileBytes: number, opts: E2eOptions): LoadResult[] {
  const n = opts.quick ? 1 : 5;
  const load = (kernels: KernelName) => runChild(CHILD, ["--model", modelDir, "--kernels", kernels, "--threads", "1", "--batch", "0"]) as E2eChildResult;
  const floor = () => (runChild(CHILD, ["--floor", file]) as FloorChildResult).floorMs;
  opts.log(`load: ${opts.kernels.join(", ")} and the floor (the file read into fresh memory), 1 warm-up + ${n} timed round(s), one process each`);
  // Rounds rather than one kernel set after the other: a virtual core's speed wanders over
  // minutes, and each round's loads and floor then see the same machine.
  floor();
  for (const kernels of opts.kernels) load(kernels);
  const runs = new Map<KernelName, E2eChildResult[]>(opts.kernels.map((k) => [k, []]));
  const floorMs: number[] = [];
  for (let i = 0; i < n; i++) {
    quietWait(opts.quick);
    floorMs.push(floor());
    for (const kernels of opts.kernels) {
      quietWait(opts.quick);
      runs.get(kernels)!.push(load(kernels));
    }
  }
  return opts.kernels.map((kernels) => {
    const rs = runs.get(kernels)!;
    const loadMs = rs.map((r) => r.loadMs);
    const medianMs = median(loadMs);
    return { kernels, loadMs, medianMs, mbPerSec: fileBytes / 1e3 / medianMs, rssAfterLoad: Math.max(...rs.map((r) => r.rssAfterLoad)),
      maxRss: Math.max(...rs.map((r) => r.maxRss)), floorMs, floorMedianMs: median(floorMs) };
  });
}

/**
 * One forward pass timed op by op (bench/ops-child.ts) at each thread count: which ops scale
 * and which do not. wasm only: the pure-TS forward at 8×128 takes a minute per thread count.
 */
export async function benchOps(modelDir: string, opts: E2eOptions, batch = 8, len = 128): Promise<OpsChildResult[]> {
  const results: OpsChildResult[] = [];
  for (const threads of opts.threads) {
    opts.log(`ops: wasm, ${threads} thread(s), ${batch}×${len}`);
    results.push(await leastContended(opts.quick ? 1 : 3, () => {
      quietWait(opts.quick);
      return runChild(OPS_CHILD, ["--model", modelDir, "--kernels", "wasm", "--threads", String(threads),
        "--batch", String(batch), "--len", String(len)]) as OpsChildResult;
    }, (r) => r.cpu.otherCores));
  }
  return results;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
