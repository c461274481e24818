/**
 * NaN/±Inf detection: the bit test itself, the count that packing returns on its way (whole or
 * block by block, TypeScript or wasm), each kernel set's scan, and the loader's report for every
 * kind of tensor (read-and-scanned vectors, packed Conv1D weights) with both kernel sets.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Arena } from "../../kernels/arena.js";
import type { Kernels } from "../../kernels/contract.js";
import { countNonFinite } from "../../kernels/finite.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { createWasmKernels } from "../../kernels/wasm/wasm-kernels.js";
import { packMatmulWeight, packedSize, PANEL } from "../../kernels/matmul.js";
import { checkpointTensors } from "../helpers/tensors.js";
import { writeSafetensors } from "../../src/formats/write-safetensors.js";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { toFloat32, type RawTensor } from "../../src/formats/tensor.js";
import { FIXTURES } from "../helpers/cli.js";
import { randomArray, rng } from "../helpers/random.js";
import { packLinear } from "../../kernels/packing.js";

/** Float32 values from their bits. */
const fromBits = (...bits: number[]): number[] => Array.from(new Float32Array(Uint32Array.from(bits).buffer));

const NON_FINITE = fromBits(0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xffffffff); // ±Inf, ±quiet NaN, signalling NaN, all ones
const EDGES = fromBits(0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000001, 0x00800000, 0x80000000, 0x3f800000); // ±max, ±smallest subnormal, smallest normal, -0, 1

describe("countNonFinite", () => {
  it("counts exactly the NaNs and infinities, not the largest, smallest or subnormal floats", () => {
    expect(countNonFinite(Float32Array.from(EDGES))).toBe(0);
    expect(countNonFinite(Float32Array.from(NON_FINITE))).toBe(NON_FINITE.length);
    for (let n = 0; n < 11; n++) {
      // every position modulo the 4-way unrolled pass, and the remainder loop
      for (let at = 0; at < n; at++) {
        const x = new Float32Array(n).fill(0.5);
        x[at] = NON_FINITE[at % NON_FINITE.length];
        expect(countNonFinite(x), `n=${n} at=${at}`).toBe(1);
      }
    }
  });

  it("reads only its own view of a larger buffer", () => {
    const big = new Float32Array(64).fill(NaN);
    big.fill(1, 8, 40);
    expect(countNonFinite(big.subarray(8, 40))).toBe(0);
    expect(countNonFinite(big.subarray(7, 41))).toBe(2);
  });
});

describe("packMatmulWeight counts the NaN/Inf of the weight while packing", () => {
  const next = rng(11);
  // [inDim, outDim]: whole panels (the int32 fast path, rows in blocks of 16 and a partial
  // block) and a tail panel (the general path).
  for (const [inDim, outDim] of [[37, 3 * PANEL], [16, PANEL], [5, 13], [40, 7]]) {
    it(`at ${inDim}x${outDim}`, () => {
      const w = randomArray(next, inDim * outDim);
      const packed = new Float32Array(packedSize(inDim, outDim));
      expect(packMatmulWeight(packed, w, inDim, outDim)).toBe(0);
      const clean = packed.slice();
      const spots = [0, inDim * outDim - 1, Math.floor(inDim / 2) * outDim + (outDim >> 1), outDim - 1, (inDim - 1) * outDim];
      const uniq = [...new Set(spots)];
      uniq.forEach((s, k) => (w[s] = NON_FINITE[k % NON_FINITE.length]));
      expect(packMatmulWeight(packed, w, inDim, outDim)).toBe(uniq.length);
      // and the packing is the same apart from those values, which land where they belong
      for (let i = 0; i < inDim; i++) {
        for (let o = 0; o < outDim; o++) {
          const at = (Math.floor(o / PANEL) * inDim + i) * PANEL + (o % PANEL);
          if (uniq.includes(i * outDim + o)) expect(Number.isFinite(packed[at])).toBe(false);
          else expect(packed[at]).toBe(clean[at]);
        }
      }
    });
  }

  it("moves the bits exactly on the fast path, NaN payloads and -0 included", () => {
    const inDim = 3, outDim = PANEL;
    const bits = Uint32Array.from({ length: inDim * outDim }, (_, k) => [0x7fc00001, 0xffc0abcd, 0x80000000, 0x00000001, 0x3f800000][k % 5]);
    const packed = new Float32Array(packedSize(inDim, outDim));
    packMatmulWeight(packed, new Float32Array(bits.buffer), inDim, outDim);
    expect(Array.from(new Uint32Array(packed.buffer))).toEqual(Array.from(bits)); // one panel: same order
  });
});

const KERNEL_SETS: [string, () => Kernels][] = [
  ["ts", () => createTsKernels(new Arena())],
  ["wasm", () => createWasmKernels(new Arena(), { fma: false })],
];

describe.each(KERNEL_SETS)("%s kernels.countNonFinite (the loader's scan of every vector and of wte)", (_name, make) => {
  const k = make();
  it("counts each NaN/Inf at every position of every length up to 13 (the vector loop and its tail)", () => {
    for (let n = 0; n <= 13; n++) {
      const x = k.alloc(n);
      x.set(EDGES.concat(EDGES).slice(0, n));
      expect(k.countNonFinite(x), `n=${n}`).toBe(0);
      for (let at = 0; at < n; at++) {
        for (const bad of NON_FINITE) {
          const saved = x[at];
          x[at] = bad;
          expect(k.countNonFinite(x), `n=${n} at=${at}`).toBe(1);
          x[at] = saved;
        }
      }
    }
  });

  it("at any offset in the memory, and over arrays from elsewhere", () => {
    const x = k.alloc(64).fill(NaN);
    x.fill(1, 9, 50);
    expect(k.countNonFinite(x.subarray(9, 50))).toBe(0);
    expect(k.countNonFinite(x.subarray(8, 51))).toBe(2);
    expect(k.countNonFinite(Float32Array.from([1, NaN, 2, Infinity, 3]))).toBe(2);
  });
});

describe.each(KERNEL_SETS)("%s packLinearRows: a weight read block by block", (_name, make) => {
  const k = make();
  const next = rng(12);
  // [inDim, outDim]: blocks of 16 rows and a partial one (4096 columns), one block (24), and a
  // tail panel (13 and 7: the TypeScript packing in either kernel set).
  for (const [inDim, outDim] of [[100, 4096], [37, 3 * PANEL], [5, 13], [40, 7]]) {
    it(`${inDim}x${outDim}: asks for each row once, in order, and packs the bits as packMatmulWeight does whole, NaN/Inf counted`, () => {
      const bits = Uint32Array.from({ length: inDim * outDim }, () => Math.floor(next() * 2 ** 32));
      for (let i = 0; i < bits.length; i++) if (((bits[i] >>> 23) & 0xff) === 0xff) bits[i] &= 0xbfffffff; // finite, for now
      const spots = [0, outDim - 1, 17 * outDim + 3, (inDim - 1) * outDim].filter((s) => s < bits.length);
      spots.forEach((s, j) => (bits[s] = new Uint32Array(Float32Array.from([NON_FINITE[j]]).buffer)[0]));
      bits[1] = 0x7fc00abc; // a NaN payload
      const weight = new Float32Array(bits.buffer);
      const want = new Float32Array(packedSize(inDim, outDim));
      const wantCount = packMatmulWeight(want, weight, inDim, outDim);
      expect(wantCount).toBe(spots.length + 1);

      const asked: [number, number][] = [];
      const w = k.packLinearRows(inDim, outDim, randomArray(next, outDim), (r0, r1, into) => {
        asked.push([r0, r1]);
        expect(into.length).toBe((r1 - r0) * outDim);
        into.set(weight.subarray(r0 * outDim, r1 * outDim));
      });
      expect(asked[0][0]).toBe(0);
      expect(asked.at(-1)![1]).toBe(inDim);
      for (let j = 1; j < asked.length; j++) expect(asked[j][0]).toBe(asked[j - 1][1]);
      expect(w.nonFinite).toBe(wantCount);
      // Both kernel sets use 8-wide panels: the same bits, padding included.
      expect(Array.from(new Uint32Array(w.packed.buffer, w.packed.byteOffset, want.length))).toEqual(Array.from(new Uint32Array(want.buffer)));
      // packLinear of the weight in memory takes the same road
      const again = packLinear(k, weight, w.bias, inDim, outDim);
      expect(again.nonFinite).toBe(wantCount);
      expect(Array.from(new Uint32Array(again.packed.buffer, again.packed.byteOffset, want.length))).toEqual(Array.from(new Uint32Array(want.buffer)));
    });
  }
});

describe("the loader reports NaN/Inf in every kind of tensor, with either kernel set", () => {
  const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-nonfinite-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const source = join(FIXTURES, "models", "f16-8head");
  const { tensors } = checkpointTensors(source);
  const poison: Record<string, number[]> = {
    "transformer.wte.weight": [5],
    "transformer.h.0.ln_1.bias": [0, 31],
    "transformer.h.0.attn.c_attn.weight": [0, 1, 2],
    "transformer.h.1.mlp.c_fc.weight": [32 * 48 - 1],
    "transformer.h.1.mlp.c_proj.bias": [3],
  };
  const edited = new Map<string, RawTensor>();
  for (const [name, t] of tensors) {
    const x = toFloat32(t, source, name).slice();
    poison[name]?.forEach((at, k) => (x[at] = NON_FINITE[k]));
    edited.set(name, { dtype: "F32", shape: t.shape, bytes: new Uint8Array(x.buffer) });
  }
  writeSafetensors(join(dir, "model.safetensors"), edited);
  copyFileSync(join(source, "config.json"), join(dir, "config.json"));

  for (const kernels of ["ts", "wasm"] as const) {
    it(`kernels ${kernels}`, () => {
      const warnings: string[] = [];
      const model = SyncRewardModel.load(dir, { kernels, threads: 1, onWarning: (w) => warnings.push(w) });
      model.close();
      const reported = Object.fromEntries(model.loadReport.nonFinite.map(({ name, count }) => [name, count]));
      expect(reported).toEqual(Object.fromEntries(Object.entries(poison).map(([name, spots]) => [name, spots.length])));
      expect(warnings).toContain(`${join(dir, "model.safetensors")}: tensor transformer.h.1.mlp.c_fc.weight holds 1 NaN or infinite value(s); scores may be NaN`);
    });
  }
});
