/**
 * The wasm kernels against the slow reference kernels, on random data of odd sizes, and the
 * properties threads rely on: any split of a kernel's range gives the same bytes, and attention
 * reads nothing outside a query's own past.
 */
import { describe, expect, it } from "vitest";
import { Arena } from "../../../kernels/arena.js";
import { causalPlan } from "../../../kernels/attention.js";
import type { Kernels } from "../../../kernels/contract.js";
import { geluScalar } from "../../../kernels/gelu.js";
import { createWasmKernels, wasmRelaxedSimdSupported } from "../../../kernels/wasm/wasm-kernels.js";
import { matmulReference, layernormReference, attentionReference, residualReference } from "../../../kernels/ref-kernels.js";
import { enableRelaxedSimd } from "../../../src/platform/node.js";
import { rng as uniform } from "../../helpers/random.js";
import { packLinear, packPanels } from "../../../kernels/packing.js";
import { createTsKernels } from "../../../kernels/ts-kernels.js";

/** Deterministic uniform [−1, 1) numbers, so a failure can be rerun. */
function rng(seed: number): () => number {
  const u = uniform(seed);
  return () => u() * 2 - 1;
}

function fill(a: Float32Array, rand: () => number, scale = 1, offset = 0): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = rand() * scale + offset;
  return a;
}

/** Index of the first float whose bits differ (NaNs included), or −1: "same bytes". */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Int32Array(a.buffer, a.byteOffset, a.length);
  const y = new Int32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** max |a − b| / (tolerance scale of that element), so ≤ 1 passes. */
function worst(a: Float32Array, b: Float32Array, scale: (i: number) => number): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / scale(i);
    if (!(e <= w)) w = e; // NaN-proof: a NaN makes w NaN and fails the check
  }
  return w;
}

// Node 20 gets relaxed SIMD from the V8 flag, later Nodes have it anyway: the fused variant is
// what RewardModel runs, so it is always tested here (never skipped).
const fmaAvailable = enableRelaxedSimd();
const variants: [string, () => Kernels][] = [
  ["wasm", () => createWasmKernels(new Arena(), { fma: false })],
  ["wasm fma", () => createWasmKernels(new Arena(), { fma: true })],
];

describe("relaxed SIMD", () => {
  it("is available on this Node (default on V8 ≥ 11.4, behind a flag that RewardModel sets on Node 20)", () => {
    expect(fmaAvailable).toBe(true);
    expect(wasmRelaxedSimdSupported()).toBe(true);
    expect(createWasmKernels(new Arena()).name).toBe("wasm");
  });
});

describe.each(variants)("%s linear", (_name, make) => {
  const k = make();
  const ROWS = [1, 3, 5, 17, 64];
  const IN = [7, 32, 768];
  const OUT = [1, 5, 9, 33, 2304];

  // f32 sums of n terms: error ≤ ~n·2^-24 · Σ|terms| at worst, ~√n·2^-24 typically. We allow
  // 1e-6 of Σ|terms| (2^-24 ≈ 6e-8, so ~17 ulps of the magnitude) — far below the 2e-5 logits budget.
  it.each(IN)("matches the reference within 1e-6 of Σ|inp·W|, inDim %i, every rows × outDim, with and without gelu", (inDim) => {
    const rand = rng(inDim);
    for (const rows of ROWS) {
      for (const outDim of OUT) {
        const mark = k.mark();
        const weight = fill(new Float32Array(inDim * outDim), rand, 0.5);
        const bias = fill(new Float32Array(outDim), rand, 0.5);
        const inp = fill(k.alloc(rows * inDim), rand);
        const w = packLinear(k, weight, bias, inDim, outDim);
        const ref = new Float32Array(rows * outDim);
        matmulReference(ref, inp, weight, bias, rows, inDim, outDim);
        const mag = new Float64Array(rows * outDim);
        for (let r = 0; r < rows; r++) {
          for (let o = 0; o < outDim; o++) {
            let s = Math.abs(bias[o]);
            for (let i = 0; i < inDim; i++) s += Math.abs(inp[r * inDim + i] * weight[i * outDim + o]);
            mag[r * outDim + o] = s;
          }
        }
        const out = k.alloc(rows * outDim);
        k.linear(out, inp, w, rows, false, undefined, 0, outDim);
        expect(worst(out, ref, (i) => 1e-6 * mag[i]), `rows ${rows} outDim ${outDim}`).toBeLessThanOrEqual(1);
        // gelu_new is ≤ 1.13-Lipschitz, so the same budget (plus its own rounding) covers the fused output.
        const refGelu = ref.map((x) => geluScalar(x));
        k.linear(out, inp, w, rows, true, undefined, 0, outDim);
        expect(worst(out, refGelu, (i) => 1.2e-6 * mag[i] + 1e-7), `gelu rows ${rows} outDim ${outDim}`).toBeLessThanOrEqual(1);
        k.release(mark);
      }
    }
  });

  it("gives the same bytes for any split of the columns, tile-aligned or not", () => {
    const rand = rng(7);
    for (const [rows, inDim, outDim] of [[17, 32, 33], [5, 7, 9], [64, 768, 2304], [3, 768, 1]]) {
      const w = packLinear(k, fill(new Float32Array(inDim * outDim), rand), fill(new Float32Array(outDim), rand), inDim, outDim);
      const inp = fill(k.alloc(rows * inDim), rand);
      for (const gelu of [false, true]) {
        const whole = k.alloc(rows * outDim);
        k.linear(whole, inp, w, rows, gelu, undefined, 0, outDim);
        const cuts = [[0, outDim], [0, 8 * Math.floor(outDim / 16), outDim], [0, 1, 3, 11, 12, 25, 31, outDim]]
          .map((c) => c.filter((x) => x <= outDim));
        for (let t = 0; t < 3; t++) cuts.push([0, ...Array.from({ length: 4 }, () => Math.floor(((rand() + 1) / 2) * outDim)).sort((a, b) => a - b), outDim]);
        for (const cut of cuts) {
          const split = k.alloc(rows * outDim).fill(NaN);
          for (let c = 0; c + 1 < cut.length; c++) k.linear(split, inp, w, rows, gelu, undefined, cut[c], cut[c + 1]);
          expect(firstBitDifference(split, whole), `${rows}x${inDim}x${outDim} gelu=${gelu} cuts ${cut}`).toBe(-1);
        }
      }
    }
  });

  it("writes only the columns of its range", () => {
    const rand = rng(8);
    const [rows, inDim, outDim] = [6, 9, 21];
    const w = packLinear(k, fill(new Float32Array(inDim * outDim), rand), fill(new Float32Array(outDim), rand), inDim, outDim);
    const inp = fill(k.alloc(rows * inDim), rand);
    const guard = k.alloc(rows * outDim + 16).fill(12345);
    const out = guard.subarray(0, rows * outDim);
    k.linear(out, inp, w, rows, false, undefined, 5, 13);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outDim; o++) expect(out[r * outDim + o] === 12345, `(${r}, ${o})`).toBe(o < 5 || o >= 13);
    }
    for (let i = rows * outDim; i < guard.length; i++) expect(guard[i]).toBe(12345);
  });
});

describe("wasm gelu_new", () => {
  const k = createWasmKernels(new Arena());
  it("matches 0.5·x·(1 + tanh(…)) in double precision within 2e-7·max(|x|, 1e-30), from −1e4 to 1e4", () => {
    const xs: number[] = [0, -0, 1e-30, -1e-30, 1e-7, -1e-7, 88, -88, 200, -200, 1e4, -1e4];
    for (let x = -12; x <= 12; x += 1 / 1024) xs.push(x);
    const inp = k.alloc(xs.length);
    inp.set(xs);
    const out = k.alloc(xs.length);
    k.gelu(out, inp, xs.length);
    const ref = inp.map((x) => geluScalar(x));
    expect(worst(out, ref, (i) => 2e-7 * Math.max(Math.abs(inp[i]), 1e-30))).toBeLessThanOrEqual(1);
  });
});

describe("wasm layernorm", () => {
  const k = createWasmKernels(new Arena());
  it.each([7, 32, 768])("matches the reference within 1e-6 (C = %i), also on GPT-2-like rows with a large mean and outlier channels", (C) => {
    const rand = rng(C);
    for (const rows of [1, 3, 5, 17, 64]) {
      const inp = fill(k.alloc(rows * C), rand, 2);
      for (let r = 0; r < rows; r += 2) {
        for (let c = 0; c < C; c++) inp[r * C + c] += 300;
        inp[r * C + (r % C)] = -3000;
      }
      const weight = fill(k.alloc(C), rand, 1, 1);
      const bias = fill(k.alloc(C), rand, 0.1);
      const ref = new Float32Array(rows * C);
      layernormReference(ref, inp, weight, bias, rows, C, 1e-5);
      const out = k.alloc(rows * C);
      k.layernorm(out, inp, weight, bias, rows, C, 1e-5, 0, rows);
      expect(worst(out, ref, (i) => 1e-6 * Math.max(1, Math.abs(ref[i]))), `rows ${rows}`).toBeLessThanOrEqual(1);
      // Row splits give the same bytes; in place (out = inp) too.
      const split = k.alloc(rows * C);
      for (const [a, b] of [[0, 1], [1, Math.floor(rows / 2) + 1], [Math.floor(rows / 2) + 1, rows]]) {
        if (a < b) k.layernorm(split, inp, weight, bias, rows, C, 1e-5, a, b);
      }
      expect(firstBitDifference(split, out)).toBe(-1);
      k.layernorm(inp, inp, weight, bias, rows, C, 1e-5, 0, rows);
      expect(firstBitDifference(inp, out)).toBe(-1);
    }
  });
});

describe("wasm attention", () => {
  const k = createWasmKernels(new Arena());

  function batch(lengths: number[], C: number, rand: () => number) {
    const N = lengths.reduce((a, b) => a + b, 0);
    const seqStarts = k.allocInt32(lengths.length + 1);
    lengths.forEach((len, s) => (seqStarts[s + 1] = seqStarts[s] + len));
    // Scores of a few units, like a trained model's: softmax is neither uniform nor one-hot.
    const qkv = fill(k.alloc(N * 3 * C), rand, 1.5);
    const maxLen = Math.max(...lengths);
    return { N, seqStarts, plan: causalPlan(seqStarts, (n) => k.allocInt32(n)), qkv, maxLen };
  }

  it.each([[1, 1], [1, 3], [2, 8], [3, 15], [4, 68], [12, 768], [2, 34], [5, 85]])(
    "matches the reference within 1e-6 of max|v|, %i heads, C = %i, sequences of 1..40 tokens", (nHead, C) => {
      const rand = rng(nHead * 1000 + C);
      const lengths = [1, 40, 3, 17, 2, 5, 33, 4];
      const { N, plan, qkv, maxLen } = batch(lengths, C, rand);
      const ref = new Float32Array(N * C);
      attentionReference(ref, qkv, plan, nHead, C);
      const guard = k.alloc(N * C + 16).fill(777);
      const out = guard.subarray(0, N * C);
      const scratchGuard = k.alloc(maxLen + 16).fill(777);
      const scratch = scratchGuard.subarray(0, maxLen);
      const items = lengths.length * nHead;
      k.attention(out, qkv, plan, nHead, C, scratch, 0, items);
      // Each output is a convex combination of values in [−1.5, 1.5].
      expect(worst(out, ref, () => 1.5e-6)).toBeLessThanOrEqual(1);
      for (let i = N * C; i < guard.length; i++) expect(guard[i]).toBe(777);
      for (let i = maxLen; i < scratchGuard.length; i++) expect(scratchGuard[i]).toBe(777);

      // Any split of the (sequence, head) items gives the same bytes.
      const split = k.alloc(N * C);
      const cuts = [0, 1, Math.floor(items / 3), Math.floor(items / 2) + 1, items - 1, items].filter((c, i, a) => i === 0 || c > a[i - 1]);
      for (let c = 0; c + 1 < cuts.length; c++) k.attention(split, qkv, plan, nHead, C, scratch, cuts[c], cuts[c + 1]);
      expect(firstBitDifference(split, out)).toBe(-1);
    });

  it("never reads a later token or another sequence: poisoning them with NaN changes no output bit", () => {
    const rand = rng(99);
    const [nHead, C] = [4, 68];
    const lengths = [9, 14, 6];
    const { N, seqStarts, plan, qkv, maxLen } = batch(lengths, C, rand);
    const scratch = k.alloc(maxLen);
    const clean = k.alloc(N * C);
    k.attention(clean, qkv, plan, nHead, C, scratch, 0, lengths.length * nHead);
    for (let s = 0; s < lengths.length; s++) {
      for (const upTo of [0, 3, lengths[s] - 1]) {
        // Sequence s at positions ≤ upTo may only see tokens seqStarts[s] .. seqStarts[s] + upTo.
        const poisoned = k.alloc(N * 3 * C);
        poisoned.set(qkv);
        const first = seqStarts[s], last = seqStarts[s] + upTo;
        for (let t = 0; t < N; t++) if (t < first || t > last) poisoned.fill(NaN, t * 3 * C, (t + 1) * 3 * C);
        const out = k.alloc(N * C);
        k.attention(out, poisoned, plan, nHead, C, scratch, s * nHead, (s + 1) * nHead);
        expect(firstBitDifference(out.subarray(first * C, (last + 1) * C), clean.subarray(first * C, (last + 1) * C))).toBe(-1);
      }
    }
  });
});

describe("wasm 16-bit packing (--dtype f16|bf16)", () => {
  it.each(["BF16", "F16"] as const)("%s: moves the raw values to packPanels' places and counts NaN/Inf in any lane", (dtype) => {
    const k = createWasmKernels(new Arena());
    const ts = createTsKernels(new Arena());
    const rand = uniform(7);
    const [inDim, outDim] = [37, 48];
    const raw = Uint16Array.from({ length: inDim * outDim }, () => Math.floor(rand() * 65536));
    const exp = dtype === "BF16" ? 0x7f80 : 0x7c00;
    for (let i = 0; i < raw.length; i++) if ((raw[i] & exp) === exp) raw[i] ^= 0x0100 << (dtype === "F16" ? 2 : 0); // finite only
    const read = (r0: number, r1: number, into: Uint16Array) => into.set(raw.subarray(r0 * outDim, r1 * outDim));
    const clean = k.packLinearRows16(inDim, outDim, new Float32Array(outDim), dtype, read);
    expect(clean.nonFinite).toBe(0);
    // The wasm tile is 8 columns wide: packPanels at width 8 is the layout to match, bit for bit.
    const want = new Uint16Array(clean.packed.length);
    packPanels(want, raw, inDim, outDim, 8, 0, inDim);
    expect(Array.from(clean.packed)).toEqual(Array.from(want));
    for (const at of [0, 5, 7, 8, 300, raw.length - 1]) {
      const bad = raw.slice();
      bad[at] = exp | (at % 2 ? 0x8001 : 0); // -NaN or +Inf
      const w = k.packLinearRows16(inDim, outDim, new Float32Array(outDim), dtype, (r0, r1, into) => into.set(bad.subarray(r0 * outDim, r1 * outDim)));
      expect(w.nonFinite, `value ${at}`).toBe(1);
      expect(ts.packLinearRows16(inDim, outDim, new Float32Array(outDim), dtype, (r0, r1, into) => into.set(bad.subarray(r0 * outDim, r1 * outDim))).nonFinite).toBe(1);
    }
  });
});

describe("wasm residual", () => {
  const k = createWasmKernels(new Arena());
  it("adds exactly over any range, also in place", () => {
    const rand = rng(5);
    const n = 1027;
    const a = fill(k.alloc(n), rand), b = fill(k.alloc(n), rand);
    const ref = new Float32Array(n);
    residualReference(ref, a, b, n);
    const out = k.alloc(n);
    for (const [s, e] of [[0, 3], [3, 517], [517, 1026], [1026, 1027]]) k.residual(out, a, b, n, s, e);
    expect(firstBitDifference(out, ref)).toBe(-1);
    k.residual(a, a, b, n, 0, n);
    expect(firstBitDifference(a, ref)).toBe(-1);
  });
});

describe("wasm kernels' memory checks", () => {
  it("refuse arrays that are not in the kernels' memory, and ranges past an array's end", () => {
    const k = createWasmKernels(new Arena());
    const w = packLinear(k, new Float32Array(6), new Float32Array(3), 2, 3);
    expect(() => k.linear(k.alloc(6), new Float32Array(4), w, 2, false, undefined, 0, 3)).toThrow(/not a view into the kernels' memory/);
    expect(() => k.linear(k.alloc(5), k.alloc(4), w, 2, false, undefined, 0, 3)).toThrow(/has 5 elements, needs 6/);
    expect(() => k.linear(k.alloc(6), k.alloc(4), w, 2, false, undefined, 0, 4)).toThrow(/columns/);
    expect(() => k.residual(k.alloc(3), k.alloc(4), k.alloc(4), 4, 0, 4)).toThrow(/needs 4/);
  });
});
