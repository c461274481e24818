/** Every fast TypeScript kernel against its slow reference, on random data of odd sizes. */
import { describe, expect, it } from "vitest";
import { Arena } from "../../kernels/arena.js";
import type { PackedLinear } from "../../kernels/contract.js";
import { attention, causalPlan } from "../../kernels/attention.js";
import { embedding } from "../../kernels/embedding.js";
import { geluScalar } from "../../kernels/gelu.js";
import { layernorm } from "../../kernels/layernorm.js";
import { matmulPacked, packMatmulWeight, packedSize } from "../../kernels/matmul.js";
import { residual } from "../../kernels/residual.js";
import { softmaxInPlace } from "../../kernels/softmax.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { matmulReference, layernormReference, attentionReference, geluReference, residualReference, softmaxReference } from "../../kernels/ref-kernels.js";
import { maxAbsDiff, randomArray, rng, sameBits } from "../helpers/random.js";

const rand = rng(1234);

/** A weight packed by packMatmulWeight, as the TS kernels' linear takes it. */
const f32Linear = (packed: Float32Array, bias: Float32Array, inDim: number, outDim: number): PackedLinear =>
  ({ inDim, outDim, dtype: "F32", packed, bias, nonFinite: 0 });

describe("matmul", () => {
  const shapes = [
    [1, 1, 1], [1, 7, 5], [3, 7, 9], [5, 32, 33], [17, 13, 8], [4, 16, 16], [64, 96, 40], [6, 768, 17],
  ];
  for (const [rows, inDim, outDim] of shapes) {
    it(`packed tile kernel equals the reference at ${rows}x${inDim} · ${inDim}x${outDim}`, () => {
      const inp = randomArray(rand, rows * inDim);
      const w = randomArray(rand, inDim * outDim);
      const bias = randomArray(rand, outDim);
      const ref = new Float32Array(rows * outDim);
      matmulReference(ref, inp, w, bias, rows, inDim, outDim);
      const packed = new Float32Array(packedSize(inDim, outDim));
      packMatmulWeight(packed, w, inDim, outDim);
      const out = new Float32Array(rows * outDim);
      matmulPacked(out, inp, f32Linear(packed, bias, inDim, outDim), rows, false, undefined, 0, outDim);
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5 * Math.sqrt(inDim));

      const refGelu = new Float32Array(rows * outDim);
      geluReference(refGelu, ref, ref.length);
      matmulPacked(out, inp, f32Linear(packed, bias, inDim, outDim), rows, true, undefined, 0, outDim);
      expect(maxAbsDiff(out, refGelu)).toBeLessThan(1e-5 * Math.sqrt(inDim));
    });
  }

  it("gives bit-identical outputs whatever column ranges a thread pool splits it into", () => {
    const [rows, inDim, outDim] = [13, 40, 45];
    const inp = randomArray(rand, rows * inDim);
    const w = randomArray(rand, inDim * outDim);
    const bias = randomArray(rand, outDim);
    const packed = new Float32Array(packedSize(inDim, outDim));
    packMatmulWeight(packed, w, inDim, outDim);
    const whole = new Float32Array(rows * outDim);
    matmulPacked(whole, inp, f32Linear(packed, bias, inDim, outDim), rows, true, undefined, 0, outDim);
    for (const cuts of [[0, 8, 45], [0, 3, 17, 40, 45], [0, 1, 2, 44, 45]]) {
      const split = new Float32Array(rows * outDim);
      for (let i = 0; i + 1 < cuts.length; i++) matmulPacked(split, inp, f32Linear(packed, bias, inDim, outDim), rows, true, undefined, cuts[i], cuts[i + 1]);
      expect(sameBits(split, whole)).toBe(true);
    }
  });
});

describe("gelu", () => {
  it("is the tanh approximation gelu_new, not the exact erf form", () => {
    // gelu_new(1) = 0.5·(1 + tanh(√(2/π)·1.044715)); the erf form gives 0.8413447.
    const expected = 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715));
    expect(geluScalar(1)).toBeCloseTo(expected, 12);
    expect(Math.abs(geluScalar(1) - 0.8413447460685429)).toBeGreaterThan(1e-4);
  });
  it("fused scalar GELU equals the reference over a range of inputs", () => {
    const x = randomArray(rand, 1001, 8);
    const ref = new Float32Array(x.length);
    geluReference(ref, x, x.length);
    expect(maxAbsDiff(Float32Array.from(x, geluScalar), ref)).toBeLessThan(1e-6);
  });
});

describe("layernorm", () => {
  for (const [rows, C] of [[1, 1], [3, 7], [5, 32], [9, 768]]) {
    it(`equals the reference at ${rows}x${C}, including rows with a large mean`, () => {
      const inp = randomArray(rand, rows * C, 3);
      for (let i = 0; i < C; i++) inp[i] += 1000; // a residual stream can drift far from 0
      const w = randomArray(rand, C);
      const b = randomArray(rand, C);
      const ref = new Float32Array(rows * C);
      layernormReference(ref, inp, w, b, rows, C, 1e-5);
      const out = new Float32Array(rows * C);
      layernorm(out, inp, w, b, rows, C, 1e-5, 0, rows);
      expect(maxAbsDiff(out, ref)).toBeLessThan(2e-5);
    });
  }
});

describe("softmax", () => {
  it("equals the reference, and survives large inputs without overflow", () => {
    for (const n of [1, 2, 7, 100]) {
      const x = randomArray(rand, n, 50);
      x[0] = 1000;
      const ref = new Float32Array(n);
      softmaxReference(ref, x, n);
      softmaxInPlace(x, n);
      expect(maxAbsDiff(x, ref)).toBeLessThan(1e-7);
      expect(x.every(Number.isFinite)).toBe(true);
    }
  });
});

describe("attention", () => {
  const cases: [number[], number, number][] = [
    [[1], 1, 4], [[5], 2, 8], [[3, 1, 7], 3, 12], [[17, 40, 2, 9], 4, 32], [[33], 12, 24],
    // head sizes 7 (four at a time, then 3 one by one) and 64 (GPT-2's)
    [[9, 20], 2, 14], [[70, 3], 2, 128],
  ];
  for (const [lens, nHead, C] of cases) {
    it(`fast kernel equals the reference for lengths [${lens}] with ${nHead} heads of ${C / nHead}`, () => {
      const seqStarts = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b))]);
      const N = seqStarts[lens.length];
      const qkv = randomArray(rand, N * 3 * C, 2);
      const ref = new Float32Array(N * C);
      attentionReference(ref, qkv, causalPlan(seqStarts), nHead, C);
      const out = new Float32Array(N * C);
      const scratch = new Float32Array(Math.max(...lens));
      const items = lens.length * nHead;
      // In two uneven ranges of (sequence, head) items, as a pool would split it.
      const cut = Math.floor(items / 3);
      attention(out, qkv, causalPlan(seqStarts), nHead, C, scratch, 0, cut);
      attention(out, qkv, causalPlan(seqStarts), nHead, C, scratch, cut, items);
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
    });
  }

  it("never lets a token see a later token or another sequence", () => {
    const C = 8, nHead = 2;
    const seqStarts = Int32Array.from([0, 4, 9]);
    const qkv = randomArray(rand, 9 * 3 * C);
    const before = new Float32Array(9 * C);
    attentionReference(before, qkv, causalPlan(seqStarts), nHead, C);
    // Changing token 6 (second sequence) must leave tokens 0..5 unchanged.
    for (let c = 0; c < 3 * C; c++) qkv[6 * 3 * C + c] += 5;
    const after = new Float32Array(9 * C);
    attentionReference(after, qkv, causalPlan(seqStarts), nHead, C);
    expect(sameBits(after.subarray(0, 6 * C), before.subarray(0, 6 * C))).toBe(true);
    expect(sameBits(after.subarray(6 * C), before.subarray(6 * C))).toBe(false);
  });

  it("fast kernel: poisoning later tokens and the other sequence with NaN changes no output bit", () => {
    const C = 12, nHead = 2;
    const seqStarts = Int32Array.from([0, 5, 11]);
    const qkv = randomArray(rand, 11 * 3 * C);
    const scratch = new Float32Array(6);
    const clean = new Float32Array(11 * C);
    attention(clean, qkv, causalPlan(seqStarts), nHead, C, scratch, 0, 4);
    for (const [first, last] of [[0, 4], [5, 10]]) {
      for (let t = first; t <= last; t++) {
        const poisoned = qkv.slice();
        for (let u = 0; u < 11; u++) if (u < first || u > last || u > t) poisoned.fill(NaN, u * 3 * C, (u + 1) * 3 * C);
        const out = new Float32Array(11 * C);
        attention(out, poisoned, causalPlan(seqStarts), nHead, C, scratch, 0, 4);
        expect(sameBits(out.subarray(t * C, (t + 1) * C), clean.subarray(t * C, (t + 1) * C)), `token ${t}`).toBe(true);
      }
    }
  });
});

describe("residual and embedding", () => {
  it("residual add equals the reference, in place too", () => {
    const a = randomArray(rand, 37), b = randomArray(rand, 37);
    const ref = new Float32Array(37);
    residualReference(ref, a, b, 37);
    residual(a, a, b, 37, 0, 37);
    expect(sameBits(a, ref)).toBe(true);
  });
  it("adds the position embedding of each row's position", () => {
    const C = 3, V = 5, P = 4;
    const wte = randomArray(rand, V * C), wpe = randomArray(rand, P * C);
    const ids = Int32Array.from([4, 0, 2, 2, 1]);
    const positions = Int32Array.from([0, 1, 2, 0, 1]);
    const out = new Float32Array(5 * C);
    embedding(out, ids, positions, wte, wpe, C);
    for (let t = 0; t < 5; t++) for (let c = 0; c < C; c++) expect(out[t * C + c]).toBe(Math.fround(wte[ids[t] * C + c] + wpe[positions[t] * C + c]));
  });
});

describe("ts backend", () => {
  it("allocates in one shared memory and frees a batch's buffers on release", () => {
    const k = createTsKernels(new Arena());
    const w = k.alloc(10);
    expect(w.buffer).toBe(k.memory.buffer);
    const mark = k.mark();
    const a = k.alloc(1000);
    a.fill(1);
    k.release(mark);
    const b = k.alloc(1000);
    expect(b.byteOffset).toBe(a.byteOffset);
    expect(b.every((v) => v === 0)).toBe(true);
  });

  it("`above` hands out memory past the next allocations without allocating; what is later allocated over it is cleared", () => {
    const arena = new Arena();
    arena.alloc(3);
    const top = arena.mark();
    const block = arena.above([10, 1000], 5000); // as packLinearRows: above the packed weight and its bias
    expect(arena.mark()).toBe(top);
    block.fill(7);
    const first = arena.alloc(10);
    const second = arena.alloc(1000);
    expect(first.every((v) => v === 0) && second.every((v) => v === 0)).toBe(true);
    expect(second.byteOffset + second.byteLength).toBeLessThanOrEqual(block.byteOffset); // no overlap with the block
    // allocUncleared is for a caller that writes every float (packing): it sees the old data...
    const uncleared = arena.allocUncleared(5000);
    expect(uncleared.byteOffset).toBe(block.byteOffset);
    expect(uncleared.every((v) => v === 7)).toBe(true);
    // ...and alloc over the same memory clears it
    arena.release(top);
    const over = arena.alloc(6010);
    expect(over.every((v) => v === 0)).toBe(true);
  });
});
