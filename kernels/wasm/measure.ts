/**
 * Single-thread speed of the wasm kernels, by matmul tile shape: not a test (timings never are).
 *   npm run build && node dist/kernels/wasm/measure.js [--all]
 * (add --experimental-wasm-relaxed-simd on Node 20 to time the fused multiply-add variant too)
 *
 * Shared machines are noisy, so the configurations are timed round-robin for several rounds and
 * each keeps its best: the speed it reaches when nothing else is running.
 */
import { Arena } from "../arena.js";
import { causalPlan } from "../attention.js";
import type { Kernels } from "../contract.js";
import { createTsKernels } from "../ts-kernels.js";
import { createWasmKernels, wasmRelaxedSimdSupported } from "./wasm-kernels.js";
import { DEFAULT_OPTIONS } from "./module.js";
import { packLinear } from "../packing.js";

const ROUNDS = 8;
const tiles: [number, number][] = process.argv.includes("--all")
  ? [[4, 8], [3, 8], [5, 8], [6, 8], [8, 4], [2, 16], [3, 16], [4, 12]]
  : [[DEFAULT_OPTIONS.tileRows, DEFAULT_OPTIONS.tileCols]];
const shapes: [number, number, number][] = [[64, 768, 2304], [256, 768, 2304], [1024, 768, 2304], [256, 3072, 768]];

function random(k: Kernels, n: number): Float32Array {
  const a = k.alloc(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

function timeOnce(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Liftoff runs the first calls; keep calling until V8's optimizing tier has replaced it. */
function warm(fn: () => void): void {
  for (const t0 = performance.now(); performance.now() - t0 < 300;) fn();
}

interface Case { label: string; flops: number; run: () => void; best: number }

function linearCase(label: string, k: Kernels, [rows, inDim, outDim]: [number, number, number], gelu = false): Case {
  const w = packLinear(k, random(k, inDim * outDim), random(k, outDim), inDim, outDim);
  const inp = random(k, rows * inDim);
  const out = k.alloc(rows * outDim);
  return { label: `${label} ${rows}x${inDim}·${inDim}x${outDim}${gelu ? "+gelu" : ""}`, flops: 2 * rows * inDim * outDim,
    run: () => k.linear(out, inp, w, rows, gelu, undefined, 0, outDim), best: Infinity };
}

function attentionCase(label: string, k: Kernels, T: number, nHead = 12, C = 768): Case {
  const qkv = random(k, T * 3 * C);
  const out = k.alloc(T * C);
  const plan = causalPlan([0, T], (n) => k.allocInt32(n));
  const scratch = k.alloc(T);
  // q·k and p·v over the causal half: 2 · (T(T+1)/2) · D · 2 flops per head
  return { label: `${label} attention T=${T}`, flops: 2 * T * (T + 1) * C, best: Infinity,
    run: () => k.attention(out, qkv, plan, nHead, C, scratch, 0, nHead) };
}

function rowCase(label: string, k: Kernels, what: "layernorm" | "residual", rows = 1024, C = 768): Case {
  const x = random(k, rows * C), y = k.alloc(rows * C), w = random(k, C), b = random(k, C);
  return { label: `${label} ${what} ${rows}x${C}`, flops: 0, best: Infinity,
    run: what === "layernorm" ? () => k.layernorm(y, x, w, b, rows, C, 1e-5, 0, rows) : () => k.residual(y, x, y, rows * C, 0, rows * C) };
}

const cases: Case[] = [];
for (const fma of wasmRelaxedSimdSupported() ? [false, true] : [false]) {
  for (const [tileRows, tileCols] of tiles) {
    const k = createWasmKernels(new Arena(), { tileRows, tileCols, fma });
    const label = `wasm ${tileRows}x${tileCols}${fma ? " fma" : ""}`;
    for (const s of shapes) cases.push(linearCase(label, k, s));
    cases.push(linearCase(label, k, [256, 768, 3072], true));
  }
}
const wasm = createWasmKernels(new Arena());
const ts = createTsKernels(new Arena());
cases.push(linearCase("ts", ts, [256, 768, 2304]));
for (const T of [64, 256, 1024]) cases.push(attentionCase("wasm", wasm, T), attentionCase("ts", ts, T));
for (const what of ["layernorm", "residual"] as const) cases.push(rowCase("wasm", wasm, what), rowCase("ts", ts, what));

for (const c of cases) warm(c.run);
for (let round = 0; round < ROUNDS; round++) {
  for (const c of cases) c.best = Math.min(c.best, timeOnce(c.run));
}
for (const c of cases) {
  const rate = c.flops > 0 ? `${(c.flops / (c.best * 1e6)).toFixed(1).padStart(6)} GFLOPS` : "";
  console.log(`${c.label.padEnd(44)} ${c.best.toFixed(3).padStart(9)} ms ${rate}`);
}
