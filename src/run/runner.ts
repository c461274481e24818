/**
 * How the forward pass calls kernels. Each Runner method takes exactly the arguments of the
 * kernel of the same name (kernels/contract.ts) without the last two, the range [start, end) of
 * work items: a runner decides who computes which range. `serialRunner` computes the whole range
 * on this thread, so with it a call goes straight through, `runner.linear(...)` →
 * `kernels.linear(..., 0, outDim)`; the worker pool (src/run/pool.ts) hands parts of the same
 * range to threads. Keeping the split here is what lets the forward pass read like the model.
 *
 * Per-thread scratch buffers (`scratch`) are passed whole: a runner gives each thread its
 * equal share, scratch.length / threads floats.
 */
import type { AttentionPlan, Kernels, PackedLinear } from "../../kernels/contract.js";

export interface Runner {
  readonly kernels: Kernels;
  readonly threads: number;
  /** out[rows, outDim] = inp · W + b (then GELU). A 16-bit `w` needs LINEAR_SCRATCH_COLS × inDim floats of `scratch` per thread. */
  linear(out: Float32Array, inp: Float32Array, w: PackedLinear, rows: number, gelu: boolean, scratch: Float32Array | undefined): void;
  layernorm(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, rows: number, C: number, eps: number): void;
  /** `scratch` holds, per thread, as many floats as the most keys a query sees. */
  attention(out: Float32Array, qkv: Float32Array, plan: AttentionPlan, nHead: number, C: number, scratch: Float32Array): void;
  residual(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;
  close(): Promise<void>;
}

/** How many work items each kernel call has: the range a serial runner covers. */
export const workItems = {
  linear: (w: PackedLinear) => w.outDim,
  layernorm: (rows: number) => rows,
  attention: (plan: AttentionPlan, nHead: number) => (plan.blocks.length / 5) * nHead,
  residual: (n: number) => n,
};

export function serialRunner(kernels: Kernels): Runner {
  return {
    kernels,
    threads: 1,
    linear: (out, inp, w, rows, gelu, scratch) => kernels.linear(out, inp, w, rows, gelu, scratch, 0, workItems.linear(w)),
    layernorm: (out, inp, weight, bias, rows, C, eps) => kernels.layernorm(out, inp, weight, bias, rows, C, eps, 0, workItems.layernorm(rows)),
    attention: (out, qkv, plan, nHead, C, scratch) =>
      kernels.attention(out, qkv, plan, nHead, C, scratch, 0, workItems.attention(plan, nHead)),
    residual: (out, a, b, n) => kernels.residual(out, a, b, n, 0, workItems.residual(n)),
    close: async () => {},
  };
}
