/**
 * The contract between the GPT-2 forward pass (src/model/gpt2.ts) and a set of kernels.
 *
 * Activations are "packed varlen": the texts of a batch are laid end to end, so a batch of
 * texts with lengths [5, 3] is an [8, C] matrix, and attention's plan (AttentionPlan) says which
 * rows each query sees: the rows at or before it in its own text. No kernel ever sees a padding
 * position: matmuls, layernorms and GELUs run over real tokens only. With right padding a real
 * token never attends to a pad, so this computes exactly what Hugging Face computes for the real
 * tokens of a padded batch. (Texts that begin alike may share the rows of their common prefix:
 * src/model/batch-plan.ts.)
 *
 * All buffers a kernel touches come from `memory` (via `alloc`), so that WebAssembly kernels
 * and worker threads can address them by byte offset. Every kernel that a thread pool may split
 * takes a half-open range [start, end) of its outer work items; a backend must compute each
 * output element with the same arithmetic whatever the range, so that the logits are
 * bit-identical for any thread count.
 */

import type { WeightDType } from "./half.js";

/** Fills `into` (rowEnd − rowStart rows of a weight) with rows [rowStart, rowEnd). */
export type RowReader = (rowStart: number, rowEnd: number, into: Float32Array) => void;
/** The same for a 16-bit weight: its raw values. */
export type RowReader16 = (rowStart: number, rowEnd: number, into: Uint16Array) => void;

/** Floats per input index of the scratch panel a 16-bit linear widens into (panels are at most 16 wide). */
export const LINEAR_SCRATCH_COLS = 16;

/**
 * Which keys each query of an attention call sees. Queries come in blocks of consecutive rows;
 * block b is blocks[5b .. 5b+5) = qRow, count, outRow, keyStart, seen: the queries are rows
 * qRow .. qRow+count−1 of qkv, their outputs go to rows outRow .. outRow+count−1 of out, and their
 * keys are the rows keyRows[keyStart], keyRows[keyStart+1], ... of qkv, in position order, of
 * which the first query sees `seen` and each next query one more (causal). A text alone is one
 * block whose key rows are its own rows (kernels/attention.ts causalPlan); texts that share a
 * prefix list the same rows for it (src/model/batch-plan.ts).
 */
/**
 * The WebAssembly.Memory every buffer lives in, as our types name it: declared here, by the two
 * members we use, because Node's type definitions have no WebAssembly namespace and naming
 * `WebAssembly.Memory` would make every user's project need the DOM lib. A real Memory fits it.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(delta: number): number;
}

export interface AttentionPlan {
  blocks: Int32Array;
  keyRows: Int32Array;
}

/** A weight matrix prepared once, at load, in the layout a backend's matmul reads fastest. */
export interface PackedLinear {
  inDim: number;
  outDim: number;
  /** How `packed` stores the weights: F32, or 16-bit as the checkpoint did (kernels/half.ts). */
  dtype: WeightDType;
  /** Backend-specific layout of the [inDim, outDim] Conv1D weight: Float32Array, or Uint16Array if 16-bit. */
  packed: Float32Array | Uint16Array;
  bias: Float32Array;
  /** How many of the weights are NaN or ±Inf: counted while packing, for the loader's report. */
  nonFinite: number;
}

export interface Kernels {
  readonly name: string;
  /** A zero-filled Float32Array of n floats inside `memory`, 64-byte aligned. */
  alloc(n: number): Float32Array;
  /** Same, for int32 data (token ids, positions, sequence starts). */
  allocInt32(n: number): Int32Array;
  /** The memory every buffer lives in (shared, so workers can see it). */
  readonly memory: WasmMemory;
  /** Allocation mark; `release(mark)` frees everything allocated after it (a batch's buffers). */
  mark(): number;
  release(mark: number): void;

  /**
   * Prepares a Conv1D weight [inDim, outDim] and its bias [outDim] in this set's panel layout,
   * the weight arriving in blocks of rows (a loader reading the file): `read` fills each block,
   * which then is packed while still in cache. The block is a small buffer just above where the
   * packed weight goes, so no memory besides the weights' own is touched. (A weight already in
   * memory: packLinear in kernels/packing.ts.)
   */
  packLinearRows(inDim: number, outDim: number, bias: Float32Array, read: RowReader): PackedLinear;

  /**
   * packLinearRows for a weight stored 16-bit (F16 or BF16) that stays 16-bit: `read` fills
   * Uint16Array blocks with the raw values. linear then needs a scratch panel per thread.
   */
  packLinearRows16(inDim: number, outDim: number, bias: Float32Array, dtype: "BF16" | "F16", read: RowReader16): PackedLinear;

  /** How many values of x are NaN or ±Inf (a loader checks every weight). */
  countNonFinite(x: Float32Array): number;

  // The four kernels of the forward pass. Each takes exactly the arguments of the Runner method
  // of the same name (src/run/runner.ts), in the same order, plus the half-open range
  // [start, end) of work items it computes: a runner only appends the range.

  /**
   * out[rows, outDim] = inp[rows, inDim] · W + b, then GELU (gelu_new) if `gelu`.
   * Work items are output columns; a pool splits them. A 16-bit `w` needs `scratch`:
   * LINEAR_SCRATCH_COLS × inDim floats that this call may overwrite (one thread's share).
   */
  linear(out: Float32Array, inp: Float32Array, w: PackedLinear, rows: number, gelu: boolean, scratch: Float32Array | undefined, colStart: number, colEnd: number): void;

  /** out[rows, C] = LayerNorm(inp) * weight + bias. Work items are rows. */
  layernorm(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, rows: number, C: number, eps: number, rowStart: number, rowEnd: number): void;

  /**
   * Causal self-attention as `plan` says (AttentionPlan). qkv[R, 3C] holds q | k | v per row (HF's
   * c_attn output); out gets each query's heads concatenated, C floats per row. Work items are
   * (block, head) pairs, numbered block * nHead + head. `scratch` holds at least as many floats as
   * the most keys a query sees (one thread's share).
   */
  attention(out: Float32Array, qkv: Float32Array, plan: AttentionPlan, nHead: number, C: number, scratch: Float32Array, itemStart: number, itemEnd: number): void;

  /** out[i] = a[i] + b[i] for i < n. Work items are elements. `out` may alias `a` or `b`. */
  residual(out: Float32Array, a: Float32Array, b: Float32Array, n: number, start: number, end: number): void;
}
