/**
 * The reference kernels: GPT-2's arithmetic as the plain loops a student expects, and the kernel
 * set (`createRefKernels`, at the end) that runs them behind the `Kernels` contract
 * (kernels/contract.ts). This is the file to read first. From the forward pass it is two hops:
 *
 *   src/model/gpt2.ts   runner.linear(qkv, xn, block.attn.c_attn, N, false, panels)
 *   src/run/runner.ts   serialRunner: kernels.linear(..., 0, outDim)   (the range: all columns)
 *   here                linear → matmulReference, the triple loop below
 *
 * Select it with `--kernels ref` (CLI) or `{ kernels: "ref" }` (RewardModel.load). Nothing is
 * packed: a Conv1D weight stays in the checkpoint's (inDim, outDim) layout, and every call
 * computes all of its work items on one thread (RewardModel refuses threads > 1 with it). The
 * golden tests run it against PyTorch like the fast kernels, and the kernel tests check every
 * fast kernel (kernels/matmul.ts, layernorm.ts, attention.ts, ..., wasm/) against these loops.
 * They agree to float noise, not to the bit: the fast kernels add in other orders and widths.
 */
import { Arena } from "./arena.js";
import type { AttentionPlan, Kernels, PackedLinear } from "./contract.js";
import { countNonFinite } from "./finite.js";
import { countNonFinite16, widen16 } from "./half.js";

// ---------------------------------------------------------------------------------------------
// The loops, in the order a block calls them

/**
 * LayerNorm over the last dimension, with the biased variance as torch computes it:
 *   out = (x − mean) / sqrt(var + eps) · weight + bias
 * inp and out are (rows, C); weight and bias are (C); out may alias inp. Two obvious passes per row.
 */
export function layernormReference(
  out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array,
  rows: number, C: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const x = inp.subarray(r * C, (r + 1) * C);
    const mean = x.reduce((a, b) => a + b, 0) / C;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
    for (let c = 0; c < C; c++) out[r * C + c] = ((x[c] - mean) / Math.sqrt(variance + eps)) * weight[c] + bias[c];
  }
}

/**
 * The Conv1D of GPT-2: out = inp · weight + bias. inp is (rows, inDim), weight is (inDim, outDim)
 * as HF stores it (the transpose of nn.Linear, so weight[i, o] is at weight[i * outDim + o]),
 * bias is (outDim) or null, out is (rows, outDim).
 */
export function matmulReference(
  out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array | null,
  rows: number, inDim: number, outDim: number,
): void {
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let sum = 0;
      for (let i = 0; i < inDim; i++) sum += inp[r * inDim + i] * weight[i * outDim + o];
      out[r * outDim + o] = sum + (bias ? bias[o] : 0);
    }
  }
}

/** Softmax over n values, shifted by the maximum so exp never overflows. inp and out are (n). */
export function softmaxReference(out: Float32Array, inp: Float32Array, n: number): void {
  const max = Math.max(...inp.subarray(0, n));
  const e = Array.from(inp.subarray(0, n), (x) => Math.exp(x - max));
  const total = e.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) out[i] = e[i] / total;
}

/**
 * Causal multi-head self-attention (kernels/attention.ts says how q, k, v sit in qkv; the plan,
 * kernels/contract.ts AttentionPlan, which rows each query sees). qkv is (R, 3C); out gets C
 * floats per query. For each block of queries and each head: the full score matrix q·kᵀ/√D over
 * the block's key rows, the future masked with −∞, a softmax per row, then the rows times v.
 */
export function attentionReference(
  out: Float32Array, qkv: Float32Array, plan: AttentionPlan, nHead: number, C: number,
): void {
  const D = C / nHead;
  const scale = 1 / Math.sqrt(D);
  const { blocks, keyRows } = plan;
  for (let b = 0; b < blocks.length / 5; b++) {
    const [qRow, count, outRow, keyStart, seen] = blocks.subarray(b * 5, b * 5 + 5);
    const K = seen + count - 1; // the block's last query sees all its keys
    for (let h = 0; h < nHead; h++) {
      const q = (i: number, d: number) => qkv[(qRow + i) * 3 * C + h * D + d];
      const k = (j: number, d: number) => qkv[keyRows[keyStart + j] * 3 * C + C + h * D + d];
      const v = (j: number, d: number) => qkv[keyRows[keyStart + j] * 3 * C + 2 * C + h * D + d];
      for (let i = 0; i < count; i++) {
        const scores = new Float32Array(K);
        for (let j = 0; j < K; j++) {
          if (j >= seen + i) {
            scores[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q(i, d) * k(j, d);
          scores[j] = dot * scale;
        }
        const p = new Float32Array(K);
        softmaxReference(p, scores, K);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < K; j++) acc += p[j] * v(j, d);
          out[(outRow + i) * C + h * D + d] = acc;
        }
      }
    }
  }
}

/** The residual connection: out = a + b. a, b and out are (n); out may alias a or b. */
export function residualReference(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/**
 * gelu_new, the tanh approximation GPT-2 trained with (kernels/gelu.ts says why not erf).
 * inp and out are (n); out may alias inp.
 */
export function geluReference(out: Float32Array, inp: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * Math.pow(x, 3))));
  }
}

// ---------------------------------------------------------------------------------------------
// The kernel set

/** The reference loops compute a whole call: a range that is not all of it is a runner bug. */
function whole(kernel: string, start: number, end: number, items: number): void {
  if (start !== 0 || end !== items) {
    throw new RangeError(`ref kernels: ${kernel} computes all ${items} work items on one thread, asked for [${start}, ${end})`);
  }
}

export function createRefKernels(arena: Arena = new Arena()): Kernels {
  /** A Conv1D weight in the checkpoint's layout, (inDim, outDim) row-major, and its bias. */
  const linearWeight = (inDim: number, outDim: number, bias: Float32Array, weight: Float32Array, nonFinite: number): PackedLinear => {
    const b = arena.alloc(outDim);
    b.set(bias.subarray(0, outDim));
    return { inDim, outDim, dtype: "F32", packed: weight, bias: b, nonFinite };
  };

  return {
    name: "ref",
    ...arena.allocation(),

    packLinearRows(inDim, outDim, bias, read) {
      const weight = arena.allocUncleared(inDim * outDim); // `read` writes every float
      read(0, inDim, weight);
      return linearWeight(inDim, outDim, bias, weight, countNonFinite(weight));
    },

    /** Widened to F32 at load (exact, so the same logits): matmulReference reads F32, so --dtype saves no memory here. */
    packLinearRows16(inDim, outDim, bias, dtype, read) {
      const raw = new Uint16Array(inDim * outDim);
      read(0, inDim, raw);
      const weight = arena.allocUncleared(inDim * outDim);
      widen16(weight, raw, 0, raw.length, dtype);
      return linearWeight(inDim, outDim, bias, weight, countNonFinite16(raw, dtype));
    },

    countNonFinite,

    linear(out, inp, w, rows, gelu, _scratch, colStart, colEnd) {
      whole("linear", colStart, colEnd, w.outDim);
      matmulReference(out, inp, w.packed as Float32Array, w.bias, rows, w.inDim, w.outDim);
      if (gelu) geluReference(out, out, rows * w.outDim);
    },

    layernorm(out, inp, weight, bias, rows, C, eps, rowStart, rowEnd) {
      whole("layernorm", rowStart, rowEnd, rows);
      layernormReference(out, inp, weight, bias, rows, C, eps);
    },

    attention(out, qkv, plan, nHead, C, _scratch, itemStart, itemEnd) {
      whole("attention", itemStart, itemEnd, (plan.blocks.length / 5) * nHead);
      attentionReference(out, qkv, plan, nHead, C);
    },

    residual(out, a, b, n, start, end) {
      whole("residual", start, end, n);
      residualReference(out, a, b, n);
    },
  };
}
