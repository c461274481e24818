/**
 * The SIMD128 multiply-add ceiling of one core: a WebAssembly loop of independent f32x4
 * multiply-adds on registers only, emitted with the kernels' own emitter (kernels/wasm/emit.ts)
 * and the same instruction the matmul uses (relaxed SIMD's f32x4.relaxed_madd where the engine
 * has it, as kernels/wasm/wasm-kernels.ts picks; else f32x4.mul + f32x4.add). No kernel doing
 * real work can beat it: it is the yardstick for "how close to the hardware are the matmuls".
 */
import { Arena } from "../kernels/arena.js";
import { ModuleBuilder, f32, f32x4, forUp, i32, set, type Expr, type Local } from "../kernels/wasm/emit.js";
import { enableRelaxedSimd } from "../src/platform/node.js";

/**
 * 12 accumulators: a multiply-add's latency (4 cycles) times the two issue ports of a modern
 * x64 core is 8 in flight; 12 + the two operands fit the 16 xmm registers V8 allocates.
 */
const ACCUMULATORS = 12;

function ceilingModule(fma: boolean): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder();
  const f = m.func("madds", [["iters", "i32"], ["x", "f32"]], ["f32"], true);
  const [iters, x] = f.params;
  const i = f.local("i32", "i");
  const a = f.local("v128", "a");
  const b = f.local("v128", "b");
  const acc = Array.from({ length: ACCUMULATORS }, (_, k) => f.local("v128", `acc${k}`));
  const madd = (s: Local) => (fma ? f32x4.relaxed_madd(a, b, s) : f32x4.add(f32x4.mul(a, b), s));
  // Sums of the lanes at the end, so that no accumulator is dead code.
  let total: Expr = acc[0];
  for (let k = 1; k < ACCUMULATORS; k++) total = f32x4.add(total, acc[k]);
  f.define(
    set(a, f32x4.splat(x)),
    set(b, f32x4.splat(f32.const(0.999))),
    ...acc.map((s, k) => set(s, f32x4.splat(f32.const(k)))),
    forUp(i, i32.const(0), iters, 1, acc.map((s) => set(s, madd(s)))),
    f32x4.extract_lane(total, 0),
  );
  return m.bytes();
}

export interface Ceiling {
  /** Single-core GFLOPS of the loop (a multiply-add = 2 flops per lane). */
  gflops: number;
  /** "relaxed_madd" or "mul+add". */
  instruction: string;
}

/** Runs the loop for about `seconds` and reports the best of its timed slices. */
export function measureCeiling(seconds = 1): Ceiling {
  const fma = enableRelaxedSimd(); // as RewardModel.load does before compiling the kernels
  const exports = new WebAssembly.Instance(new WebAssembly.Module(ceilingModule(fma)), { env: { memory: new Arena().memory } }).exports as {
    madds(iters: number, x: number): number;
  };
  const iters = 2_000_000; // 24 M multiply-adds: ~10 ms per slice
  exports.madds(iters, 1.0001); // compile with the optimizing tier
  let best = Infinity;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    exports.madds(iters, 1.0001);
    best = Math.min(best, performance.now() - t0);
  }
  return { gflops: (iters * ACCUMULATORS * 4 * 2) / best / 1e6, instruction: fma ? "relaxed_madd" : "mul+add" };
}
