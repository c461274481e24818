/**
 * NaN and ±Inf are the floats whose 8 exponent bits are all ones. The loader looks for them in
 * every weight (a checkpoint holding them scores NaN), so this runs over 124M floats at each
 * load and must cost little more than reading the memory once.
 */

/** The exponent field of a float32's bits. */
const EXPONENT = 0x7f800000;

/**
 * (bits & EXPONENT) + 2^23 carries into the sign bit exactly when the exponent is all ones, so
 * OR-ing that over many values and testing the sign once tells whether any is non-finite with
 * integer ops only (no compare and branch per value). `bits` is a float32's bits as an int32.
 */
export function nonFiniteFlag(bits: number): number {
  return (bits & EXPONENT) + 0x00800000;
}

/** How many values of x are NaN or ±Inf. */
export function countNonFinite(x: Float32Array): number {
  const u = new Int32Array(x.buffer, x.byteOffset, x.length);
  const n = u.length;
  // The fast pass answers "none" for every sane checkpoint; only a broken one is counted exactly.
  let f0 = 0, f1 = 0, f2 = 0, f3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    f0 |= nonFiniteFlag(u[i]); f1 |= nonFiniteFlag(u[i + 1]);
    f2 |= nonFiniteFlag(u[i + 2]); f3 |= nonFiniteFlag(u[i + 3]);
  }
  for (; i < n; i++) f0 |= nonFiniteFlag(u[i]);
  if ((f0 | f1 | f2 | f3) >= 0) return 0;
  let bad = 0;
  for (let j = 0; j < n; j++) bad += (u[j] & EXPONENT) === EXPONENT ? 1 : 0;
  return bad;
}
