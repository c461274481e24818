/**
 * The WebAssembly SIMD128 kernels behind the `Kernels` contract (kernels/contract.ts).
 *
 * The module is emitted by kernels/wasm/module.ts when this file first needs it, compiled once per
 * thread, and instantiated over the arena's shared memory, so a Float32Array from the arena is
 * passed to wasm as its byte offset. Every kernel of the contract runs in wasm, and so do the
 * loader's packing and NaN/Inf scan (the exact count of a flagged tensor is TypeScript's).
 */
import { Arena } from "../arena.js";
import type { Kernels, PackedLinear } from "../contract.js";
import { countNonFinite } from "../finite.js";
import { WEIGHT_DTYPES, countNonFinite16 } from "../half.js";
import { packBlockRows, packInBlocks, packLinear16, packPanels } from "../packing.js";
import { DEFAULT_OPTIONS, buildKernelModule, simdProbe, type KernelModuleOptions } from "./module.js";

interface WasmExports {
  linear(out: number, inp: number, w: number, bias: number, inDim: number, outDim: number, dtype: number,
    rows: number, gelu: number, scratch: number, colStart: number, colEnd: number): void;
  layernorm(out: number, inp: number, weight: number, bias: number, C: number, eps: number, rowStart: number, rowEnd: number): void;
  attention(out: number, qkv: number, blocks: number, keyRows: number, nHead: number, C: number, scratch: number,
    itemStart: number, itemEnd: number): void;
  residual(out: number, a: number, b: number, start: number, end: number): void;
  gelu(out: number, inp: number, n: number): void;
  pack(dst: number, src: number, inDim: number, outDim: number, rowStart: number, rowEnd: number): number;
  pack16(dst: number, src: number, inDim: number, outDim: number, rowStart: number, rowEnd: number, expMask: number): number;
  nonfinite(x: number, n: number): number;
}

/** True if this engine runs WebAssembly SIMD128 (Node ≥ 16.4; every current browser). */
export function wasmSimdSupported(): boolean {
  return WebAssembly.validate(simdProbe(false));
}

/** True if relaxed SIMD is on (Node 20: only with --experimental-wasm-relaxed-simd). */
export function wasmRelaxedSimdSupported(): boolean {
  return WebAssembly.validate(simdProbe(true));
}

const compiled = new Map<string, WebAssembly.Module>();

function compile(o: KernelModuleOptions): WebAssembly.Module {
  const key = JSON.stringify(o);
  let mod = compiled.get(key);
  if (!mod) {
    mod = new WebAssembly.Module(buildKernelModule(o));
    compiled.set(key, mod);
  }
  return mod;
}

/**
 * `options` picks the matmul tile (for kernels/wasm/measure.ts); by default the measured-fastest
 * 4×8 tile, with relaxed-SIMD fused multiply-add where the engine has it.
 * All the `Kernels` on one memory must agree on the tile, as the packed weights' layout depends on it.
 */
/** The wasm kernels: the contract, a standalone GELU (for tests), and the options they were built with. */
export type WasmKernels = Kernels & {
  gelu(out: Float32Array, inp: Float32Array, n: number): void;
  /** Every copy of these kernels (a pool's threads) must be built with the same, or sums differ. */
  readonly options: KernelModuleOptions;
};

export function createWasmKernels(arena: Arena = new Arena(), options: Partial<KernelModuleOptions> = {}): WasmKernels {
  if (!wasmSimdSupported()) throw new Error("WebAssembly SIMD128 is not available in this JavaScript engine");
  const o: KernelModuleOptions = { ...DEFAULT_OPTIONS, fma: wasmRelaxedSimdSupported(), ...options };
  const wasm = new WebAssembly.Instance(compile(o), { env: { memory: arena.memory } }).exports as unknown as WasmExports;
  const NR = o.tileCols;

  /**
   * True if `a` is a view into the arena memory, which wasm can address. The shared buffer's class
   * is taken from the memory: a page that is not cross-origin isolated has shared wasm memory but
   * no global SharedArrayBuffer.
   */
  const SharedBuffer = arena.memory.buffer.constructor as typeof SharedArrayBuffer;
  const inArena = (a: Float32Array | Int32Array | Uint16Array): boolean =>
    a.buffer instanceof SharedBuffer && a.byteOffset + a.byteLength <= arena.memory.buffer.byteLength;

  /** The byte offset of a view into the arena memory, checked so wasm cannot write past the view. */
  const ptr = (a: Float32Array | Int32Array | Uint16Array, what: string, need: number): number => {
    if (!inArena(a)) throw new Error(`wasm kernels: ${what} is not a view into the kernels' memory (allocate it with kernels.alloc)`);
    if (a.length < need) throw new RangeError(`wasm kernels: ${what} has ${a.length} elements, needs ${need}`);
    return a.byteOffset;
  };

  /** Exact count only when the wasm scan finds any: every sane checkpoint has none. */
  const nonFiniteIn = (x: Float32Array): number => (!inArena(x) || wasm.nonfinite(x.byteOffset, x.length) !== 0 ? countNonFinite(x) : 0);

  return {
    name: "wasm",
    options: o,
    ...arena.allocation(),

    /**
     * weight (inDim, outDim) → panels (⌈outDim/NR⌉, inDim, NR), the tail panel zero-padded; the
     * bias is padded to a whole panel too, so the kernel reads full vectors of both.
     */

    packLinearRows(inDim, outDim, bias, read): PackedLinear {
      const panels = Math.ceil(outDim / NR);
      const size = panels * inDim * NR;
      const block = arena.above([size, panels * NR], packBlockRows(inDim, outDim) * outDim);
      const packed = arena.allocUncleared(size); // both packers write every float
      const pack = outDim % NR === 0
        ? (rows: Float32Array, r0: number, r1: number) => (wasm.pack(packed.byteOffset, rows.byteOffset, inDim, outDim, r0, r1) !== 0 ? countNonFinite(rows) : 0)
        : (rows: Float32Array, r0: number, r1: number) => {
          packPanels(packed, rows, inDim, outDim, NR, r0, r1);
          return countNonFinite(rows);
        };
      const nonFinite = packInBlocks(block, inDim, outDim, read, pack);
      const b = arena.alloc(panels * NR);
      b.set(bias.subarray(0, outDim));
      return { inDim, outDim, dtype: "F32", packed, bias: b.subarray(0, outDim), nonFinite };
    },

    /** 16-bit weights move and are scanned in wasm too (outDim a multiple of NR, NR of 8: GPT-2's shapes). */
    packLinearRows16(inDim, outDim, bias, dtype, read) {
      if (outDim % NR !== 0 || NR % 8 !== 0) return packLinear16(arena, NR, inDim, outDim, bias, dtype, read);
      const expMask = dtype === "BF16" ? 0x7f80 : 0x7c00;
      return packLinear16(arena, NR, inDim, outDim, bias, dtype, read, (packed, rows, r0, r1) =>
        wasm.pack16(packed.byteOffset, rows.byteOffset, inDim, outDim, r0, r1, expMask) !== 0 ? countNonFinite16(rows, dtype) : 0);
    },

    countNonFinite: nonFiniteIn,

    linear(out, inp, w, rows, gelu, scratch, colStart, colEnd) {
      const { inDim, outDim } = w;
      if (!(0 <= colStart && colStart <= colEnd && colEnd <= outDim)) {
        throw new RangeError(`linear: columns [${colStart}, ${colEnd}) outside [0, ${outDim})`);
      }
      if (rows === 0 || colStart === colEnd) return;
      const panels = Math.ceil(outDim / NR);
      wasm.linear(ptr(out, "linear out", rows * outDim), ptr(inp, "linear inp", rows * inDim),
        ptr(w.packed, "linear packed weight", panels * inDim * NR), ptr(w.bias, "linear bias", outDim),
        inDim, outDim, WEIGHT_DTYPES.indexOf(w.dtype), rows, gelu ? 1 : 0,
        w.dtype === "F32" ? 0 : ptr(scratch ?? new Float32Array(0), "linear scratch (16-bit weights)", inDim * NR),
        colStart, colEnd);
    },

    layernorm(out, inp, weight, bias, rows, C, eps, rowStart, rowEnd) {
      if (rowEnd <= rowStart) return;
      if (rowEnd > rows) throw new RangeError(`layernorm: rows up to ${rowEnd}, only ${rows}`);
      wasm.layernorm(ptr(out, "layernorm out", rows * C), ptr(inp, "layernorm inp", rows * C),
        ptr(weight, "layernorm weight", C), ptr(bias, "layernorm bias", C), C, eps, rowStart, rowEnd);
    },

    attention(out, qkv, plan, nHead, C, scratch, itemStart, itemEnd) {
      if (itemEnd <= itemStart) return;
      if (C % nHead !== 0) throw new RangeError(`attention: C=${C} is not a multiple of nHead=${nHead}`);
      const { blocks, keyRows } = plan;
      if (itemEnd > (blocks.length / 5) * nHead) throw new RangeError(`attention: items up to ${itemEnd}, only ${blocks.length / 5}×${nHead}`);
      // wasm trusts the plan's rows: check, for the blocks of this range, that they stay in bounds.
      const rows = qkv.length / (3 * C);
      let maxKeys = 0;
      for (let b = Math.floor(itemStart / nHead); b <= Math.floor((itemEnd - 1) / nHead); b++) {
        const [qRow, count, outRow, keyStart, seen] = blocks.subarray(b * 5, b * 5 + 5);
        const keys = seen + count - 1;
        if (count < 1 || seen < 1 || qRow < 0 || qRow + count > rows || outRow < 0 || (outRow + count) * C > out.length || keyStart < 0 || keyStart + keys > keyRows.length) {
          throw new RangeError(`attention: block ${b} (${blocks.subarray(b * 5, b * 5 + 5).join(", ")}) is outside the buffers`);
        }
        for (let j = keyStart; j < keyStart + keys; j++) if (!(keyRows[j] >= 0 && keyRows[j] < rows)) throw new RangeError(`attention: key row ${keyRows[j]} outside [0, ${rows})`);
        maxKeys = Math.max(maxKeys, keys);
      }
      wasm.attention(ptr(out, "attention out", out.length), ptr(qkv, "attention qkv", qkv.length),
        ptr(blocks, "attention blocks", blocks.length), ptr(keyRows, "attention keyRows", keyRows.length), nHead, C,
        ptr(scratch, "attention scratch", maxKeys), itemStart, itemEnd);
    },

    residual(out, a, b, n, start, end) {
      if (end <= start) return;
      if (end > n) throw new RangeError(`residual: elements up to ${end}, only ${n}`);
      wasm.residual(ptr(out, "residual out", n), ptr(a, "residual a", n), ptr(b, "residual b", n), start, end);
    },

    gelu(out, inp, n) {
      wasm.gelu(ptr(out, "gelu out", n), ptr(inp, "gelu inp", n), n);
    },
  };
}
