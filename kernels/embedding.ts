/**
 * Token plus position embedding: x[t] = wte[id_t] + wpe[pos_t], where pos_t is the token's index
 * inside its own sequence (right padding means HF's position ids are 0..n−1 for the real tokens).
 */

/** ids is (N), seqStarts is (S+1), wte is (V, C), wpe is (P, C), out is (N, C). */
export function embedding(
  out: Float32Array, ids: Int32Array, seqStarts: Int32Array, wte: Float32Array, wpe: Float32Array, C: number,
): void {
  const S = seqStarts.length - 1;
  for (let s = 0; s < S; s++) {
    for (let t = seqStarts[s]; t < seqStarts[s + 1]; t++) {
      const pos = t - seqStarts[s];
      for (let c = 0; c < C; c++) out[t * C + c] = wte[ids[t] * C + c] + wpe[pos * C + c];
    }
  }
}
