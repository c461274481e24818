/**
 * Deterministic pseudo-random numbers for the benchmarks: the same weights and token ids in
 * every run, so two runs (or two machines) time exactly the same arithmetic.
 */

/** mulberry32: a 32-bit generator, fast enough to fill 124 M floats in about a second. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fills `out` with mean + uniform noise of standard deviation `std` (uniform on ±√3·std): the
 * spread GPT-2's N(0, 0.02) init has, without the cost of a Gaussian sampler.
 */
export function fillUniform(out: Float32Array, next: () => number, std: number, mean = 0): Float32Array {
  const half = Math.sqrt(3) * std;
  for (let i = 0; i < out.length; i++) out[i] = mean + (2 * next() - 1) * half;
  return out;
}

/** Token ids in [0, 50256): never the pad/EOS id 50256, so every text is scored at its last token. */
export function randomIds(next: () => number, length: number): number[] {
  return Array.from({ length }, () => Math.floor(next() * 50256));
}
