/**
 * Causal multi-head self-attention over packed rows (see kernels/contract.ts).
 *
 * qkv is (R, 3C): for row t, q = qkv[t, 0:C], k = qkv[t, C:2C], v = qkv[t, 2C:3C], as HF splits
 * the c_attn output; head h owns the slice [h·D, (h+1)·D) of each, D = C / nHead.
 * Which rows a query reads is the plan's (AttentionPlan below): a query sees its own text's keys
 * at positions 0..its own, in position order, and nothing else, which is what HF's causal mask
 * plus right padding gives. out gets, for each query, the heads' outputs side by side, ready for
 * attn.c_proj. Scores are scaled by 1/√D (GPT-2's scale_attn_weights).
 * The plain loops are attentionReference (kernels/ref-kernels.ts).
 */
import type { AttentionPlan } from "./contract.js";
import { softmaxInPlace } from "./softmax.js";

/**
 * The plan of texts laid end to end, each alone: seqStarts (S+1) are their first rows, every row
 * is a query, and a text's keys are its own rows. What a batch without shared prefixes runs.
 */
export function causalPlan(seqStarts: ArrayLike<number>, allocInt32: (n: number) => Int32Array = (n) => new Int32Array(n)): AttentionPlan {
  const S = seqStarts.length - 1;
  const blocks = allocInt32(S * 5);
  const keyRows = allocInt32(Math.max(1, seqStarts[S]));
  for (let s = 0; s < S; s++) {
    const start = seqStarts[s];
    blocks.set([start, seqStarts[s + 1] - start, start, start, 1], s * 5);
  }
  for (let t = 0; t < seqStarts[S]; t++) keyRows[t] = t;
  return { blocks, keyRows };
}

/**
 * The fast version: work item w = b·nHead + h (query block b, head h), items [itemStart, itemEnd).
 * It only visits the keys a query sees (no −∞ entries, no padding) and reuses one scratch row of
 * as many floats as the most keys a query sees. Keys are found through the plan's key rows, so a
 * prefix shared by several texts is stored and computed once; the sums run over key positions in
 * the same order either way, which keeps them bit-identical to a text alone.
 * Sums run in double precision over four independent accumulators: one running sum would wait
 * on its own last add at every step (four times slower), and four floats of a row are adjacent.
 */
export function attention(
  out: Float32Array, qkv: Float32Array, plan: AttentionPlan, nHead: number, C: number,
  scratch: Float32Array, itemStart: number, itemEnd: number,
): void {
  const D = C / nHead;
  const D4 = D - (D % 4); // the part of a head's slice covered four at a time
  const C3 = 3 * C;
  const scale = 1 / Math.sqrt(D);
  const { blocks, keyRows } = plan;
  for (let w = itemStart; w < itemEnd; w++) {
    const b = Math.floor(w / nHead);
    const h = w - b * nHead;
    const qRow = blocks[b * 5], count = blocks[b * 5 + 1], outRow = blocks[b * 5 + 2], keyStart = blocks[b * 5 + 3], seen = blocks[b * 5 + 4];
    for (let i = 0; i < count; i++) {
      const n = seen + i; // keys this query sees
      // scores: q_i · k_j for the n keys
      const qOff = (qRow + i) * C3 + h * D;
      for (let j = 0; j < n; j++) {
        const kOff = keyRows[keyStart + j] * C3 + C + h * D;
        let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        let d = 0;
        for (; d < D4; d += 4) {
          d0 += qkv[qOff + d] * qkv[kOff + d]; d1 += qkv[qOff + d + 1] * qkv[kOff + d + 1];
          d2 += qkv[qOff + d + 2] * qkv[kOff + d + 2]; d3 += qkv[qOff + d + 3] * qkv[kOff + d + 3];
        }
        for (; d < D; d++) d0 += qkv[qOff + d] * qkv[kOff + d];
        scratch[j] = (d0 + d1 + d2 + d3) * scale;
      }
      softmaxInPlace(scratch, n);
      // out_i = Σ_j p_j · v_j, four output channels at a time, walking down the value rows
      const oOff = (outRow + i) * C + h * D;
      const vHead = 2 * C + h * D;
      let d = 0;
      for (; d < D4; d += 4) {
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let j = 0; j < n; j++) {
          const p = scratch[j];
          const v = keyRows[keyStart + j] * C3 + vHead + d;
          a0 += p * qkv[v]; a1 += p * qkv[v + 1]; a2 += p * qkv[v + 2]; a3 += p * qkv[v + 3];
        }
        out[oOff + d] = a0; out[oOff + d + 1] = a1; out[oOff + d + 2] = a2; out[oOff + d + 3] = a3;
      }
      for (; d < D; d++) {
        let a = 0;
        for (let j = 0; j < n; j++) a += scratch[j] * qkv[keyRows[keyStart + j] * C3 + vHead + d];
        out[oOff + d] = a;
      }
    }
  }
}
