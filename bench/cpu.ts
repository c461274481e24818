/**
 * How busy the machine was while we timed: on a shared 2-core box, another process taking a
 * core halves a 2-thread run and leaves a 1-thread run alone, which is enough to fake a bad
 * speed-up. /proc/stat counts every process's CPU time; subtracting our own gives the others'.
 */
import { readFileSync } from "node:fs";

export interface CpuMark {
  wallMs: number;
  /** This process, all threads, ms. */
  ownMs: number;
  /** All processes (busy jiffies of /proc/stat × 10 ms), or null off Linux. */
  allMs: number | null;
}

export interface CpuUse {
  /** Our CPU time / wall time: ~threads when every thread computed all the time. */
  ownCores: number;
  /** Other processes' CPU time / wall time, in cores; null where /proc/stat is missing. */
  otherCores: number | null;
}

export function cpuMark(): CpuMark {
  const u = process.cpuUsage();
  let allMs: number | null = null;
  try {
    // cpu  user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait. USER_HZ is 100 on Linux.
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    allMs = (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0)) * 10;
  } catch {
    // not Linux
  }
  return { wallMs: performance.now(), ownMs: (u.user + u.system) / 1000, allMs };
}

export function cpuUse(a: CpuMark, b: CpuMark): CpuUse {
  const wall = b.wallMs - a.wallMs;
  const own = b.ownMs - a.ownMs;
  const other = a.allMs === null || b.allMs === null ? null : Math.max(0, b.allMs - a.allMs - own);
  return { ownCores: own / wall, otherCores: other === null ? null : other / wall };
}

/**
 * Waits (up to maxWaitMs) until other processes use less than `threshold` cores over one
 * second, so that a child starts on a quiet machine. Returns the others' load last seen.
 * Meant for the parent between children, when it is itself idle.
 */
export function waitForQuiet(maxWaitMs: number, threshold = 0.1): number | null {
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  const t0 = performance.now();
  for (;;) {
    const a = cpuMark();
    Atomics.wait(sleep, 0, 0, 1000);
    const other = cpuUse(a, cpuMark()).otherCores;
    if (other === null || other < threshold || performance.now() - t0 > maxWaitMs) return other;
  }
}

/**
 * Runs a measurement up to `attempts` times, stopping at the first one during which other
 * processes used at most `threshold` cores, and returns the least contended one.
 */
export async function leastContended<T>(attempts: number, run: () => T | Promise<T>, contention: (t: T) => number | null, threshold = 0.1): Promise<T> {
  let best: T | undefined;
  let bestLoad = Infinity;
  for (let a = 0; a < attempts; a++) {
    const t = await run();
    const load = contention(t) ?? 0;
    if (load < bestLoad) [best, bestLoad] = [t, load];
    if (load <= threshold) break;
  }
  return best!;
}
