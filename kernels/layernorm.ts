/**
 * LayerNorm over the last dimension, with the biased variance as torch computes it:
 *   out = (x − mean) / sqrt(var + eps) · weight + bias
 * The plain loop is layernormReference (kernels/ref-kernels.ts); this one takes a row range.
 */

/**
 * inp and out are (rows, C); computes rows [rowStart, rowEnd); out may alias inp. The mean is
 * subtracted before squaring (not E[x²] − E[x]²) because the residual stream of GPT-2 has
 * large means, and cancellation there would cost digits we need for 2e-5 logits.
 */
export function layernorm(
  out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array,
  rows: number, C: number, eps: number, rowStart: number, rowEnd: number,
): void {
  if (rowEnd > rows) throw new RangeError(`layernorm: rows up to ${rowEnd}, only ${rows}`);
  for (let r = rowStart; r < rowEnd; r++) {
    const base = r * C;
    let sum = 0;
    for (let c = 0; c < C; c++) sum += inp[base + c];
    const mean = sum / C;
    let sq = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[base + c] - mean;
      sq += d * d;
    }
    const rstd = 1 / Math.sqrt(sq / C + eps);
    for (let c = 0; c < C; c++) out[base + c] = (inp[base + c] - mean) * rstd * weight[c] + bias[c];
  }
}
