/**
 * GELU as GPT-2 trained with it: HF's "gelu_new", the tanh approximation
 *   0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
 * not the exact erf form ("gelu"), which moves reward logits by ~3e-4 on our goldens.
 * geluReference (kernels/ref-kernels.ts) is the array version the fused kernels are tested against.
 */
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function geluScalar(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

