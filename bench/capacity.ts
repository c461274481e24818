/**
 * How much two threads can give on this machine at all: the same single-threaded matmul loop in
 * one process, then in two processes at once (no shared memory, no synchronization). If the two
 * vCPUs are hyperthreads of one core, or share a memory bus that saturates, the aggregate
 * speed-up is well below 2× and no thread pool can reach the 1.85× end to end.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpuMark, cpuUse, waitForQuiet } from "./cpu.js";

const CHILD = fileURLToPath(new URL("./capacity-child.js", import.meta.url));

export interface CapacityResult {
  kernels: string;
  /** GFLOPS of one process alone. */
  alone: number;
  /** GFLOPS of each of two processes running at the same time. */
  together: number[];
  /** Sum of `together` / `alone`. */
  speedup: number;
  /** Other processes' CPU during the two-process run, in cores (0 to 2 would mean they took our cores). */
  otherCores: number | null;
}

function runCopies(kernels: string, copies: number, seconds: number): Promise<number[]> {
  return Promise.all(Array.from({ length: copies }, () => new Promise<number>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CHILD, "--kernels", kernels, "--seconds", String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.on("close", (code) => (code === 0 ? resolvePromise(JSON.parse(stdout).gflops) : reject(new Error(`capacity-child exited with ${code}`))));
  })));
}

export async function benchCapacity(quick: boolean, log: (msg: string) => void): Promise<CapacityResult[]> {
  const seconds = quick ? 2 : 5;
  const results: CapacityResult[] = [];
  for (const kernels of ["wasm", "ts"]) {
    log(`capacity: ${kernels} qkv matmul, 1 process, then 2 at once, ${seconds} s each`);
    waitForQuiet(quick ? 10_000 : 60_000);
    const [alone] = await runCopies(kernels, 1, seconds);
    waitForQuiet(quick ? 10_000 : 60_000);
    const before = cpuMark();
    const together = await runCopies(kernels, 2, seconds);
    const use = cpuUse(before, cpuMark());
    // The children are not this process: their CPU shows up as "other"; take out the two cores they used at most.
    const otherCores = use.otherCores === null ? null : Math.max(0, use.otherCores - 2 * (seconds + 0.7) / ((seconds + 0.7) + 0.3));
    results.push({ kernels, alone, together, speedup: (together[0] + together[1]) / alone, otherCores });
  }
  return results;
}
