/**
 * One copy of a compute-bound kernel loop, for bench/capacity.ts:
 *   node dist/bench/capacity-child.js --kernels ts|wasm --seconds S --start EPOCH_MS [--rows T --in I --out O]
 * Runs one matmul (default the qkv shape 256×768·768×2304) single-threaded for S seconds from wall-clock time
 * EPOCH_MS (so that copies started together overlap exactly), after a warm-up, and
 * prints one JSON line: { gflops, cpuMs } (cpuMs: the whole process's CPU time).
 */
import { Arena } from "../kernels/arena.js";
import { createTsKernels } from "../kernels/ts-kernels.js";
import { createWasmKernels } from "../kernels/wasm/wasm-kernels.js";
import { enableRelaxedSimd } from "../src/platform/node.js";
import { fillUniform, rng } from "./random.js";
import { childArg } from "./child-args.js";
import { packLinear } from "../kernels/packing.js";

const arg = (name: string, fallback?: string): string => childArg("capacity-child", name, fallback);

enableRelaxedSimd(); // as RewardModel does
const kernels = arg("kernels") === "ts" ? createTsKernels(new Arena()) : createWasmKernels(new Arena());
const seconds = Number(arg("seconds"));
const [T, inDim, outDim] = [Number(arg("rows", "256")), Number(arg("in", "768")), Number(arg("out", "2304"))];
const next = rng(1);
const w = packLinear(kernels, fillUniform(new Float32Array(inDim * outDim), next, 0.02), new Float32Array(outDim), inDim, outDim);
const inp = fillUniform(kernels.alloc(T * inDim), next, 1);
const out = kernels.alloc(T * outDim);
const call = () => kernels.linear(out, inp, w, T, false, undefined, 0, outDim);

for (const t = performance.now(); performance.now() - t < 500;) call();
const start = Number(arg("start"));
if (Date.now() < start) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, start - Date.now());
let calls = 0;
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  call();
  calls++;
}
const elapsed = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage();
process.stdout.write(JSON.stringify({ gflops: (calls * 2 * T * inDim * outDim) / elapsed / 1e9, cpuMs: (cpu.user + cpu.system) / 1000 }) + "\n");
