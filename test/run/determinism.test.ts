/**
 * A text's logits are a function of the text alone: bit-identical in any batch, at any batch
 * size, in any order of input, with 1, 2 or 3 threads. Checked for each kernel set separately
 * (the TypeScript and WebAssembly kernels may round differently from each other, never from
 * themselves). The thread pool runs the compiled dist/, which `npm test` builds first.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Arena } from "../../kernels/arena.js";
import { createWasmKernels } from "../../kernels/wasm/wasm-kernels.js";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { createPool } from "../../src/run/pool.js";
import { enableRelaxedSimd } from "../../src/platform/node.js";
import { serialRunner } from "../../src/run/runner.js";
import { rng } from "../helpers/random.js";
import { packLinear } from "../../kernels/packing.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures");
const DEMO = join(FIXTURES, "models", "demo");
const all: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8"));
// 20 texts from 1 to 1,924 tokens: chat turns, emoji, CJK, <|endoftext|>, and three cut to 256 tokens.
const texts = [...Array.from({ length: 18 }, (_, i) => all[i * 3]), all[57], all[59]];

/** The logits' float32 bit patterns, so that -0, NaN payloads and the last bit all count. */
function bits(logits: number[][]): number[][] {
  return logits.map((l) => Array.from(new Uint32Array(Float32Array.from(l).buffer)));
}

/** A seeded permutation of 0..n-1. */
function shuffle(n: number, seed: number): number[] {
  const r = rng(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

describe.each(["ts", "wasm"] as const)("%s kernels", (kernels) => {
  const models = new Map<number, SyncRewardModel>();
  const load = (threads: number) => {
    if (!models.has(threads)) models.set(threads, SyncRewardModel.load(DEMO, { kernels, threads }));
    return models.get(threads)!;
  };
  afterAll(async () => {
    for (const m of models.values()) await m.close();
  });

  // The reference: each text alone, on one thread.
  let ref: number[][] | undefined;
  const reference = () => (ref ??= bits(texts.map((t) => load(1).score([t])[0].logits)));
  // Batch size and order (0 = input order, else a shuffle's seed); batch size 1 in input order is the reference itself.
  const runs: [number, number][] = [[1, 1], [2, 0], [2, 2], [5, 3], [20, 0], [20, 4]];

  it.each([1, 2, 3])("gives each text the same bits alone, and in batches of 1, 2, 5 and 20 in any order, with %i thread(s)", (threads) => {
    const want = reference();
    const model = load(threads);
    expect(model.threads).toBe(threads);
    expect(model.kernels).toBe(kernels);
    for (const [batchSize, seed] of runs) {
      const order = seed === 0 ? texts.map((_, i) => i) : shuffle(texts.length, seed);
      const got = bits(model.score(order.map((i) => texts[i]), { batchSize }).map((r) => r.logits));
      order.forEach((ti, k) => expect(got[k], `text ${ti}, batch size ${batchSize}, order seed ${seed}`).toEqual(want[ti]));
    }
  });

  it("gives the same bits when the same text appears several times in one batch", () => {
    const want = reference();
    const model = load(3);
    const order = [5, 5, 19, 0, 5, 19, 19, 0];
    const got = bits(model.score(order.map((i) => texts[i]), { batchSize: order.length }).map((r) => r.logits));
    order.forEach((ti, k) => expect(got[k], `position ${k} (text ${ti})`).toEqual(want[ti]));
  });
});

describe("a pool's threads build their kernels as the main thread did", () => {
  it("unfused wasm kernels stay unfused in the workers after relaxed SIMD was turned on", async () => {
    expect(enableRelaxedSimd()).toBe(true); // now a worker left to decide would pick the fused multiply-add
    const kernels = createWasmKernels(new Arena(), { fma: false });
    // Big enough (~60 ms) that the worker claims chunks before the main thread has done them all.
    const [rows, inDim, outDim] = [512, 768, 768];
    const next = rng(5);
    const fill = (n: number) => {
      const a = kernels.alloc(n);
      for (let i = 0; i < n; i++) a[i] = next() * 2 - 1;
      return a;
    };
    const w = packLinear(kernels, fill(inDim * outDim), fill(outDim), inDim, outDim);
    const inp = fill(rows * inDim);
    const serial = kernels.alloc(rows * outDim);
    serialRunner(kernels).linear(serial, inp, w, rows, true, undefined);
    const fused = createWasmKernels(new Arena(kernels.memory), { fma: true }); // same memory, never allocates
    const fusedOut = kernels.alloc(rows * outDim);
    fused.linear(fusedOut, inp, w, rows, true, undefined, 0, outDim);
    const pooled = kernels.alloc(rows * outDim);
    const pool = createPool(kernels, "wasm", 2);
    try {
      pool.linear(pooled, inp, w, rows, true, undefined);
    } finally {
      await pool.close();
    }
    expect(Array.from(new Uint32Array(pooled.slice().buffer))).toEqual(Array.from(new Uint32Array(serial.slice().buffer)));
    // The other choice gives other bits, so the equality above is not vacuous.
    expect(Array.from(new Uint32Array(fusedOut.slice().buffer))).not.toEqual(Array.from(new Uint32Array(serial.slice().buffer)));
  });
});
