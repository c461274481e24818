/**
 * Single-thread speed of the wasm kernels, by matmul tile shape: not a test (timings never are).
 *   npm run build && node dist/kernels/wasm/measure.js [--all]
 * (add --experimental-wasm-relaxed-simd on Node 20 to time the fused multiply-add variant)
 */
import { Arena } from "../arena.js";
import type { Kernels } from "../backend.js";
import { createTsKernels } from "../ts-backend.js";
import { createWasmKernels, wasmRelaxedSimdSupported } from "./backend.js";
import type { KernelModuleOptions } from "./module.js";

const TILES: Partial<KernelModuleOptions>[] = process.argv.includes("--all")
  ? [
    { tileRows: 4, tileCols: 8, unroll: 1 }, { tileRows: 4, tileCols: 8, unroll: 2 }, { tileRows: 4, tileCols: 8, unroll: 4 },
    { tileRows: 6, tileCols: 8, unroll: 2 }, { tileRows: 5, tileCols: 8, unroll: 2 }, { tileRows: 8, tileCols: 4, unroll: 2 },
    { tileRows: 2, tileCols: 16, unroll: 2 }, { tileRows: 3, tileCols: 16, unroll: 2 }, { tileRows: 4, tileCols: 12, unroll: 2 },
  ]
  : [{}];

function random(k: Kernels, n: number): Float32Array {
  const a = k.alloc(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Best of `reps` timings (ms) after a warm-up call, so the optimizing tier has compiled the kernel. */
function time(fn: () => void, reps: number): number {
  fn();
  fn();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

function linearGflops(k: Kernels, rows: number, inDim: number, outDim: number, gelu = false): number {
  const w = k.packLinear(random(k, inDim * outDim), random(k, outDim), inDim, outDim);
  const inp = random(k, rows * inDim);
  const out = k.alloc(rows * outDim);
  const ms = time(() => k.linear(out, inp, w, rows, gelu, 0, outDim), rows >= 1024 ? 3 : 8);
  return (2 * rows * inDim * outDim) / (ms * 1e6);
}

function attentionMs(k: Kernels, T: number, nHead: number, C: number): number {
  const qkv = random(k, T * 3 * C);
  const out = k.alloc(T * C);
  const starts = k.allocInt32(2);
  starts[1] = T;
  const scratch = k.alloc(T);
  return time(() => k.attention(out, qkv, starts, nHead, C, scratch, 0, nHead), 3);
}

const shapes: [number, number, number][] = [[64, 768, 2304], [256, 768, 2304], [1024, 768, 2304], [256, 3072, 768]];
const fmaModes = wasmRelaxedSimdSupported() ? [false, true] : [false];
for (const fma of fmaModes) {
  for (const tile of TILES) {
    const k = createWasmKernels(new Arena(), { ...tile, fma });
    const label = `wasm ${tile.tileRows ?? 4}x${tile.tileCols ?? 8} unroll ${tile.unroll ?? 2}${fma ? " fma" : ""}`;
    const g = shapes.map(([r, i, o]) => `${r}x${i}·${i}x${o} ${linearGflops(k, r, i, o).toFixed(1)}`);
    console.log(`${label.padEnd(28)} GFLOPS: ${g.join("  ")}  (gelu 256x768·768x3072 ${linearGflops(k, 256, 768, 3072, true).toFixed(1)})`);
  }
}
const ts = createTsKernels(new Arena());
console.log(`${"ts".padEnd(28)} GFLOPS: 256x768·768x2304 ${linearGflops(ts, 256, 768, 2304).toFixed(1)}`);

const wasm = createWasmKernels(new Arena());
for (const T of [64, 256, 1024]) {
  console.log(`attention T=${T} 12 heads C=768: wasm ${attentionMs(wasm, T, 12, 768).toFixed(2)} ms, ts ${attentionMs(ts, T, 12, 768).toFixed(2)} ms`);
}
{
  const rows = 1024, C = 768;
  const x = random(wasm, rows * C), y = wasm.alloc(rows * C), w = random(wasm, C), b = random(wasm, C);
  const xt = random(ts, rows * C), yt = ts.alloc(rows * C), wt = random(ts, C), bt = random(ts, C);
  console.log(`layernorm 1024x768: wasm ${time(() => wasm.layernorm(y, x, w, b, C, 1e-5, 0, rows), 10).toFixed(3)} ms, ` +
    `ts ${time(() => ts.layernorm(yt, xt, wt, bt, C, 1e-5, 0, rows), 10).toFixed(3)} ms`);
  console.log(`residual 1024x768: wasm ${time(() => wasm.residual(y, x, y, 0, rows * C), 10).toFixed(3)} ms, ` +
    `ts ${time(() => ts.residual(yt, xt, yt, 0, rows * C), 10).toFixed(3)} ms`);
}
