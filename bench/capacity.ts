/**
 * How much two threads can give on this machine at all: the same single-threaded matmul loop in
 * one process, then in two processes at once (no shared memory, no synchronization). If the two
 * vCPUs are hyperthreads of one core, or share a memory path that saturates, the aggregate
 * speed-up is well below 2× and no thread pool can reach the 1.85× end to end.
 * Two shapes: the qkv matmul, whose input (768 KB) stays in L2, and mlp.c_proj at T = 1024,
 * whose input (12 MB) the wasm kernel streams from L3/DRAM once per 8-column panel.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpuMark, cpuUse, leastContended, waitForQuiet } from "./cpu.js";

const CHILD = fileURLToPath(new URL("./capacity-child.js", import.meta.url));

/** rows × in · in × out */
export const CAPACITY_SHAPES: { kernels: string; shape: [number, number, number] }[] = [
  { kernels: "wasm", shape: [256, 768, 2304] },
  { kernels: "wasm", shape: [1024, 3072, 768] },
  { kernels: "ts", shape: [256, 768, 2304] },
];

export interface CapacityResult {
  kernels: string;
  shape: [number, number, number];
  /** GFLOPS of one process alone. */
  alone: number;
  /** GFLOPS of each of two processes running at the same time. */
  together: number[];
  /** Sum of `together` / `alone`. */
  speedup: number;
  /** Other processes' CPU during the one- and the two-process run, in cores. */
  otherCores: [number | null, number | null];
}

interface Copy { gflops: number; cpuMs: number }

function runCopies(kernels: string, [rows, inDim, outDim]: [number, number, number], copies: number, seconds: number): Promise<Copy[]> {
  const start = String(Date.now() + 2000); // after every copy has started and warmed up
  return Promise.all(Array.from({ length: copies }, () => new Promise<Copy>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CHILD, "--kernels", kernels, "--seconds", String(seconds), "--start", start,
      "--rows", String(rows), "--in", String(inDim), "--out", String(outDim)], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.on("close", (code) => (code === 0 ? resolvePromise(JSON.parse(stdout) as Copy) : reject(new Error(`capacity-child exited with ${code}`))));
  })));
}

/** Runs `copies` children at once on a quiet machine; also returns the other processes' CPU meanwhile. */
async function measured(kernels: string, shape: [number, number, number], copies: number, seconds: number, quick: boolean): Promise<[Copy[], number | null]> {
  waitForQuiet(quick ? 10_000 : 30_000);
  const before = cpuMark();
  const runs = await runCopies(kernels, shape, copies, seconds);
  const after = cpuMark();
  // The children's CPU counts as "other" to cpuUse (they are not this process): take it out.
  const { otherCores } = cpuUse(before, after);
  const childCores = runs.reduce((a, c) => a + c.cpuMs, 0) / (after.wallMs - before.wallMs);
  return [runs, otherCores === null ? null : Math.max(0, otherCores - childCores)];
}

export async function benchCapacity(quick: boolean, log: (msg: string) => void): Promise<CapacityResult[]> {
  const seconds = quick ? 2 : 5;
  const results: CapacityResult[] = [];
  for (const { kernels, shape } of CAPACITY_SHAPES) {
    log(`capacity: ${kernels} matmul ${shape.join("×")}, 1 process, then 2 at once, ${seconds} s each`);
    // Up to 3 tries each (1 with --quick) to find a quiet moment: a busy neighbour makes this table meaningless.
    const attempts = quick ? 1 : 3;
    const [alone, aloneOther] = await leastContended(attempts, () => measured(kernels, shape, 1, seconds, quick), (m) => m[1]);
    const [together, togetherOther] = await leastContended(attempts, () => measured(kernels, shape, 2, seconds, quick), (m) => m[1]);
    results.push({ kernels, shape, alone: alone[0].gflops, together: together.map((c) => c.gflops),
      speedup: (together[0].gflops + together[1].gflops) / alone[0].gflops, otherCores: [aloneOther, togetherOther] });
  }
  return results;
}
