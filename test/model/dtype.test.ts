/**
 * `--dtype f16|bf16`: the linear layers' weights stay 16-bit in memory, as the checkpoint stores
 * them. Widening a panel before the F32 tile is exact and the sums are the same sums in the same
 * order, so everything here is checked bit for bit against the F32 path: each kernel set's
 * linear (tail panels, any column split), and the logits of the 16-bit fixture models with 1 and
 * 2 threads.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Arena } from "../../kernels/arena.js";
import { LINEAR_SCRATCH_COLS, type Kernels } from "../../kernels/contract.js";
import { F16_TABLE, countNonFinite16 } from "../../kernels/half.js";
import { packLinear, rowsOf } from "../../kernels/packing.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { createWasmKernels } from "../../kernels/wasm/wasm-kernels.js";
import { SyncRewardModel, type WeightDTypeChoice } from "../../src/model/sync-model.js";
import { Gpt2RewardError } from "../../src/errors.js";
import { checkpointTensors } from "../helpers/tensors.js";
import { writeSafetensors } from "../../src/formats/write-safetensors.js";
import { enableRelaxedSimd } from "../../src/platform/node.js";
import { rng } from "../helpers/random.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures");
enableRelaxedSimd();

/** 16-bit weights as the bits a checkpoint holds, and the same values widened to F32. */
function weights16(dtype: "BF16" | "F16", n: number, seed: number): { raw: Uint16Array; wide: Float32Array } {
  const next = rng(seed);
  const raw = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === "BF16") {
      f[0] = (next() * 2 - 1) * 2 ** Math.floor(next() * 20 - 10);
      raw[i] = u[0] >>> 16;
    } else {
      raw[i] = Math.floor(next() * 65536) & 0xbfff; // any sign, mantissa and exponent but the top ones: finite, subnormals included
    }
  }
  // the edges: ±0, the smallest subnormal, the largest finite value
  raw.set(dtype === "BF16" ? [0x0000, 0x8000, 0x0001, 0x7f7f] : [0x0000, 0x8000, 0x0001, 0x7bff, 0xfbff, 0x03ff]);
  const wide = new Float32Array(n);
  const wu = new Uint32Array(wide.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === "BF16") wu[i] = raw[i] << 16;
    else wide[i] = F16_TABLE[raw[i]];
  }
  return { raw, wide };
}

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

const KERNEL_SETS: [string, () => Kernels][] = [
  ["ts", () => createTsKernels(new Arena())],
  ["wasm", () => createWasmKernels(new Arena(), { fma: false })],
  ["wasm fma", () => createWasmKernels(new Arena(), { fma: true })],
];

describe.each(KERNEL_SETS)("%s linear over 16-bit weights", (_name, make) => {
  const k = make();
  for (const dtype of ["BF16", "F16"] as const) {
    it(`${dtype}: the same bits as over the weights widened to F32, for any shape and column split, with and without GELU`, () => {
      const next = rng(5);
      for (const [rows, inDim, outDim] of [[7, 33, 24], [5, 20, 13], [1, 64, 3], [13, 100, 4096]]) {
        const { raw, wide } = weights16(dtype, inDim * outDim, rows * inDim + outDim);
        const bias = Float32Array.from({ length: outDim }, () => next() - 0.5);
        const inp = k.alloc(rows * inDim);
        for (let i = 0; i < inp.length; i++) inp[i] = next() * 2 - 1;
        const w32 = packLinear(k, wide, bias, inDim, outDim);
        const w16 = k.packLinearRows16(inDim, outDim, bias, dtype, (r0, r1, into) => into.set(raw.subarray(r0 * outDim, r1 * outDim)));
        expect(w16.dtype).toBe(dtype);
        expect(w16.packed).toBeInstanceOf(Uint16Array);
        expect(w16.packed.byteLength).toBe(w32.packed.byteLength / 2); // half the memory
        expect(w16.nonFinite).toBe(0);
        const scratch = k.alloc(LINEAR_SCRATCH_COLS * inDim);
        for (const gelu of [false, true]) {
          const want = k.alloc(rows * outDim);
          k.linear(want, inp, w32, rows, gelu, undefined, 0, outDim);
          const got = k.alloc(rows * outDim).fill(NaN);
          const cut = Math.min(outDim, 9);
          k.linear(got, inp, w16, rows, gelu, scratch, 0, cut);
          k.linear(got, inp, w16, rows, gelu, scratch, cut, outDim);
          expect(sameBits(got, want), `${rows}x${inDim}x${outDim} gelu=${gelu}`).toBe(true);
        }
      }
    });
  }

  it("counts NaN/Inf among the 16-bit weights while packing, and widens them to NaN/Inf", () => {
    const [inDim, outDim] = [4, 8];
    for (const [dtype, inf, nan] of [["BF16", 0x7f80, 0xffc1], ["F16", 0x7c00, 0xfe01]] as const) {
      const raw = new Uint16Array(inDim * outDim).fill(dtype === "BF16" ? 0x3f80 : 0x3c00); // 1.0
      raw[3] = inf;
      raw[17] = nan;
      const w = k.packLinearRows16(inDim, outDim, new Float32Array(outDim), dtype, (r0, r1, into) => into.set(raw.subarray(r0 * outDim, r1 * outDim)));
      expect(w.nonFinite).toBe(2);
      expect(countNonFinite16(raw, dtype)).toBe(2);
      const inp = k.alloc(inDim).fill(1);
      const out = k.alloc(outDim);
      k.linear(out, inp, w, 1, false, k.alloc(LINEAR_SCRATCH_COLS * inDim), 0, outDim);
      expect(Array.from(out)).toEqual([4, 4, 4, Infinity, 4, 4, 4, 4].map((v, o) => (o === 1 ? NaN : v))); // raw[17] is row 2, column 1
    }
  });

  it("refuses a 16-bit weight without a scratch panel", () => {
    const w = k.packLinearRows16(2, 8, new Float32Array(8), "BF16", (r0, r1, into) => into.fill(0x3f80));
    expect(() => k.linear(k.alloc(8), k.alloc(2), w, 1, false, undefined, 0, 8)).toThrow(/scratch/);
  });
});

describe("SyncRewardModel.load({ dtype }) on the 16-bit fixture models", () => {
  const texts: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8")).slice(0, 24);
  const cases: [string, WeightDTypeChoice][] = [["f16-8head", "f16"], ["bf16-3label", "bf16"]];
  for (const [model, dtype] of cases) {
    for (const kernels of ["ts", "wasm"] as const) {
      it(`${model}, ${kernels} kernels: --dtype ${dtype} scores every text with the same bits as f32, on 1 and 2 threads, in half the weight memory`, async () => {
        const dir = join(FIXTURES, "models", model);
        const f32 = SyncRewardModel.load(dir, { kernels, threads: 1 });
        const want = f32.score(texts, { batchSize: 5 }).map((r) => r.logits);
        for (const threads of [1, 2]) {
          const m = SyncRewardModel.load(dir, { kernels, threads, dtype });
          try {
            expect(m.weights.wteDType).toBe(dtype.toUpperCase()); // the fixtures store wte 16-bit too
            expect(m.weights.wte.byteLength).toBe(f32.weights.wte.byteLength / 2);
            const c_fc = m.weights.h[0].mlp.c_fc;
            expect(c_fc.dtype).toBe(dtype.toUpperCase());
            expect(c_fc.packed.byteLength).toBe(f32.weights.h[0].mlp.c_fc.packed.byteLength / 2);
            const got = m.score(texts, { batchSize: 5 }).map((r) => r.logits);
            expect(got.map((l) => Array.from(new Uint32Array(Float32Array.from(l).buffer)))).toEqual(want.map((l) => Array.from(new Uint32Array(Float32Array.from(l).buffer))));
          } finally {
            await m.close();
          }
        }
        await f32.close();
      });
    }
  }

  it("reports NaN/Inf in 16-bit weights kept 16-bit (wte and a Conv1D weight) like the F32 load does", () => {
    const source = join(FIXTURES, "models", "f16-8head");
    const { tensors } = checkpointTensors(source);
    const poke = (name: string, at: number, bits: number) => {
      const t = tensors.get(name)!;
      const bytes = t.bytes.slice();
      new DataView(bytes.buffer).setUint16(2 * at, bits, true);
      tensors.set(name, { ...t, bytes });
    };
    poke("transformer.wte.weight", 5, 0x7e00); // NaN
    poke("transformer.h.1.attn.c_attn.weight", 40, 0xfc00); // -Inf
    const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-dtype-"));
    try {
      writeSafetensors(join(dir, "model.safetensors"), tensors);
      copyFileSync(join(source, "config.json"), join(dir, "config.json"));
      const want = { "transformer.wte.weight": 1, "transformer.h.1.attn.c_attn.weight": 1 };
      for (const dtype of ["f32", "f16"] as const) {
        const m = SyncRewardModel.load(dir, { kernels: "wasm", threads: 1, dtype });
        expect(Object.fromEntries(m.loadReport.nonFinite.map((x) => [x.name, x.count])), dtype).toEqual(want);
        void m.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses --dtype bf16 for weights stored in another dtype, naming the file and the tensor", () => {
    const dir = join(FIXTURES, "models", "f16-8head");
    let err: unknown;
    try {
      SyncRewardModel.load(dir, { kernels: "wasm", threads: 1, dtype: "bf16" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Gpt2RewardError);
    expect((err as Error).message).toMatch(/model\.safetensors: tensor transformer\.h\.0\.attn\.c_attn\.weight is stored as F16, so its weights cannot stay BF16/);
    expect(() => SyncRewardModel.load(dir, { dtype: "f8" as WeightDTypeChoice })).toThrow(/dtype must be f32, f16 or bf16/);
  });
});

// rowsOf is the F32 path's reader: the 16-bit one must ask for the same row blocks.
it("packLinearRows16 asks for each row once, in order, in blocks like packLinearRows", () => {
  for (const [, make] of KERNEL_SETS) {
    const k = make();
    const [inDim, outDim] = [100, 4096];
    const asked32: number[][] = [], asked16: number[][] = [];
    const read32 = rowsOf(new Float32Array(inDim * outDim), new Float32Array(outDim), inDim, outDim);
    k.packLinearRows(inDim, outDim, new Float32Array(outDim), (r0, r1, into) => (asked32.push([r0, r1]), read32(r0, r1, into)));
    k.packLinearRows16(inDim, outDim, new Float32Array(outDim), "F16", (r0, r1, into) => {
      asked16.push([r0, r1]);
      expect(into.length).toBe((r1 - r0) * outDim);
    });
    expect(asked16).toEqual(asked32);
    expect(asked16.at(-1)![1]).toBe(inDim);
  }
});
