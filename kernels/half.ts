/**
 * 16-bit weights (`--dtype f16|bf16`): a checkpoint stored in F16 or BF16 can keep its Conv1D
 * weights 16-bit in memory, half the bytes. The matmuls widen one packed panel at a time into
 * an F32 scratch panel and run their F32 tile over it: widening is exact, the sums are the
 * same sums in the same order, so the logits are bit-identical to widening at load.
 */

/** How a packed weight is stored. */
export type WeightDType = "F32" | "BF16" | "F16";

/** A WeightDType as a number (its index here): the wasm linear's and the thread pool's argument. */
export const WEIGHT_DTYPES: readonly WeightDType[] = ["F32", "BF16", "F16"];

/** IEEE half -> float, exact (every F16 value is representable in F32). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Every F16 value as F32 (256 KiB): widening is one lookup. */
export const F16_TABLE = /* @__PURE__ */ (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = f16ToF32(i);
  return t;
})();

/** dst[i] = src[start + i] widened, for i in [0, n). BF16 is the top half of an F32: a shift. */
export function widen16(dst: Float32Array, src: Uint16Array, start: number, n: number, dtype: "BF16" | "F16"): void {
  if (dtype === "BF16") {
    const bits = new Int32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) bits[i] = src[start + i] << 16;
  } else {
    const table = F16_TABLE;
    for (let i = 0; i < n; i++) dst[i] = table[src[start + i]];
  }
}

/** How many of the 16-bit values are NaN or ±Inf (exponent all ones). */
export function countNonFinite16(x: Uint16Array, dtype: "BF16" | "F16"): number {
  const exp = dtype === "BF16" ? 0x7f80 : 0x7c00;
  let bad = 0;
  for (let i = 0; i < x.length; i++) bad += (x[i] & exp) === exp ? 1 : 0;
  return bad;
}
