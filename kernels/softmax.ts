/** Softmax over n values, shifted by the maximum so exp never overflows. */

/** inp and out are (n). */
export function softmaxReference(out: Float32Array, inp: Float32Array, n: number): void {
  const max = Math.max(...inp.subarray(0, n));
  const e = Array.from(inp.subarray(0, n), (x) => Math.exp(x - max));
  const total = e.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) out[i] = e[i] / total;
}

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
