/**
 * How the forward pass calls kernels: each call is split into ranges of work items, and a
 * runner decides who computes which range. `serialRunner` does it all on this thread; the worker
 * pool (src/run/pool.ts) hands the same ranges to threads. Keeping the split in one place is what
 * lets the forward pass read like the model and not like a scheduler.
 */
import type { Kernels, PackedLinear } from "../../kernels/contract.js";

export interface Runner {
  readonly kernels: Kernels;
  readonly threads: number;
  /** out[rows, outDim] = inp · W + b (then GELU). */
  /** A 16-bit `w` needs `scratch`: LINEAR_SCRATCH_COLS × inDim floats per thread. */
  linear(out: Float32Array, inp: Float32Array, w: PackedLinear, rows: number, gelu: boolean, scratch?: Float32Array): void;
  layernorm(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, rows: number, C: number, eps: number): void;
  /** `scratch` holds maxLen floats per thread. */
  attention(out: Float32Array, qkv: Float32Array, seqStarts: Int32Array, nHead: number, C: number, scratch: Float32Array, maxLen: number): void;
  residual(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;
  close(): Promise<void>;
}

export function serialRunner(kernels: Kernels): Runner {
  return {
    kernels,
    threads: 1,
    linear: (out, inp, w, rows, gelu, scratch) => kernels.linear(out, inp, w, rows, gelu, 0, w.outDim, scratch),
    layernorm: (out, inp, weight, bias, rows, C, eps) => kernels.layernorm(out, inp, weight, bias, C, eps, 0, rows),
    attention: (out, qkv, seqStarts, nHead, C, scratch) =>
      kernels.attention(out, qkv, seqStarts, nHead, C, scratch, 0, (seqStarts.length - 1) * nHead),
    residual: (out, a, b, n) => kernels.residual(out, a, b, 0, n),
    close: async () => {},
  };
}
