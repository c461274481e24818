/**
 * Token plus position embedding: x[t] = wte[id_t] + wpe[pos_t], where pos_t is the token's index
 * inside its own text (right padding means HF's position ids are 0..n−1 for the real tokens).
 */
import { widen16, type WeightDType } from "./half.js";

/**
 * ids and positions are (N), wte is (V, C), wpe is (P, C), out is (N, C). A 16-bit wte
 * (`--dtype`, kernels/half.ts) is widened row by row, exactly.
 */
export function embedding(
  out: Float32Array, ids: Int32Array, positions: Int32Array, wte: Float32Array | Uint16Array, wpe: Float32Array, C: number,
  wteDType: WeightDType = "F32",
): void {
  const row = wteDType === "F32" ? (wte as Float32Array) : new Float32Array(C);
  for (let t = 0; t < ids.length; t++) {
    const pos = positions[t];
    let at = ids[t] * C;
    if (wteDType !== "F32") {
      widen16(row, wte as Uint16Array, at, C, wteDType);
      at = 0;
    }
    for (let c = 0; c < C; c++) out[t * C + c] = row[at + c] + wpe[pos * C + c];
  }
}
