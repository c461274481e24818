/**
 * GELU as GPT-2 trained with it: HF's "gelu_new", the tanh approximation
 *   0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
 * not the exact erf form ("gelu"), which moves reward logits by ~3e-4 on our goldens.
 */
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function geluScalar(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/** inp and out are (n); out may alias inp. The reference the fused kernels are tested against. */
export function geluReference(out: Float32Array, inp: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * Math.pow(x, 3))));
  }
}
