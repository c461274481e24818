/** The residual connection: out = a + b, element-wise. */

/** a, b and out are (n). */
export function residualReference(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** Same, for i in [start, end) of the n; out may alias a or b. */
export function residual(out: Float32Array, a: Float32Array, b: Float32Array, n: number, start: number, end: number): void {
  if (end > n) throw new RangeError(`residual: elements up to ${end}, only ${n}`);
  for (let i = start; i < end; i++) out[i] = a[i] + b[i];
}
