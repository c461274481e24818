/** The residual connection: out = a + b, element-wise (the plain loop: residualReference in kernels/ref-kernels.ts). */

/** a, b and out are (n); computes i in [start, end); out may alias a or b. */
export function residual(out: Float32Array, a: Float32Array, b: Float32Array, n: number, start: number, end: number): void {
  if (end > n) throw new RangeError(`residual: elements up to ${end}, only ${n}`);
  for (let i = start; i < end; i++) out[i] = a[i] + b[i];
}
