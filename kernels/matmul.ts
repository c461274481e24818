/**
 * Matrix multiply with bias, the Conv1D of GPT-2: out[rows, outDim] = inp[rows, inDim] · W + b.
 *
 * HF's GPT-2 stores every linear layer as `Conv1D` with the weight laid out [inDim, outDim]
 * (the transpose of `nn.Linear`), so W[i, o] is at weight[i * outDim + o]. The plain loop is
 * matmulReference (kernels/ref-kernels.ts); here the fast one, over weights packed at load.
 */
import { countNonFinite, nonFiniteFlag } from "./finite.js";
import { geluScalar } from "./gelu.js";
import type { PackedLinear } from "./contract.js";
import { widen16 } from "./half.js";
import { PACK_ROWS, packPanels } from "./packing.js";

/**
 * Width of one packed panel. The fast kernel keeps a 6-row × 8-column tile of sums in local
 * variables (48 doubles: more than x64's 16 registers, but each weight loaded is then used 6
 * times and each input 8 times; measured 3.7 GFLOPS against 3.4 for 4×8 and 3.1 for 4×4), and
 * leftover rows go one at a time.
 */
export const PANEL = 8;

/** Floats in the packed form of an (inDim, outDim) weight: whole panels, the last zero-padded. */
export function packedSize(inDim: number, outDim: number): number {
  return Math.ceil(outDim / PANEL) * inDim * PANEL;
}


/**
 * Packs rows [rowStart, rowEnd) of a weight (inDim, outDim) into their places in the panels
 * (ceil(outDim/8), inDim, 8) at dst, the whole weight by default: the 8 weights the inner loop
 * needs for one input index sit side by side, so the kernel streams memory in order. `rows`
 * holds those rows, row rowStart first. The tail panel is zero-padded (`dst` holds packedSize
 * floats, every one of which a full pack writes). Returns how many of the rows' weights are NaN
 * or ±Inf, found on the way, so that the loader need not read them again.
 */
export function packMatmulWeight(dst: Float32Array, rows: Float32Array, inDim: number, outDim: number, rowStart = 0, rowEnd = inDim): number {
  const panel = PANEL; // a local, as in matmulPacked
  const panels = Math.ceil(outDim / panel);
  const n = (rowEnd - rowStart) * outDim;
  if (outDim % panel === 0) {
    // Every GPT-2 shape. The floats move as int32 bits (no float conversion can touch them), and
    // the NaN/Inf test rides along on the values already in registers: one pass over the weight
    // instead of a pack and a scan. Rows go in blocks of PACK_ROWS so that the block's rows stay
    // in cache while each panel takes its slice of them and the writes run in order.
    const d = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
    const w = new Int32Array(rows.buffer, rows.byteOffset, n);
    let flags = 0;
    for (let i0 = rowStart; i0 < rowEnd; i0 += PACK_ROWS) {
      const i1 = Math.min(rowEnd, i0 + PACK_ROWS);
      for (let p = 0; p < panels; p++) {
        let t = (p * inDim + i0) * panel;
        for (let s = (i0 - rowStart) * outDim + p * panel; s < (i1 - rowStart) * outDim; s += outDim, t += panel) {
          const v0 = w[s], v1 = w[s + 1], v2 = w[s + 2], v3 = w[s + 3], v4 = w[s + 4], v5 = w[s + 5], v6 = w[s + 6], v7 = w[s + 7];
          d[t] = v0; d[t + 1] = v1; d[t + 2] = v2; d[t + 3] = v3; d[t + 4] = v4; d[t + 5] = v5; d[t + 6] = v6; d[t + 7] = v7;
          flags |= nonFiniteFlag(v0) | nonFiniteFlag(v1) | nonFiniteFlag(v2) | nonFiniteFlag(v3)
            | nonFiniteFlag(v4) | nonFiniteFlag(v5) | nonFiniteFlag(v6) | nonFiniteFlag(v7);
        }
      }
    }
    return flags < 0 ? countNonFinite(rows.subarray(0, n)) : 0;
  }
  packPanels(dst, rows, inDim, outDim, panel, rowStart, rowEnd);
  return countNonFinite(rows.subarray(0, n));
}





/**
 * inp is (rows, inDim), weight.packed is from packMatmulWeight (or packPanels), out is (rows, outDim);
 * computes only output columns [colStart, colEnd), then gelu_new if `gelu` (the MLP's c_fc
 * fuses it). The TS kernels' `linear`, so it takes the contract's arguments (kernels/contract.ts).
 * Every output element is Σ_i in order, then + bias, in double precision, whatever tile or
 * column range it falls in: that is what makes thread splits bit-identical.
 */
export function matmulPacked(
  out: Float32Array, inp: Float32Array, weight: PackedLinear, rows: number, gelu: boolean,
  scratch: Float32Array | undefined, colStart: number, colEnd: number,
): void {
  const { packed, bias, inDim, outDim, dtype } = weight;
  // PANEL as a local: V8 reads a module-level const from the module's context (with a check that
  // it is initialized) at every use, and in the inner loop that cost 15% of the kernel's speed.
  const panel = PANEL;
  const pStart = Math.floor(colStart / panel);
  const pEnd = Math.ceil(colEnd / panel);
  if (dtype !== "F32" && !(scratch && scratch.length >= inDim * panel)) throw new RangeError(`matmulPacked: 16-bit weights need a scratch panel of ${inDim * panel} floats`);
  for (let p = pStart; p < pEnd; p++) {
    // A 16-bit weight's panel is widened into the scratch panel first (kernels/half.ts).
    let w32: Float32Array, wBase: number;
    if (dtype === "F32") {
      w32 = packed as Float32Array;
      wBase = p * inDim * panel;
    } else {
      widen16(scratch!, packed as Uint16Array, p * inDim * panel, inDim * panel, dtype);
      w32 = scratch!;
      wBase = 0;
    }
    const c0 = p * panel;
    const lo = Math.max(colStart, c0) - c0;
    const hi = Math.min(colEnd, c0 + panel) - c0;
    let r = 0;
    for (; r + 6 <= rows; r += 6) {
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s04 = 0, s05 = 0, s06 = 0, s07 = 0;
      let s10 = 0, s11 = 0, s12 = 0, s13 = 0, s14 = 0, s15 = 0, s16 = 0, s17 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s24 = 0, s25 = 0, s26 = 0, s27 = 0;
      let s30 = 0, s31 = 0, s32 = 0, s33 = 0, s34 = 0, s35 = 0, s36 = 0, s37 = 0;
      let s40 = 0, s41 = 0, s42 = 0, s43 = 0, s44 = 0, s45 = 0, s46 = 0, s47 = 0;
      let s50 = 0, s51 = 0, s52 = 0, s53 = 0, s54 = 0, s55 = 0, s56 = 0, s57 = 0;
      let x0 = r * inDim, x1 = x0 + inDim, x2 = x1 + inDim, x3 = x2 + inDim, x4 = x3 + inDim, x5 = x4 + inDim;
      let w = wBase;
      for (let i = 0; i < inDim; i++, w += panel) {
        const a0 = inp[x0++], a1 = inp[x1++], a2 = inp[x2++], a3 = inp[x3++], a4 = inp[x4++], a5 = inp[x5++];
        const w0 = w32[w], w1 = w32[w + 1], w2 = w32[w + 2], w3 = w32[w + 3];
        const w4 = w32[w + 4], w5 = w32[w + 5], w6 = w32[w + 6], w7 = w32[w + 7];
        s00 += a0 * w0; s01 += a0 * w1; s02 += a0 * w2; s03 += a0 * w3; s04 += a0 * w4; s05 += a0 * w5; s06 += a0 * w6; s07 += a0 * w7;
        s10 += a1 * w0; s11 += a1 * w1; s12 += a1 * w2; s13 += a1 * w3; s14 += a1 * w4; s15 += a1 * w5; s16 += a1 * w6; s17 += a1 * w7;
        s20 += a2 * w0; s21 += a2 * w1; s22 += a2 * w2; s23 += a2 * w3; s24 += a2 * w4; s25 += a2 * w5; s26 += a2 * w6; s27 += a2 * w7;
        s30 += a3 * w0; s31 += a3 * w1; s32 += a3 * w2; s33 += a3 * w3; s34 += a3 * w4; s35 += a3 * w5; s36 += a3 * w6; s37 += a3 * w7;
        s40 += a4 * w0; s41 += a4 * w1; s42 += a4 * w2; s43 += a4 * w3; s44 += a4 * w4; s45 += a4 * w5; s46 += a4 * w6; s47 += a4 * w7;
        s50 += a5 * w0; s51 += a5 * w1; s52 += a5 * w2; s53 += a5 * w3; s54 += a5 * w4; s55 += a5 * w5; s56 += a5 * w6; s57 += a5 * w7;
      }
      storeTile(out, r * outDim + c0, bias, c0, lo, hi, gelu, s00, s01, s02, s03, s04, s05, s06, s07);
      storeTile(out, (r + 1) * outDim + c0, bias, c0, lo, hi, gelu, s10, s11, s12, s13, s14, s15, s16, s17);
      storeTile(out, (r + 2) * outDim + c0, bias, c0, lo, hi, gelu, s20, s21, s22, s23, s24, s25, s26, s27);
      storeTile(out, (r + 3) * outDim + c0, bias, c0, lo, hi, gelu, s30, s31, s32, s33, s34, s35, s36, s37);
      storeTile(out, (r + 4) * outDim + c0, bias, c0, lo, hi, gelu, s40, s41, s42, s43, s44, s45, s46, s47);
      storeTile(out, (r + 5) * outDim + c0, bias, c0, lo, hi, gelu, s50, s51, s52, s53, s54, s55, s56, s57);
    }
    for (; r < rows; r++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
      let x = r * inDim;
      let w = wBase;
      for (let i = 0; i < inDim; i++, w += panel) {
        const a = inp[x++];
        s0 += a * w32[w]; s1 += a * w32[w + 1]; s2 += a * w32[w + 2]; s3 += a * w32[w + 3];
        s4 += a * w32[w + 4]; s5 += a * w32[w + 5]; s6 += a * w32[w + 6]; s7 += a * w32[w + 7];
      }
      storeTile(out, r * outDim + c0, bias, c0, lo, hi, gelu, s0, s1, s2, s3, s4, s5, s6, s7);
    }
  }
}

/** Writes columns [lo, hi) of one 8-wide tile row: sum + bias, then GELU if asked. */
function storeTile(
  out: Float32Array, at: number, bias: Float32Array, c0: number, lo: number, hi: number, gelu: boolean,
  t0: number, t1: number, t2: number, t3: number, t4: number, t5: number, t6: number, t7: number,
): void {
  if (lo === 0 && hi === PANEL) {
    if (gelu) {
      out[at] = geluScalar(Math.fround(t0 + bias[c0])); out[at + 1] = geluScalar(Math.fround(t1 + bias[c0 + 1]));
      out[at + 2] = geluScalar(Math.fround(t2 + bias[c0 + 2])); out[at + 3] = geluScalar(Math.fround(t3 + bias[c0 + 3]));
      out[at + 4] = geluScalar(Math.fround(t4 + bias[c0 + 4])); out[at + 5] = geluScalar(Math.fround(t5 + bias[c0 + 5]));
      out[at + 6] = geluScalar(Math.fround(t6 + bias[c0 + 6])); out[at + 7] = geluScalar(Math.fround(t7 + bias[c0 + 7]));
    } else {
      out[at] = t0 + bias[c0]; out[at + 1] = t1 + bias[c0 + 1]; out[at + 2] = t2 + bias[c0 + 2]; out[at + 3] = t3 + bias[c0 + 3];
      out[at + 4] = t4 + bias[c0 + 4]; out[at + 5] = t5 + bias[c0 + 5]; out[at + 6] = t6 + bias[c0 + 6]; out[at + 7] = t7 + bias[c0 + 7];
    }
    return;
  }
  const t = [t0, t1, t2, t3, t4, t5, t6, t7];
  for (let j = lo; j < hi; j++) {
    const v = Math.fround(t[j] + bias[c0 + j]);
    out[at + j] = gelu ? geluScalar(v) : v;
  }
}

