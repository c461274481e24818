/**
 * Causal multi-head self-attention over packed sequences (see kernels/contract.ts).
 *
 * qkv is (N, 3C): for token t, q = qkv[t, 0:C], k = qkv[t, C:2C], v = qkv[t, 2C:3C], as HF splits
 * the c_attn output; head h owns the slice [h·D, (h+1)·D) of each, D = C / nHead.
 * out is (N, C): the heads' outputs side by side, ready for attn.c_proj.
 * Scores are scaled by 1/√D (GPT-2's scale_attn_weights) and a query sees only keys at or
 * before it in its own sequence, which is what HF's causal mask plus right padding gives.
 * The plain loops are attentionReference (kernels/ref-kernels.ts).
 */
import { softmaxInPlace } from "./softmax.js";

/**
 * The fast version: work item w = s·nHead + h, items [itemStart, itemEnd). It only visits keys
 * 0..i for query i (no −∞ entries, no padding) and reuses one scratch row of maxLen floats.
 * Sums run in double precision over four independent accumulators: one running sum would wait
 * on its own last add at every step (four times slower), and four floats of a row are adjacent.
 */
export function attention(
  out: Float32Array, qkv: Float32Array, seqStarts: Int32Array, nHead: number, C: number,
  scratch: Float32Array, itemStart: number, itemEnd: number,
): void {
  const D = C / nHead;
  const D4 = D - (D % 4); // the part of a head's slice covered four at a time
  const C3 = 3 * C;
  const scale = 1 / Math.sqrt(D);
  for (let w = itemStart; w < itemEnd; w++) {
    const s = Math.floor(w / nHead);
    const h = w - s * nHead;
    const start = seqStarts[s];
    const T = seqStarts[s + 1] - start;
    for (let i = 0; i < T; i++) {
      // scores: q_i · k_j for j ≤ i
      const qOff = (start + i) * C3 + h * D;
      for (let j = 0; j <= i; j++) {
        const kOff = (start + j) * C3 + C + h * D;
        let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        let d = 0;
        for (; d < D4; d += 4) {
          d0 += qkv[qOff + d] * qkv[kOff + d]; d1 += qkv[qOff + d + 1] * qkv[kOff + d + 1];
          d2 += qkv[qOff + d + 2] * qkv[kOff + d + 2]; d3 += qkv[qOff + d + 3] * qkv[kOff + d + 3];
        }
        for (; d < D; d++) d0 += qkv[qOff + d] * qkv[kOff + d];
        scratch[j] = (d0 + d1 + d2 + d3) * scale;
      }
      softmaxInPlace(scratch, i + 1);
      // out_i = Σ_j p_j · v_j, four output channels at a time, walking down the v column
      const oOff = (start + i) * C + h * D;
      const vBase = start * C3 + 2 * C + h * D;
      let d = 0;
      for (; d < D4; d += 4) {
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let j = 0, v = vBase + d; j <= i; j++, v += C3) {
          const p = scratch[j];
          a0 += p * qkv[v]; a1 += p * qkv[v + 1]; a2 += p * qkv[v + 2]; a3 += p * qkv[v + 3];
        }
        out[oOff + d] = a0; out[oOff + d + 1] = a1; out[oOff + d + 2] = a2; out[oOff + d + 3] = a3;
      }
      for (; d < D; d++) {
        let a = 0;
        for (let j = 0, v = vBase + d; j <= i; j++, v += C3) a += scratch[j] * qkv[v];
        out[oOff + d] = a;
      }
    }
  }
}
