/**
 * End-to-end scoring and load time of GPT-2 base, one child process per measurement
 * (bench/e2e-child.ts) so that each configuration's peak RSS and JIT state are its own. Children
 * run one after another: on a 2-core machine two at once would time each other.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { E2eChildResult } from "./e2e-child.js";

export type KernelName = "ts" | "wasm";

/** Batch shapes (texts × tokens): one long text, the default batch of 8, many short texts. */
export const E2E_SHAPES: [number, number][] = [[1, 256], [8, 128], [16, 64]];

export interface E2eResult extends E2eChildResult {
  /** Median of batchMs. */
  medianMs: number;
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
}

export interface E2eOptions {
  quick: boolean;
  kernels: KernelName[];
  threads: number[];
  log: (msg: string) => void;
}

const CHILD = fileURLToPath(new URL("./e2e-child.js", import.meta.url));

export function runChild(script: string, args: string[]): unknown {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(" ")}: exited with ${r.status ?? r.signal}`);
  const last = r.stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last);
}

/**
 * Repetitions per configuration. A pure-TS 8×128 batch takes tens of seconds, so it is warmed
 * with one short text (which already gets every kernel optimized) and timed twice, or once
 * with --quick; wasm batches take seconds and get a full warm-up batch and five timings.
 */
function plan(kernels: KernelName, quick: boolean): { reps: number; warmup: "full" | "small" } {
  if (kernels === "ts") return { reps: quick ? 1 : 2, warmup: "small" };
  return { reps: quick ? 2 : 5, warmup: "full" };
}

export function benchE2e(modelDir: string, opts: E2eOptions): E2eResult[] {
  const results: E2eResult[] = [];
  for (const kernels of opts.kernels) {
    const { reps, warmup } = plan(kernels, opts.quick);
    for (const [batch, len] of E2E_SHAPES) {
      for (const threads of opts.threads) {
        opts.log(`e2e: ${kernels}, ${threads} thread(s), ${batch}×${len}, ${reps} rep(s) after a ${warmup} warm-up`);
        const r = runChild(CHILD, ["--model", modelDir, "--kernels", kernels, "--threads", String(threads),
          "--batch", String(batch), "--len", String(len), "--reps", String(reps), "--warmup", warmup]) as E2eChildResult;
        const medianMs = median(r.batchMs);
        results.push({ ...r, medianMs, tokensPerSec: (batch * len * 1000) / medianMs, warmup });
      }
    }
  }
  return results;
}

export function benchLoad(modelDir: string, fileBytes: number, opts: E2eOptions): LoadResult[] {
  const results: LoadResult[] = [];
  const n = opts.quick ? 1 : 3;
  for (const kernels of opts.kernels) {
    opts.log(`load: ${kernels}, 1 warm-up + ${n} timed load(s), one process each`);
    const load = () => runChild(CHILD, ["--model", modelDir, "--kernels", kernels, "--threads", "1", "--batch", "0"]) as E2eChildResult;
    load();
    const runs = Array.from({ length: n }, load);
    const loadMs = runs.map((r) => r.loadMs);
    const medianMs = median(loadMs);
    results.push({ kernels, loadMs, medianMs, mbPerSec: fileBytes / 1e3 / medianMs,
      rssAfterLoad: Math.max(...runs.map((r) => r.rssAfterLoad)), maxRss: Math.max(...runs.map((r) => r.maxRss)) });
  }
  return results;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
