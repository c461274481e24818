/**
 * Causal multi-head self-attention over packed sequences (see kernels/backend.ts).
 *
 * qkv is (N, 3C): for token t, q = qkv[t, 0:C], k = qkv[t, C:2C], v = qkv[t, 2C:3C], as HF splits
 * the c_attn output; head h owns the slice [h·D, (h+1)·D) of each, D = C / nHead.
 * out is (N, C): the heads' outputs side by side, ready for attn.c_proj.
 * Scores are scaled by 1/√D (GPT-2's scale_attn_weights) and a query sees only keys at or
 * before it in its own sequence, which is what HF's causal mask plus right padding gives.
 */
import { softmaxInPlace, softmaxReference } from "./softmax.js";

/** The slow version: builds each head's full T×T score matrix, masks the future with −∞, softmaxes rows. */
export function attentionReference(
  out: Float32Array, qkv: Float32Array, seqStarts: Int32Array, nHead: number, C: number,
): void {
  const D = C / nHead;
  const scale = 1 / Math.sqrt(D);
  for (let s = 0; s + 1 < seqStarts.length; s++) {
    const start = seqStarts[s];
    const T = seqStarts[s + 1] - start;
    for (let h = 0; h < nHead; h++) {
      const q = (i: number, d: number) => qkv[(start + i) * 3 * C + h * D + d];
      const k = (j: number, d: number) => qkv[(start + j) * 3 * C + C + h * D + d];
      const v = (j: number, d: number) => qkv[(start + j) * 3 * C + 2 * C + h * D + d];
      for (let i = 0; i < T; i++) {
        const scores = new Float32Array(T);
        for (let j = 0; j < T; j++) {
          if (j > i) {
            scores[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q(i, d) * k(j, d);
          scores[j] = dot * scale;
        }
        const p = new Float32Array(T);
        softmaxReference(p, scores, T);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += p[j] * v(j, d);
          out[(start + i) * C + h * D + d] = acc;
        }
      }
    }
  }
}

/**
 * The fast version: work item w = s·nHead + h, items [itemStart, itemEnd). It only visits keys
 * 0..i for query i (no −∞ entries, no padding) and reuses one scratch row of maxLen floats.
 */
export function attention(
  out: Float32Array, qkv: Float32Array, seqStarts: Int32Array, nHead: number, C: number,
  scratch: Float32Array, itemStart: number, itemEnd: number,
): void {
  const D = C / nHead;
  const C3 = 3 * C;
  const scale = 1 / Math.sqrt(D);
  for (let w = itemStart; w < itemEnd; w++) {
    const s = Math.floor(w / nHead);
    const h = w - s * nHead;
    const start = seqStarts[s];
    const T = seqStarts[s + 1] - start;
    for (let i = 0; i < T; i++) {
      const qOff = (start + i) * C3 + h * D;
      for (let j = 0; j <= i; j++) {
        const kOff = (start + j) * C3 + C + h * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qkv[qOff + d] * qkv[kOff + d];
        scratch[j] = dot * scale;
      }
      softmaxInPlace(scratch, i + 1);
      const oOff = (start + i) * C + h * D;
      for (let d = 0; d < D; d++) out[oOff + d] = 0;
      // Accumulate p_j · v_j row by row: v rows are contiguous, so this streams memory.
      for (let j = 0; j <= i; j++) {
        const p = scratch[j];
        const vOff = (start + j) * C3 + 2 * C + h * D;
        for (let d = 0; d < D; d++) out[oOff + d] += p * qkv[vOff + d];
      }
    }
  }
}
