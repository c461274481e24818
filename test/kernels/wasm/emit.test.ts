import { describe, expect, it } from "vitest";
import { ModuleBuilder, f32, f32x4, forUp, i32, set, sleb, uleb, v128 } from "../../../kernels/wasm/emit.js";
import { buildKernelModule, simdProbe } from "../../../kernels/wasm/module.js";
import { wasmRelaxedSimdSupported, wasmSimdSupported } from "../../../kernels/wasm/wasm-kernels.js";

describe("wasm emitter", () => {
  it("encodes LEB128 as the spec's examples", () => {
    expect(uleb(0)).toEqual([0]);
    expect(uleb(127)).toEqual([0x7f]);
    expect(uleb(128)).toEqual([0x80, 0x01]);
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(uleb(2 ** 32 - 1)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect(sleb(0)).toEqual([0]);
    expect(sleb(63)).toEqual([0x3f]);
    expect(sleb(64)).toEqual([0xc0, 0x00]);
    expect(sleb(-1)).toEqual([0x7f]);
    expect(sleb(-64)).toEqual([0x40]);
    expect(sleb(-65)).toEqual([0xbf, 0x7f]);
    expect(sleb(-123456)).toEqual([0xc0, 0xbb, 0x78]);
  });

  it("builds a module that validates and computes a SIMD loop over the imported shared memory", () => {
    // sum4(p, n): Σ of n floats (n a multiple of 4) at byte offset p, via f32x4 partial sums.
    const m = new ModuleBuilder();
    const f = m.func("sum4", [["p", "i32"], ["n", "i32"]], ["f32"], true);
    const [p, n] = f.params;
    const i = f.local("i32");
    const acc = f.local("v128");
    f.define(
      forUp(i, i32.const(0), n, 4, [set(acc, f32x4.add(acc, v128.load(i32.add(p, i32.shl(i, i32.const(2))))))]),
      f32.add(f32.add(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)),
        f32.add(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3))),
    );
    const bytes = m.bytes();
    expect(WebAssembly.validate(bytes)).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const { sum4 } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as {
      sum4(p: number, n: number): number;
    };
    new Float32Array(memory.buffer, 64, 12).set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(sum4(64, 12)).toBe(78);
    expect(sum4(64, 0)).toBe(0);
  });

  it("emits kernel modules that validate, for every tile shape measured", () => {
    expect(wasmSimdSupported()).toBe(true);
    expect(WebAssembly.validate(simdProbe(false))).toBe(true);
    const shapes = [[4, 8], [3, 8], [5, 8], [6, 8], [8, 4], [2, 16], [3, 16], [4, 12]];
    for (const [tileRows, tileCols] of shapes) {
      const bytes = buildKernelModule({ tileRows, tileCols, fma: false });
      expect(WebAssembly.validate(bytes), `${tileRows}x${tileCols}`).toBe(true);
    }
    // The relaxed-SIMD variant validates exactly when the engine has relaxed SIMD.
    expect(WebAssembly.validate(buildKernelModule({ tileRows: 4, tileCols: 8, fma: true }))).toBe(wasmRelaxedSimdSupported());
  });

  it("refuses a tile whose width is not whole vectors", () => {
    expect(() => buildKernelModule({ tileRows: 4, tileCols: 6, fma: false })).toThrow(/bad tile/);
  });
});
