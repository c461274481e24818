/**
 * Preparing weights at load, for every kernel set: a Conv1D weight arrives from the file a block
 * of rows at a time (`RowReader`) and is rearranged into panels, the layout the fast matmuls read
 * (kernels/matmul.ts, kernels/wasm/). Packing only moves values; it never changes one.
 */
import type { Arena } from "./arena.js";
import type { Kernels, PackedLinear, RowReader, RowReader16 } from "./contract.js";
import { countNonFinite16 } from "./half.js";

/** Rows of the weight packed together: 16 rows of c_fc's 3072 columns are 192 KB, within L2. */
export const PACK_ROWS = 16;

/**
 * The one panel packer: rows [rowStart, rowEnd) of a weight (inDim, outDim), held in `rows` (row
 * rowStart first), into their places in the panels (⌈outDim/width⌉, inDim, width) at dst, so the
 * `width` weights a matmul needs for one input index sit side by side. The tail panel's padding
 * columns get zeros, so every element of those rows' panel slots is written. Any element type:
 * F32 weights, or 16-bit ones moved as they are. (packMatmulWeight and the wasm `pack` have
 * faster paths for F32 weights whose outDim is a multiple of the width: every GPT-2 shape.)
 */
export function packPanels<A extends Float32Array | Uint16Array>(
  dst: A, rows: A, inDim: number, outDim: number, width: number, rowStart: number, rowEnd: number,
): void {
  const panels = Math.ceil(outDim / width);
  for (let p = 0; p < panels; p++) {
    const cols = Math.min(width, outDim - p * width);
    for (let i = rowStart; i < rowEnd; i++) {
      const s = (i - rowStart) * outDim + p * width;
      const t = (p * inDim + i) * width;
      for (let j = 0; j < cols; j++) dst[t + j] = rows[s + j];
      for (let j = cols; j < width; j++) dst[t + j] = 0;
    }
  }
}

/**
 * Rows per block when a weight is packed as it is read: about 256 KiB, so that a block the file
 * was just read into is still in L2 when it is packed (a whole c_fc weight is 9.4 MB).
 */
export function packBlockRows(inDim: number, outDim: number): number {
  return Math.min(inDim, Math.max(PACK_ROWS, Math.floor(65536 / outDim / PACK_ROWS) * PACK_ROWS));
}

/**
 * Feeds a weight (inDim, outDim) through `block` a block of rows at a time: `read` fills the
 * block, `pack` packs those rows and returns their NaN/Inf count. Returns the weight's count.
 */
export function packInBlocks<A extends Float32Array | Uint16Array>(
  block: A, inDim: number, outDim: number, read: (rowStart: number, rowEnd: number, into: A) => void,
  pack: (rows: A, rowStart: number, rowEnd: number) => number,
): number {
  const step = Math.floor(block.length / outDim);
  let nonFinite = 0;
  for (let r0 = 0; r0 < inDim; r0 += step) {
    const r1 = Math.min(inDim, r0 + step);
    const rows = block.subarray(0, (r1 - r0) * outDim) as A;
    read(r0, r1, rows);
    nonFinite += pack(rows, r0, r1);
  }
  return nonFinite;
}

/**
 * A Conv1D weight [inDim, outDim] already in memory, with its bias [outDim], packed by `kernels`
 * (its packLinearRows, reading the weight as blocks of rows); the input may be discarded afterwards.
 */
export function packLinear(kernels: Kernels, weight: Float32Array, bias: Float32Array, inDim: number, outDim: number): PackedLinear {
  return kernels.packLinearRows(inDim, outDim, bias, rowsOf(weight, bias, inDim, outDim));
}

/** A weight already in memory as a RowReader, after checking the sizes. */
export function rowsOf(weight: Float32Array, bias: Float32Array, inDim: number, outDim: number): RowReader {
  if (weight.length < inDim * outDim || bias.length < outDim) {
    throw new RangeError(`packLinear: weight ${weight.length} / bias ${bias.length} floats, expected [${inDim}, ${outDim}] / [${outDim}]`);
  }
  return (rowStart, rowEnd, into) => into.set(weight.subarray(rowStart * outDim, rowEnd * outDim));
}

/**
 * Packs rows [r0, r1) of a 16-bit weight, held in `rows`, into their panels in `packed`; returns
 * how many of them are NaN or ±Inf.
 */
export type Pack16Rows = (packed: Uint16Array, rows: Uint16Array, r0: number, r1: number) => number;

/**
 * Kernels.packLinearRows16 for panels `width` wide, read block by block like the F32 weights:
 * the 16-bit values are moved, not widened, and their NaN/Inf counted on the way (by packPanels
 * and countNonFinite16, unless the backend packs faster: `packRows`). The bias is padded to a
 * whole panel.
 */
export function packLinear16(
  arena: Arena, width: number, inDim: number, outDim: number, bias: Float32Array, dtype: "BF16" | "F16", read: RowReader16,
  packRows: Pack16Rows = (packed, rows, r0, r1) => {
    packPanels(packed, rows, inDim, outDim, width, r0, r1);
    return countNonFinite16(rows, dtype);
  },
): PackedLinear {
  const panels = Math.ceil(outDim / width);
  const size = panels * inDim * width;
  const blockLength = packBlockRows(inDim, outDim) * outDim;
  const at = arena.aboveBytes([size * 2, panels * width * 4], blockLength * 2); // may grow the memory: before taking its buffer
  const block = new Uint16Array(arena.memory.buffer, at, blockLength);
  const packed = arena.allocUint16(size);
  const nonFinite = packInBlocks(block, inDim, outDim, read, (rows, r0, r1) => packRows(packed, rows, r0, r1));
  const b = arena.alloc(panels * width);
  b.set(bias.subarray(0, outDim));
  return { inDim, outDim, dtype, packed, bias: b.subarray(0, outDim), nonFinite };
}
