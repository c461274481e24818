/** Softmax over n values, shifted by the maximum so exp never overflows (softmaxReference: kernels/ref-kernels.ts). */

/** x is (n) starting at x[0]; normalized in place. Used inside attention on each score row. */
export function softmaxInPlace(x: Float32Array, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[i] - max);
    x[i] = e;
    total += e;
  }
  const inv = 1 / total;
  for (let i = 0; i < n; i++) x[i] *= inv;
}
