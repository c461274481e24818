/**
 * Single-thread kernel speed with benchmark.js, in the manner of llm.c's dev/cpu kernel lab:
 * every variant is first checked against the slow reference kernel on the same inputs, and
 * only a variant that agrees (max |Δ| ≤ 1e-3 · max |reference|) is timed.
 *
 *   matmul    reference / pure-TS packed / wasm, GPT-2 base layer shapes, T = 64, 256, 1024 rows
 *   layernorm reference / fast / wasm, 1024 × 768                        GB/s of x read + out written
 *   attention reference / fast / wasm, 12 heads, 8×128 and 1×1024 tokens GFLOPS = 2·T²·D per (text, head)
 *   gelu      reference / scalar (the path fused into the TS matmul) / wasm, 1024 × 3072
 */
import Benchmark from "benchmark";
import { Arena } from "../kernels/arena.js";
import type { PackedLinear } from "../kernels/contract.js";
import { attention, causalPlan } from "../kernels/attention.js";
import { geluScalar } from "../kernels/gelu.js";
import { layernorm } from "../kernels/layernorm.js";
import { matmulPacked, packMatmulWeight, packedSize } from "../kernels/matmul.js";
import { createWasmKernels } from "../kernels/wasm/wasm-kernels.js";
import { matmulReference, layernormReference, attentionReference, geluReference } from "../kernels/ref-kernels.js";
import { enableRelaxedSimd } from "../src/platform/node.js";
import { cpuMark, cpuUse, waitForQuiet } from "./cpu.js";
import { fillUniform, rng } from "./random.js";
import { packLinear } from "../kernels/packing.js";

export type KernelGroup = "matmul" | "layernorm" | "attention" | "gelu";

export interface KernelResult {
  group: KernelGroup;
  /** What is computed, e.g. "attn.c_attn 768→2304" or "8×128, 12 heads". */
  shape: string;
  /** Rows (matmul) or tokens (attention, layernorm, gelu). */
  rows: number;
  kernel: string;
  /** max |out − reference| over the checked outputs; null for the reference itself. */
  maxAbsDiff: number | null;
  /** 1e-3 · max |reference|: a larger difference aborts the variant. */
  tolerance: number;
  status: "timed" | "aborted" | "checked only";
  /** benchmark.js: calls per second, relative margin of error (%, 95%), samples. */
  hz: number | null;
  rmePct: number | null;
  samples: number;
  /** GFLOPS or GB/s at hz (benchmark.js's mean). */
  rate: number | null;
  /** The same at the fastest sample: what the kernel does when the (virtual) core is not slowed down. */
  bestRate: number | null;
  /** Cores other processes used while this case was timed (its least contended attempt). */
  otherCores: number | null;
  unit: "GFLOPS" | "GB/s";
  error?: string;
}

export interface KernelBenchOptions {
  /** benchmark.js maxTime per variant, seconds. */
  maxTime: number;
  /** benchmark.js minSamples for the fast variants (slow references take 2 whatever this is). */
  minSamples: number;
  /** Tries per case while other processes keep the machine busy (> 0.25 cores). */
  attempts: number;
  log: (msg: string) => void;
}

/** GPT-2 base's four linear layers (C = 768); c_fc runs with its GELU fused, as in the model. */
export const MATMUL_SHAPES = [
  { layer: "attn.c_attn", inDim: 768, outDim: 2304, gelu: false },
  { layer: "attn.c_proj", inDim: 768, outDim: 768, gelu: false },
  { layer: "mlp.c_fc+gelu", inDim: 768, outDim: 3072, gelu: true },
  { layer: "mlp.c_proj", inDim: 3072, outDim: 768, gelu: false },
];
export const MATMUL_ROWS = [64, 256, 1024];

interface Variant {
  kernel: string;
  out: Float32Array;
  run: () => void;
  /** false: too slow to time, only used to check against. */
  timed: boolean;
  /** benchmark.js minSamples; slow references take 2 (each sample is then one call of a second or more). */
  minSamples?: number;
}

interface Case {
  group: KernelGroup;
  shape: string;
  rows: number;
  unit: "GFLOPS" | "GB/s";
  /** Flops or bytes per call. */
  work: number;
  /** max |reference| over the checked outputs. */
  scale: number;
  /** max |out − reference| over the checked outputs. */
  diff: (out: Float32Array) => number;
  variants: Variant[];
}

export function benchKernels(opts: KernelBenchOptions): KernelResult[] {
  const arena = new Arena();
  enableRelaxedSimd(); // as RewardModel does: the wasm rows time the kernels users run
  const wasm = createWasmKernels(arena);
  const next = rng(42);
  const results: KernelResult[] = [];
  const run = (c: Case) => results.push(...runCase(c, opts));

  // ---- matmul
  for (const T of MATMUL_ROWS) {
    for (const { layer, inDim, outDim, gelu } of MATMUL_SHAPES) {
      const mark = arena.mark();
      const inp = fillUniform(arena.alloc(T * inDim), next, 1); // (T, inDim), like a layernorm output
      const weight = fillUniform(new Float32Array(inDim * outDim), next, 0.02); // (inDim, outDim), HF Conv1D layout
      const bias = fillUniform(new Float32Array(outDim), next, 0.02);
      const ref = referenceLinear(inp, weight, bias, T, inDim, outDim, gelu);

      const packed = arena.alloc(packedSize(inDim, outDim));
      packMatmulWeight(packed, weight, inDim, outDim);
      const tsW: PackedLinear = { inDim, outDim, dtype: "F32", packed, bias, nonFinite: 0 };
      const outTs = arena.alloc(T * outDim);
      const w = packLinear(wasm, weight, bias, inDim, outDim);
      const outWasm = arena.alloc(T * outDim);
      const variants: Variant[] = [
        { kernel: "ts packed", out: outTs, timed: true, run: () => matmulPacked(outTs, inp, tsW, T, gelu, undefined, 0, outDim) },
        { kernel: "wasm", out: outWasm, timed: true, run: () => wasm.linear(outWasm, inp, w, T, gelu, undefined, 0, outDim) },
      ];
      // The reference is ~100× slower: timed at T = 64, and at the qkv target shape (256 × c_attn).
      if (T === 64 || (T === 256 && layer === "attn.c_attn")) {
        const outRef = new Float32Array(T * outDim);
        variants.unshift({ kernel: "reference", out: outRef, timed: true, minSamples: 2, run: () => {
          matmulReference(outRef, inp, weight, bias, T, inDim, outDim);
          if (gelu) geluReference(outRef, outRef, T * outDim);
        } });
      }
      run({ group: "matmul", shape: `${layer} ${inDim}→${outDim}`, rows: T, unit: "GFLOPS", work: 2 * T * inDim * outDim, ...ref, variants });
      arena.release(mark);
    }
  }

  // ---- layernorm over the residual stream of an 8×128 batch
  {
    const rows = 1024, C = 768, eps = 1e-5;
    const mark = arena.mark();
    const x = fillUniform(arena.alloc(rows * C), next, 2, 0.3); // GPT-2's residual stream has a mean: test the cancellation case
    const weight = fillUniform(arena.alloc(C), next, 0.1, 1);
    const bias = fillUniform(arena.alloc(C), next, 0.05);
    const ref = new Float32Array(rows * C);
    layernormReference(ref, x, weight, bias, rows, C, eps);
    const outRef = new Float32Array(rows * C), outFast = arena.alloc(rows * C), outWasm = arena.alloc(rows * C);
    run({ group: "layernorm", shape: `${rows}×${C}`, rows, unit: "GB/s", work: 2 * rows * C * 4, ...fullDiff(ref), variants: [
      { kernel: "reference", out: outRef, timed: true, run: () => layernormReference(outRef, x, weight, bias, rows, C, eps) },
      { kernel: "ts fast", out: outFast, timed: true, run: () => layernorm(outFast, x, weight, bias, rows, C, eps, 0, rows) },
      { kernel: "wasm", out: outWasm, timed: true, run: () => wasm.layernorm(outWasm, x, weight, bias, rows, C, eps, 0, rows) },
    ] });
    arena.release(mark);
  }

  // ---- attention
  for (const [S, T] of [[8, 128], [1, 1024]]) {
    const nHead = 12, C = 768, D = C / nHead, N = S * T;
    const mark = arena.mark();
    const qkv = fillUniform(arena.alloc(N * 3 * C), next, 1); // (N, 3C): q | k | v
    const plan = causalPlan(Array.from({ length: S + 1 }, (_, s) => s * T), (n) => arena.allocInt32(n));
    const scratch = arena.alloc(T);
    const ref = new Float32Array(N * C);
    attentionReference(ref, qkv, plan, nHead, C);
    const outRef = new Float32Array(N * C), outFast = arena.alloc(N * C), outWasm = arena.alloc(N * C);
    run({ group: "attention", shape: `${S}×${T}, ${nHead} heads`, rows: N, unit: "GFLOPS", work: S * nHead * 2 * T * T * D, ...fullDiff(ref), variants: [
      // 1×1024 takes the reference seconds per call: it is only the yardstick there.
      { kernel: "reference", out: outRef, timed: T <= 128, minSamples: 2, run: () => attentionReference(outRef, qkv, plan, nHead, C) },
      { kernel: "ts fast", out: outFast, timed: true, run: () => attention(outFast, qkv, plan, nHead, C, scratch, 0, S * nHead) },
      { kernel: "wasm", out: outWasm, timed: true, run: () => wasm.attention(outWasm, qkv, plan, nHead, C, scratch, 0, S * nHead) },
    ] });
    arena.release(mark);
  }

  // ---- gelu over the c_fc output of an 8×128 batch
  {
    const n = 1024 * 3072;
    const mark = arena.mark();
    const x = fillUniform(arena.alloc(n), next, 2);
    const ref = new Float32Array(n);
    geluReference(ref, x, n);
    const outRef = new Float32Array(n), outScalar = arena.alloc(n), outWasm = arena.alloc(n);
    run({ group: "gelu", shape: `${n / 3072}×3072`, rows: n / 3072, unit: "GB/s", work: 8 * n, ...fullDiff(ref), variants: [
      { kernel: "reference", out: outRef, timed: true, run: () => geluReference(outRef, x, n) },
      { kernel: "ts scalar", out: outScalar, timed: true, run: () => { for (let i = 0; i < n; i++) outScalar[i] = geluScalar(x[i]); } },
      { kernel: "wasm", out: outWasm, timed: true, run: () => wasm.gelu(outWasm, x, n) },
    ] });
    arena.release(mark);
  }
  return results;
}

/**
 * The reference linear layer on the checked rows: all of them up to 64, else the first and last
 * 32 (rows are independent, and the two ends cover the 4-row tiles and any row tail), so checking
 * T = 1024 costs seconds rather than a minute.
 */
function referenceLinear(
  inp: Float32Array, weight: Float32Array, bias: Float32Array, T: number, inDim: number, outDim: number, gelu: boolean,
): { scale: number; diff: (out: Float32Array) => number } {
  const rows = T <= 64 ? [...Array(T).keys()] : [...Array(32).keys(), ...Array.from({ length: 32 }, (_, i) => T - 32 + i)];
  const sub = new Float32Array(rows.length * inDim);
  rows.forEach((r, k) => sub.set(inp.subarray(r * inDim, (r + 1) * inDim), k * inDim));
  const ref = new Float32Array(rows.length * outDim);
  matmulReference(ref, sub, weight, bias, rows.length, inDim, outDim);
  if (gelu) geluReference(ref, ref, ref.length);
  return {
    scale: maxAbs(ref),
    diff: (out) => {
      let d = 0;
      rows.forEach((r, k) => {
        for (let o = 0; o < outDim; o++) d = Math.max(d, absDiff(out[r * outDim + o], ref[k * outDim + o]));
      });
      return d;
    },
  };
}

/** Compares every output with the reference. */
function fullDiff(ref: Float32Array): { scale: number; diff: (out: Float32Array) => number } {
  return {
    scale: maxAbs(ref),
    diff: (out) => {
      let d = 0;
      for (let i = 0; i < ref.length; i++) d = Math.max(d, absDiff(out[i], ref[i]));
      return d;
    },
  };
}

/** |a − b|, with a NaN (where the reference has a number) counted as ∞ so it can never pass. */
function absDiff(a: number, b: number): number {
  const e = Math.abs(a - b);
  return Number.isNaN(e) ? Infinity : e;
}

function maxAbs(x: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/**
 * Checks each variant once, then times the ones that agree, all in one benchmark.js suite; the
 * suite is run again (up to opts.attempts times) while other processes use the machine.
 */
function runCase(c: Case, opts: KernelBenchOptions): KernelResult[] {
  opts.log(`kernels: ${c.group} ${c.shape}${c.group === "matmul" ? `, T=${c.rows}` : ""}`);
  const tolerance = 1e-3 * c.scale;
  const results = new Map<string, KernelResult>();
  const timed: Variant[] = [];
  for (const v of c.variants) {
    v.run();
    const maxAbsDiff = v.kernel === "reference" ? null : c.diff(v.out);
    const ok = maxAbsDiff === null || maxAbsDiff <= tolerance;
    results.set(v.kernel, { group: c.group, shape: c.shape, rows: c.rows, kernel: v.kernel, maxAbsDiff, tolerance,
      status: !ok ? "aborted" : v.timed ? "timed" : "checked only", hz: null, rmePct: null, samples: 0, rate: null, bestRate: null,
      otherCores: null, unit: c.unit });
    if (ok && v.timed) timed.push(v);
  }
  let bestOther = Infinity;
  for (let attempt = 0; attempt < opts.attempts && bestOther > 0.25; attempt++) {
    if (attempt > 0) opts.log(`kernels: other processes were busy (${bestOther.toFixed(2)} cores), timing again`);
    waitForQuiet(10_000);
    const suite = new Benchmark.Suite();
    for (const v of timed) suite.add(v.kernel, v.run, { maxTime: opts.maxTime, minSamples: Math.min(v.minSamples ?? opts.minSamples, opts.minSamples) });
    const timings = new Map<string, Partial<KernelResult>>();
    suite.on("cycle", (e: Benchmark.Event) => {
      const b = e.target as unknown as Benchmark & { name: string };
      if (b.error) timings.set(b.name, { status: "aborted", error: String(b.error) });
      else timings.set(b.name, { hz: b.hz, rmePct: b.stats.rme, samples: b.stats.sample.length,
        rate: (b.hz * c.work) / 1e9, bestRate: c.work / Math.min(...b.stats.sample) / 1e9 });
    });
    const before = cpuMark();
    suite.run({ async: false });
    const other = cpuUse(before, cpuMark()).otherCores ?? 0;
    if (other < bestOther) {
      bestOther = other;
      for (const [name, t] of timings) Object.assign(results.get(name)!, t, { otherCores: other });
    }
  }
  return [...results.values()];
}
