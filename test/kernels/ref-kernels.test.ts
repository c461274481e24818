/** The reference kernel set: the plain loops behind the contract, whole calls on one thread. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Arena } from "../../kernels/arena.js";
import { createRefKernels, geluReference, matmulReference } from "../../kernels/ref-kernels.js";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { serialRunner } from "../../src/run/runner.js";
import { FIXTURES } from "../helpers/cli.js";
import { randomArray, rng, sameBits } from "../helpers/random.js";
import { packLinear } from "../../kernels/packing.js";

describe("ref kernels", () => {
  it("keep a Conv1D weight in the checkpoint's (inDim, outDim) layout, and linear is matmulReference then geluReference", () => {
    const rand = rng(7);
    const k = createRefKernels(new Arena());
    const [rows, inDim, outDim] = [5, 12, 7];
    const weight = randomArray(rand, inDim * outDim), bias = randomArray(rand, outDim);
    const w = packLinear(k, weight, bias, inDim, outDim);
    expect(sameBits(w.packed as Float32Array, weight)).toBe(true);
    const inp = k.alloc(rows * inDim);
    inp.set(randomArray(rand, rows * inDim));
    const out = k.alloc(rows * outDim);
    serialRunner(k).linear(out, inp, w, rows, true, undefined);
    const want = new Float32Array(rows * outDim);
    matmulReference(want, inp, weight, bias, rows, inDim, outDim);
    geluReference(want, want, want.length);
    expect(sameBits(out, want)).toBe(true);
  });

  it("refuse a partial range: the loops compute whole calls, so no pool can split them", () => {
    const k = createRefKernels(new Arena());
    const n = 8;
    expect(() => k.residual(k.alloc(n), k.alloc(n), k.alloc(n), n, 0, 4)).toThrow(/ref kernels: residual computes all 8 work items on one thread, asked for \[0, 4\)/);
  });

  it("run on one thread by default, and threads > 1 is a clear error", () => {
    const folder = join(FIXTURES, "models", "sharded-st");
    const m = SyncRewardModel.load(folder, { kernels: "ref" });
    expect([m.kernels, m.threads]).toEqual(["ref", 1]);
    expect(() => SyncRewardModel.load(folder, { kernels: "ref", threads: 2 })).toThrow(/the ref kernels run on one thread .*got threads 2/);
  });

  it("score 16-bit weights kept as --dtype bf16 the same as f32 (they are widened at load, exactly)", () => {
    const folder = join(FIXTURES, "models", "bf16-3label");
    const a = SyncRewardModel.load(folder, { kernels: "ref", dtype: "bf16" }).score(["User: hi\nBot: hello"]);
    const b = SyncRewardModel.load(folder, { kernels: "ref" }).score(["User: hi\nBot: hello"]);
    expect(a).toEqual(b);
  });
});
