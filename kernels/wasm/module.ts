/**
 * The GPT-2 kernels as one WebAssembly module, written with kernels/wasm/emit.ts at run time.
 *
 * Every pointer argument is a byte offset into the shared arena memory (kernels/arena.ts), every
 * count is in elements. The arithmetic of each output element never depends on which range
 * (columns, rows, items) a call covers, so any thread split gives the same bits:
 *   - linear: out[r, o] = (Σ_i inp[r, i]·W[i, o], in order of i, f32) + bias[o], then gelu_new;
 *     a column is computed by the same lane arithmetic in a full tile, a row tail or a column tail.
 *   - layernorm: a row's sums and its normalization in f64, rounded to f32 once at the store.
 *   - attention, residual: one call computes a whole work item / element.
 */
import {
  Func, Local, ModuleBuilder, call, f32, f32Lanes, f32x4, f32x4Const, f64, f64x2, forUp, i16x8, i32, i32x4,
  i32x4Const, if_, select, set, v128, type Expr,
} from "./emit.js";
import { LINEAR_SCRATCH_COLS } from "../contract.js";

export interface KernelModuleOptions {
  /** Output rows of the matmul register tile. */
  tileRows: number;
  /** Output columns of the register tile = width of a packed weight panel; a multiple of 4. */
  tileCols: number;
  /** Multiply-add with relaxed SIMD's f32x4.relaxed_madd (fused on FMA hardware). */
  fma: boolean;
}

/**
 * 4 rows × 8 columns: 8 f32x4 sums + 2 weight vectors + 1 broadcast input = 11 of the 16 xmm
 * registers V8 allocates on x64, so nothing spills; each weight vector loaded is used 4 times,
 * each input loaded 8 times. kernels/wasm/measure.ts on a 2-core Xeon (AVX-512 host), Node 20,
 * 256×768·768×2304: 4×8 31 GFLOPS, 2×16 30, 3×8 30, 4×12 26, 5×8 25, 3×16 24, 6×8 22, 8×4 22.
 * Unrolling the inner loop made it slower (4×8: ×2 24, ×4 22), so it is not done. The same tile with
 * relaxed-SIMD FMA (--experimental-wasm-relaxed-simd): 40–42.
 */
export const DEFAULT_OPTIONS: KernelModuleOptions = { tileRows: 4, tileCols: 8, fma: false };

const v4 = f32x4Const;
/** 1.5·2^23: a whole number |n| < 2^22 added to it lands, exactly, in its low mantissa bits. */
const MAGIC = 12582912;
const MAGIC_BITS = 0x4b400000;
const ZERO = v4(0);

export function buildKernelModule(o: KernelModuleOptions = DEFAULT_OPTIONS): Uint8Array<ArrayBuffer> {
  if (o.tileCols % 4 !== 0 || o.tileCols > LINEAR_SCRATCH_COLS || o.tileRows < 1) throw new Error(`bad tile ${o.tileRows}x${o.tileCols}`);
  const m = new ModuleBuilder();
  const exp4 = defineExp4(m);
  const gelu4 = defineGelu4(m, exp4);
  const tiles: Func[] = [];
  for (let mr = 1; mr <= o.tileRows; mr++) tiles.push(defineLinearTile(m, mr, o, gelu4));
  defineLinear(m, o, tiles, defineWiden(m));
  defineGelu(m, gelu4);
  defineLayernorm(m);
  defineAttention(m, exp4);
  defineResidual(m);
  definePack(m, o);
  definePack16(m, o);
  defineNonFinite(m);
  return m.bytes();
}

/** A SIMD module that only validates where SIMD128 (or, with `relaxed`, relaxed SIMD) is on. */
export function simdProbe(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder();
  const f = m.func("probe", [["x", "v128"]], ["v128"], true);
  const x = f.p("x");
  f.define(relaxed ? f32x4.relaxed_madd(x, x, x) : f32x4.add(x, x));
  return m.bytes();
}

// ---------------------------------------------------------------------------------------------
// exp and gelu_new

/**
 * e^x in each lane, within ~1 ulp for x in [−87.3, 88.3] (clamped outside, where the f32 result
 * would be 0 or ∞ anyway). Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, ln2 split into a short
 * head (n·LN2_HI is exact for |n| < 2^9) and a tail, e^r by its degree-7 minimax polynomial,
 * then 2^n built from exponent bits.
 *
 * Written for V8's x64 code, where this is the whole cost of a GELU (~60 cycles a vector): the
 * clamp uses pmax/pmin (one maxps/minps each) rather than max/min (about nine instructions each
 * for their NaN and ±0 rules), and n becomes an integer by adding 1.5·2^23 (n + 1.5·2^23 holds n
 * in its low mantissa bits) rather than trunc_sat (seven). Both give the same bits for every
 * number: the bounds are neither NaN nor zero, n is a whole number in [−126, 127], and a NaN
 * stays NaN (pmax/pmin return it, and it reaches the result through p).
 */
function defineExp4(m: ModuleBuilder): Func {
  const f = m.func("exp4", [["x", "v128"]], ["v128"]);
  const x = f.p("x");
  const n = f.local("v128", "n");
  const r = f.local("v128", "r");
  const p = f.local("v128", "p");
  const horner = (coeffs: number[]) => coeffs.slice(1).reduce<Expr>((acc, c) => f32x4.add(f32x4.mul(acc, r), v4(c)), v4(coeffs[0]));
  return f.define(
    // 2^n must stay a normal float: n ∈ [−126, 127].
    set(x, f32x4.pmin(f32x4.pmax(x, v4(-87.3)), v4(88.3))),
    set(n, f32x4.nearest(f32x4.mul(x, v4(Math.LOG2E)))),
    set(r, f32x4.sub(f32x4.sub(x, f32x4.mul(n, v4(0.693359375))), f32x4.mul(n, v4(-2.12194440e-4)))),
    set(p, horner([1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1])),
    // e^r = 1 + r + r²·p
    set(p, f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), v4(1))),
    // 2^n: the integer n + 127 in the float's exponent field; bits(n + 1.5·2^23) = bits(1.5·2^23) + n.
    f32x4.mul(p, i32x4.shl(i32x4.add(f32x4.add(n, v4(MAGIC)), i32x4Const(127 - MAGIC_BITS)), i32.const(23))),
  );
}

/**
 * gelu_new(x) = 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³), computed as x / (1 + e^(−2u)):
 * the same function (1 + tanh u = 2/(1 + e^(−2u))), but with no 1 − 2/(…) cancellation near
 * u = 0, and it saturates cleanly: x for large x, −0 for very negative x.
 */
function defineGelu4(m: ModuleBuilder, exp4: Func): Func {
  const f = m.func("gelu4", [["x", "v128"]], ["v128"]);
  const x = f.p("x");
  const inner = f32x4.add(x, f32x4.mul(v4(0.044715), f32x4.mul(f32x4.mul(x, x), x)));
  return f.define(f32x4.div(x, f32x4.add(v4(1), call(exp4, f32x4.mul(inner, v4(-2 * Math.sqrt(2 / Math.PI)))))));
}

/** out[i] = gelu_new(inp[i]), i < n. Not in the Kernels contract (linear fuses it); exported for tests. */
function defineGelu(m: ModuleBuilder, gelu4: Func): void {
  const f = m.func("gelu", [["out", "i32"], ["inp", "i32"], ["n", "i32"]], [], true);
  const [out, inp, n] = f.params;
  const i = f.local("i32", "i");
  const at = (base: Local) => i32.add(base, i32.shl(i, i32.const(2)));
  f.define(
    forUp(i, i32.const(0), i32.sub(n, i32.const(3)), 4, [v128.store(at(out), call(gelu4, v128.load(at(inp))))]),
    // The tail goes through the same lane arithmetic, one value at a time.
    forUp(i, i, n, 1, [f32.store(at(out), f32x4.extract_lane(call(gelu4, f32x4.splat(f32.load(at(inp)))), 0))]),
  );
}

// ---------------------------------------------------------------------------------------------
// linear: out = inp · W + b (+ gelu_new)

/**
 * One register tile: `mr` rows × tileCols columns of output, summed over the whole input dimension.
 * inp → inp[row0, 0], w → the panel (inDim, tileCols), bias → bias[col0], out → out[row0, col0];
 * stores tile columns [lo, hi) only (the edges of a column range), all of them when lo=0, hi=tileCols.
 *
 * Panel layout (packLinear): the tileCols weights of input index i are adjacent, so each step
 * loads tileCols/4 vectors in order, broadcasts one input per row, and does mr·tileCols/4
 * vector multiply-adds into sums that live in registers for the whole loop.
 */
function defineLinearTile(m: ModuleBuilder, mr: number, o: KernelModuleOptions, gelu4: Func): Func {
  const nv = o.tileCols / 4;
  const f = m.func(`linear_tile${mr}`, [
    ["out", "i32"], ["inp", "i32"], ["w", "i32"], ["bias", "i32"],
    ["inDim", "i32"], ["outDim", "i32"], ["lo", "i32"], ["hi", "i32"], ["gelu", "i32"],
  ]);
  const [out, inp, w, bias, inDim, outDim, lo, hi, gelu] = f.params;
  const k = f.local("i32", "k");
  const row = Array.from({ length: mr }, (_, r) => f.local("i32", `row${r}`)); // → inp[row0 + r, k]
  const acc = Array.from({ length: mr }, (_, r) => Array.from({ length: nv }, (_, v) => f.local("v128", `acc${r}_${v}`)));
  const wv = Array.from({ length: nv }, (_, v) => f.local("v128", `w${v}`));
  const x = f.local("v128", "x");
  const val = f.local("v128", "val");
  const outRow = f.local("i32", "outRow");
  const full = f.local("i32", "full");

  const madd = (a: Expr, b: Expr, c: Expr) => (o.fma ? f32x4.relaxed_madd(a, b, c) : f32x4.add(c, f32x4.mul(a, b)));
  // One step of the inner loop: the tile's weight vectors for input index k, times each row's input.
  const step: Expr[] = [
    ...wv.map((wvv, v) => set(wvv, v128.load(w, 4 * v * 4))),
    ...row.flatMap((rp, r) => [
      set(x, v128.load32_splat(rp, 0)),
      ...acc[r].map((a, v) => set(a, madd(x, wv[v], a))),
    ]),
    ...row.map((rp) => set(rp, i32.add(rp, i32.const(4)))),
    set(w, i32.add(w, i32.const(4 * o.tileCols))),
  ];

  const stores: Expr[] = [];
  for (let r = 0; r < mr; r++) {
    stores.push(set(outRow, i32.add(out, i32.shl(i32.mul(i32.const(r), outDim), i32.const(2)))));
    for (let v = 0; v < nv; v++) {
      const lanes: Expr[] = [0, 1, 2, 3].map((l) => {
        const col = 4 * v + l;
        return if_(i32.and(i32.le_s(lo, i32.const(col)), i32.gt_s(hi, i32.const(col))), [
          f32.store(outRow, f32x4.extract_lane(val, l), 4 * col),
        ]);
      });
      stores.push(
        set(val, f32x4.add(acc[r][v], v128.load(bias, 16 * v))),
        if_(gelu, [set(val, call(gelu4, val))]),
        if_(full, [v128.store(outRow, val, 16 * v)], lanes),
      );
    }
  }

  return f.define(
    ...row.map((rp, r) => set(rp, i32.add(inp, i32.shl(i32.mul(i32.const(r), inDim), i32.const(2))))),
    ...acc.flat().map((a) => set(a, ZERO)),
    forUp(k, i32.const(0), inDim, 1, step),
    set(full, i32.and(i32.eqz(lo), i32.eq(hi, i32.const(o.tileCols)))),
    ...stores,
  );
}

/**
 * widen(dst, src, n, dtype): n (a multiple of 4) 16-bit weights at src → F32 at dst, exactly;
 * dtype 1 = BF16 (the top half of an F32: a shift), 2 = F16. F16 by bits: the 15 magnitude bits
 * shifted into an F32's place are the value times 2^-112 (subnormals included), so one multiply
 * by 2^112 rebiases the exponent; an all-ones exponent (±Inf, NaN) becomes an F32 all-ones one.
 */
function defineWiden(m: ModuleBuilder): Func {
  const f = m.func("widen", [["dst", "i32"], ["src", "i32"], ["n", "i32"], ["dtype", "i32"]]);
  const [dst, src, n, dtype] = f.params;
  const i = f.local("i32", "i");
  const x = f.local("v128", "x");
  const mag = f.local("v128", "mag");
  const load4 = (): Expr => i32x4.extend_low_i16x8_u(v128.load64_zero(i32.add(src, i32.shl(i, i32.const(1)))));
  const at = i32.add(dst, i32.shl(i, i32.const(2)));
  f.define(
    if_(i32.eq(dtype, i32.const(1)), [
      forUp(i, i32.const(0), n, 4, [v128.store(at, i32x4.shl(load4(), i32.const(16)))]),
    ], [
      forUp(i, i32.const(0), n, 4, [
        set(x, load4()),
        set(mag, i32x4.shl(v128.and(x, i32x4Const(0x7fff)), i32.const(13))),
        v128.store(at, v128.or(
          v128.bitselect(
            v128.or(mag, i32x4Const(0x7f800000)),
            f32x4.mul(mag, v4(2 ** 112)),
            i32x4.eq(v128.and(x, i32x4Const(0x7c00)), i32x4Const(0x7c00))),
          i32x4.shl(v128.and(x, i32x4Const(0x8000)), i32.const(16)))),
      ]),
    ]),
  );
  return f;
}

/**
 * linear(out, inp, w, bias, inDim, outDim, dtype, rows, gelu, scratch, colStart, colEnd), the
 * contract's arguments with the PackedLinear spelled out in place: out (rows, outDim), inp (rows, inDim), w packed (⌈outDim/tileCols⌉, inDim, tileCols), bias
 * padded to a whole panel. Panel-major: one panel (768·8 floats = 24 KiB for GPT-2's 768 inputs)
 * stays in L1 while every row tile streams past it. dtype (an index of kernels/half.ts's
 * WEIGHT_DTYPES): 0 = F32 weights; 1 (BF16), 2 (F16): each panel is first widened into `scratch`
 * (inDim·tileCols floats) and the tiles read that.
 */
function defineLinear(m: ModuleBuilder, o: KernelModuleOptions, tiles: Func[], widen: Func): void {
  const NR = o.tileCols;
  const MR = o.tileRows;
  const f = m.func("linear", [
    ["out", "i32"], ["inp", "i32"], ["w", "i32"], ["bias", "i32"], ["inDim", "i32"], ["outDim", "i32"],
    ["dtype", "i32"], ["rows", "i32"], ["gelu", "i32"], ["scratch", "i32"], ["colStart", "i32"], ["colEnd", "i32"],
  ], [], true);
  const [out, inp, w, bias, inDim, outDim, dtype, rows, gelu, scratch, colStart, colEnd] = f.params;
  const p = f.local("i32", "panel");
  const c0 = f.local("i32", "c0");
  const lo = f.local("i32", "lo");
  const hi = f.local("i32", "hi");
  const wp = f.local("i32", "wp");
  const r = f.local("i32", "r");
  const byteAt = (base: Expr, elems: Expr) => i32.add(base, i32.shl(elems, i32.const(2)));
  const tile = (fn: Func) =>
    call(fn, byteAt(out, i32.add(i32.mul(r, outDim), c0)), byteAt(inp, i32.mul(r, inDim)), wp, byteAt(bias, c0),
      inDim, outDim, lo, hi, gelu);
  f.define(
    forUp(p, i32.div_s(colStart, i32.const(NR)), i32.div_s(i32.add(colEnd, i32.const(NR - 1)), i32.const(NR)), 1, [
      set(c0, i32.mul(p, i32.const(NR))),
      set(lo, i32.sub(colStart, c0)),
      set(lo, select(lo, i32.const(0), i32.gt_s(lo, i32.const(0)))),
      set(hi, i32.sub(colEnd, c0)),
      set(hi, select(hi, i32.const(NR), i32.lt_s(hi, i32.const(NR)))),
      if_(dtype, [
        call(widen, scratch, i32.add(w, i32.shl(i32.mul(p, i32.mul(inDim, i32.const(NR))), i32.const(1))), i32.mul(inDim, i32.const(NR)), dtype),
        set(wp, scratch),
      ], [set(wp, byteAt(w, i32.mul(p, i32.mul(inDim, i32.const(NR)))))]),
      forUp(r, i32.const(0), i32.sub(rows, i32.const(MR - 1)), MR, [tile(tiles[MR - 1])]),
      // rows % MR left over: the smaller tile of the same shape
      ...tiles.slice(0, MR - 1).map((fn, i) => if_(i32.eq(i32.sub(rows, r), i32.const(i + 1)), [tile(fn)])),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// layernorm

/**
 * layernorm(out, inp, weight, bias, C, eps, rowStart, rowEnd): out, inp (rows, C); weight, bias (C).
 * (The contract's arguments less `rows`, which only the TypeScript side needs, to check sizes.)
 * Two f64x2 lanes at a time, in double precision like the TypeScript kernel: GPT-2's residual
 * stream has a few channels in the hundreds, and f32 sums would cost digits of the variance.
 * It is a small share of the forward pass, so the halved SIMD width does not matter.
 */
function defineLayernorm(m: ModuleBuilder): void {
  const f = m.func("layernorm", [
    ["out", "i32"], ["inp", "i32"], ["weight", "i32"], ["bias", "i32"],
    ["C", "i32"], ["eps", "f64"], ["rowStart", "i32"], ["rowEnd", "i32"],
  ], [], true);
  const [out, inp, weight, bias, C, eps, rowStart, rowEnd] = f.params;
  const r = f.local("i32", "r");
  const c = f.local("i32", "c");
  const x = f.local("i32", "x");
  const y = f.local("i32", "y");
  const acc = f.local("v128", "acc");
  const mean = f.local("f64", "mean");
  const sum = f.local("f64", "sum");
  const rstd = f.local("f64", "rstd");
  const two = (base: Expr) => f64x2.promote_low_f32x4(v128.load64_zero(i32.add(base, i32.shl(c, i32.const(2)))));
  const one = (base: Expr) => f64.promote_f32(f32.load(i32.add(base, i32.shl(c, i32.const(2)))));
  const hsum = (v: Expr) => f64.add(f64x2.extract_lane(v, 0), f64x2.extract_lane(v, 1));
  // Σ over the row of term(two values) in f64x2, plus the odd last element.
  const rowSum = (pair: (at: Expr) => Expr, single: (at: Expr) => Expr): Expr[] => [
    set(acc, f64x2.splat(f64.const(0))),
    forUp(c, i32.const(0), i32.sub(C, i32.const(1)), 2, [set(acc, f64x2.add(acc, pair(x)))]),
    set(sum, hsum(acc)),
    forUp(c, c, C, 1, [set(sum, f64.add(sum, single(x)))]),
  ];
  const sq2 = (v: Expr) => f64x2.mul(v, v);
  const C64 = f64.convert_i32_s(C);
  f.define(
    forUp(r, rowStart, rowEnd, 1, [
      set(x, i32.add(inp, i32.shl(i32.mul(r, C), i32.const(2)))),
      set(y, i32.add(out, i32.shl(i32.mul(r, C), i32.const(2)))),
      ...rowSum(two, one),
      set(mean, f64.div(sum, C64)),
      // Subtract the mean before squaring: E[x²] − E[x]² cancels badly on large means.
      ...rowSum((at) => sq2(f64x2.sub(two(at), f64x2.splat(mean))), (at) => {
        const d = f64.sub(one(at), mean);
        return f64.mul(d, d);
      }),
      set(rstd, f64.div(f64.const(1), f64.sqrt(f64.add(f64.div(sum, C64), eps)))),
      // out = (x − mean)·rstd·weight + bias, rounded to f32 once.
      forUp(c, i32.const(0), i32.sub(C, i32.const(1)), 2, [
        v128.store64_lane0(i32.add(y, i32.shl(c, i32.const(2))), f32x4.demote_f64x2_zero(
          f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(two(x), f64x2.splat(mean)), f64x2.splat(rstd)), two(weight)), two(bias)),
        )),
      ]),
      forUp(c, c, C, 1, [
        f32.store(i32.add(y, i32.shl(c, i32.const(2))), f32.demote_f64(
          f64.add(f64.mul(f64.mul(f64.sub(one(x), mean), rstd), one(weight)), one(bias)),
        )),
      ]),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// attention

/**
 * attention(out, qkv, blocks, keyRows, nHead, C, scratch, itemStart, itemEnd): see
 * kernels/contract.ts (AttentionPlan) and kernels/attention.ts. qkv (R, 3C), blocks int32 (B, 5),
 * keyRows int32, scratch ≥ the most keys a query sees, in floats. For query i of a (block, head)
 * item: scores against the `seen + i` keys it sees, each key's row looked up in keyRows (never a
 * later or another text's token), softmax, then out = Σ_j p_j·v_j. Head dim D = C/nHead; any D
 * works, the D mod 4 tail in scalar code.
 */
function defineAttention(m: ModuleBuilder, exp4: Func): void {
  const f = m.func("attention", [
    ["out", "i32"], ["qkv", "i32"], ["blocks", "i32"], ["keyRows", "i32"], ["nHead", "i32"], ["C", "i32"],
    ["scratch", "i32"], ["itemStart", "i32"], ["itemEnd", "i32"],
  ], [], true);
  const [out, qkv, blocks, keyRows, nHead, C, scratch, itemStart, itemEnd] = f.params;
  const L = (t: "i32" | "f32" | "v128", n: string) => f.local(t, n);
  const [item, block, h, count, seen, D, D4, rowBytes] = ["item", "block", "h", "count", "seen", "D", "D4", "rowBytes"].map((n) => L("i32", n));
  const [qBase, kHead, vHead, oBase, kr, i, n, q, j, d, kp, vp, sp, o] =
    ["qBase", "kHead", "vHead", "oBase", "kr", "i", "n", "q", "j", "d", "kp", "vp", "sp", "o"].map((nm) => L("i32", nm));
  const scale = L("f32", "scale");
  const max = L("f32", "max");
  const total = L("f32", "total");
  const inv = L("f32", "inv");
  const e = L("v128", "e");
  const vsum = L("v128", "vsum");
  const acc = [0, 1, 2, 3, 4, 5, 6, 7].map((a) => L("v128", `acc${a}`));
  const tail = [0, 1, 2, 3].map((a) => L("f32", `tail${a}`));
  const keys = [kp, L("i32", "kp1"), L("i32", "kp2"), L("i32", "kp3")]; // → k of keys j..j+3
  const at = (base: Expr, idx: Expr) => i32.add(base, i32.shl(idx, i32.const(2)));
  /** The address of key j's row plus `head` (kHead or vHead): keyRows[keyStart + j] looked up. */
  const keyRow = (head: Expr, jx: Expr, offset = 0) => i32.add(head, i32.mul(i32.load(at(kr, jx), offset), rowBytes));

  /**
   * Scores of keys j..j+nk−1 (nk = 4 or 1) into scratch[j..]: nk independent dot products, so
   * the adds of one key do not wait on another's. Each score is ((a0+a2)+(a1+a3)) + tail, with
   * a the key's f32x4 partial sums; the 4-key version gets all four with two transposing shuffles,
   * the 1-key version by lanes, in the same order.
   */
  const scores = (nk: number): Expr[] => {
    const key = (x: number) => keys[x];
    const body: Expr[] = [
      ...keys.slice(0, nk).map((kx, x) => set(kx, keyRow(kHead, j, 4 * x))),
      ...acc.slice(0, nk).map((a) => set(a, ZERO)),
      forUp(d, i32.const(0), D4, 4, [
        set(e, v128.load(at(q, d))),
        ...acc.slice(0, nk).map((a, x) => set(a, f32x4.add(a, f32x4.mul(e, v128.load(at(key(x), d)))))),
      ]),
      ...tail.slice(0, nk).map((t) => set(t, f32.const(0))),
      forUp(d, D4, D, 1, tail.slice(0, nk).map((t, x) => set(t, f32.add(t, f32.mul(f32.load(at(q, d)), f32.load(at(key(x), d))))))),
    ];
    if (nk === 4) {
      const [a, b, c, dd] = acc;
      // (a0+a2, b0+b2, a1+a3, b1+b3) and the same for c, d; then pair them up: lane x = key x.
      const ab = f32x4.add(v128.shuffle(a, b, f32Lanes(0, 4, 1, 5)), v128.shuffle(a, b, f32Lanes(2, 6, 3, 7)));
      const cd = f32x4.add(v128.shuffle(c, dd, f32Lanes(0, 4, 1, 5)), v128.shuffle(c, dd, f32Lanes(2, 6, 3, 7)));
      body.push(set(a, ab), set(b, cd));
      const sums = f32x4.add(v128.shuffle(a, b, f32Lanes(0, 1, 4, 5)), v128.shuffle(a, b, f32Lanes(2, 3, 6, 7)));
      const tails = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(tail[0]), 1, tail[1]), 2, tail[2]), 3, tail[3]);
      body.push(v128.store(at(scratch, j), f32x4.mul(f32x4.add(sums, tails), f32x4.splat(scale))));
    } else {
      const lane = (l: number) => f32x4.extract_lane(acc[0], l);
      const dot = f32.add(f32.add(f32.add(lane(0), lane(2)), f32.add(lane(1), lane(3))), tail[0]);
      body.push(f32.store(at(scratch, j), f32.mul(dot, scale)));
    }
    return body;
  };

  /**
   * out[i, d .. d+4·nv) = inv · Σ_j e_j·v_j[d ..]: nv vector sums in registers while j walks down
   * the value rows (one load of e_j, broadcast, per nv vectors).
   */
  const weighted = (nv: number): Expr[] => [
    ...acc.slice(0, nv).map((a) => set(a, ZERO)),
    set(sp, at(vHead, d)), // value row + d, before the row's offset
    forUp(j, i32.const(0), n, 1, [
      set(e, v128.load32_splat(at(scratch, j))),
      set(vp, keyRow(sp, j)),
      ...acc.slice(0, nv).map((a, x) => set(a, f32x4.add(a, f32x4.mul(e, v128.load(vp, 16 * x))))),
    ]),
    ...acc.slice(0, nv).map((a, x) => v128.store(at(o, d), f32x4.mul(a, f32x4.splat(inv)), 16 * x)),
  ];

  f.define(
    set(D, i32.div_s(C, nHead)),
    set(D4, i32.and(D, i32.const(~3))),
    set(rowBytes, i32.mul(C, i32.const(12))), // one token's q|k|v row: 3C floats
    set(scale, f32.demote_f64(f64.div(f64.const(1), f64.sqrt(f64.convert_i32_s(D))))),
    forUp(item, itemStart, itemEnd, 1, [
      set(block, i32.div_s(item, nHead)),
      set(h, i32.sub(item, i32.mul(block, nHead))),
      set(sp, at(blocks, i32.mul(block, i32.const(5)))), // qRow, count, outRow, keyStart, seen
      set(qBase, at(qkv, i32.add(i32.mul(i32.load(sp), i32.mul(C, i32.const(3))), i32.mul(h, D)))),
      set(count, i32.load(sp, 4)),
      set(oBase, at(out, i32.add(i32.mul(i32.load(sp, 8), C), i32.mul(h, D)))),
      set(kr, at(keyRows, i32.load(sp, 12))),
      set(seen, i32.load(sp, 16)),
      set(kHead, at(qkv, i32.add(C, i32.mul(h, D)))),
      set(vHead, at(kHead, C)),
      forUp(i, i32.const(0), count, 1, [
        set(n, i32.add(seen, i)), // query i sees keys 0..n−1 of the block's list
        set(q, i32.add(qBase, i32.mul(i, rowBytes))),
        set(o, at(oBase, i32.mul(i, C))),
        forUp(j, i32.const(0), i32.sub(n, i32.const(3)), 4, scores(4)),
        forUp(j, j, n, 1, scores(1)),

        // softmax numerators e_j = exp(score_j − max) in place, and their total
        set(vsum, f32x4Const(-Infinity)),
        forUp(j, i32.const(0), i32.sub(n, i32.const(3)), 4, [set(vsum, f32x4.max(vsum, v128.load(at(scratch, j))))]),
        set(max, f32.max(f32.max(f32x4.extract_lane(vsum, 0), f32x4.extract_lane(vsum, 1)),
          f32.max(f32x4.extract_lane(vsum, 2), f32x4.extract_lane(vsum, 3)))),
        forUp(j, j, n, 1, [set(max, f32.max(max, f32.load(at(scratch, j))))]),
        set(vsum, ZERO),
        forUp(j, i32.const(0), i32.sub(n, i32.const(3)), 4, [
          set(sp, at(scratch, j)),
          set(e, call(exp4, f32x4.sub(v128.load(sp), f32x4.splat(max)))),
          v128.store(sp, e),
          set(vsum, f32x4.add(vsum, e)),
        ]),
        set(total, f32.add(f32.add(f32x4.extract_lane(vsum, 0), f32x4.extract_lane(vsum, 2)),
          f32.add(f32x4.extract_lane(vsum, 1), f32x4.extract_lane(vsum, 3)))),
        forUp(j, j, n, 1, [
          set(sp, at(scratch, j)),
          set(e, call(exp4, f32x4.splat(f32.sub(f32.load(sp), max)))),
          f32.store(sp, f32x4.extract_lane(e, 0)),
          set(total, f32.add(total, f32x4.extract_lane(e, 0))),
        ]),
        set(inv, f32.div(f32.const(1), total)),

        // out = inv · Σ_j e_j·v_j: 32 dims at a time (8 sums, one broadcast, one load: 10 registers),
        // then 4, then single dims. 8 sums rather than 4 halve the passes over the value rows.
        forUp(d, i32.const(0), i32.sub(D, i32.const(31)), 32, weighted(8)),
        forUp(d, d, i32.sub(D, i32.const(3)), 4, weighted(1)),
        forUp(d, d, D, 1, [
          set(tail[0], f32.const(0)),
          set(sp, at(vHead, d)),
          forUp(j, i32.const(0), n, 1, [
            set(tail[0], f32.add(tail[0], f32.mul(f32.load(at(scratch, j)), f32.load(keyRow(sp, j))))),
          ]),
          f32.store(at(o, d), f32.mul(tail[0], inv)),
        ]),
      ]),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// residual

/** residual(out, a, b, start, end): out[i] = a[i] + b[i] for i in [start, end); out may alias a or b (the contract's `n` is checked in TypeScript). */
function defineResidual(m: ModuleBuilder): void {
  const f = m.func("residual", [["out", "i32"], ["a", "i32"], ["b", "i32"], ["start", "i32"], ["end", "i32"]], [], true);
  const [out, a, b, start, end] = f.params;
  const i = f.local("i32", "i");
  const at = (base: Local) => i32.add(base, i32.shl(i, i32.const(2)));
  f.define(
    forUp(i, start, i32.sub(end, i32.const(3)), 4, [v128.store(at(out), f32x4.add(v128.load(at(a)), v128.load(at(b))))]),
    forUp(i, i, end, 1, [f32.store(at(out), f32.add(f32.load(at(a)), f32.load(at(b))))]),
  );
}


// ---------------------------------------------------------------------------------------------
// load: packing and the NaN/Inf check (once per weight, 124M floats for GPT-2 base)

/**
 * kernels/finite.ts's flag on four lanes: (bits & exponent) + 2^23 has its sign bit set exactly
 * when the exponent is all ones (NaN or ±Inf). OR-ed over many vectors, the sign bits answer
 * "any?" with no compare and branch per value.
 */
const nonFiniteLanes = (v: Expr): number[] => i32x4.add(v128.and(v, i32x4Const(0x7f800000)), i32x4Const(0x00800000));

/** Rows of the weight packed together, as kernels/matmul.ts: 16 rows of 3072 floats stay in L2. */
const PACK_ROWS = 16;

/**
 * pack(dst, src, inDim, outDim, rowStart, rowEnd) → i32: rows [rowStart, rowEnd) of the weight
 * (inDim, outDim), whose row rowStart is at src, into their places in the panels
 * (outDim/NR, inDim, NR) at dst, for outDim a multiple of NR (every GPT-2 shape; the backend packs
 * any other in TypeScript); nonzero if any of them is NaN or ±Inf. The moves of kernels/matmul.ts's
 * packMatmulWeight, NR/4 vectors per row of a panel instead of one float at a time.
 */
function definePack(m: ModuleBuilder, o: KernelModuleOptions): void {
  const NR = o.tileCols;
  const f = m.func("pack", [["dst", "i32"], ["src", "i32"], ["inDim", "i32"], ["outDim", "i32"], ["rowStart", "i32"], ["rowEnd", "i32"]], ["i32"], true);
  const [dst, src, inDim, outDim, rowStart, rowEnd] = f.params;
  const i0 = f.local("i32", "i0");
  const i1 = f.local("i32", "i1");
  const c = f.local("i32", "c");
  const i = f.local("i32", "i");
  const s = f.local("i32", "s");
  const t = f.local("i32", "t");
  const v = f.local("v128", "v");
  const flags = f.local("v128", "flags");
  f.define(
    set(flags, i32x4Const(0)),
    ...panelMoves({ dst, src, inDim, outDim, rowStart, rowEnd, i0, i1, c, i, s, t, v, flags }, NR, 4, (x) => nonFiniteLanes(x)),
    i32x4.bitmask(flags),
  );
}

/**
 * The moves pack and pack16 share: PACK_ROWS rows at a time (each panel takes its slice of rows
 * still in cache, and writes in order), weight[i0, c] → panel c/NR, row i0 at dst + (c·inDim + i0·NR)
 * elements of elemBytes bytes; every vector moved is OR-ed into `flags` through `nonFinite`.
 */
function panelMoves(
  l: Record<"dst" | "src" | "inDim" | "outDim" | "rowStart" | "rowEnd" | "i0" | "i1" | "c" | "i" | "s" | "t" | "v" | "flags", Local>,
  NR: number, elemBytes: 2 | 4, nonFinite: (v: Local) => Expr,
): Expr[] {
  const { dst, src, inDim, outDim, rowStart, rowEnd, i0, i1, c, i, s, t, v, flags } = l;
  // Counters are element counts (signed compares); addresses are computed from them and may pass 2 GiB.
  const bytesOf = (elems: Expr) => i32.shl(elems, i32.const(elemBytes === 4 ? 2 : 1));
  return [
    forUp(i0, rowStart, rowEnd, PACK_ROWS, [
      set(i1, i32.add(i0, i32.const(PACK_ROWS))),
      set(i1, select(i1, rowEnd, i32.lt_s(i1, rowEnd))),
      forUp(c, i32.const(0), outDim, NR, [
        set(s, i32.add(src, bytesOf(i32.add(i32.mul(i32.sub(i0, rowStart), outDim), c)))),
        set(t, i32.add(dst, bytesOf(i32.add(i32.mul(c, inDim), i32.mul(i0, i32.const(NR)))))),
        forUp(i, i0, i1, 1, [
          ...Array.from({ length: (NR * elemBytes) / 16 }, (_, q) => [
            set(v, v128.load(s, 16 * q)),
            v128.store(t, v, 16 * q),
            set(flags, v128.or(flags, nonFinite(v))),
          ]).flat(),
          set(s, i32.add(s, bytesOf(outDim))),
          set(t, i32.add(t, i32.const(elemBytes * NR))),
        ]),
      ]),
    ]),
  ];
}

/**
 * pack16(dst, src, inDim, outDim, rowStart, rowEnd, expMask) → i32: pack's moves for a weight that
 * stays 16-bit (F16 or BF16, `--dtype`): NR values of a panel row are NR/8 vectors. Nonzero if any
 * value has every bit of expMask (the dtype's exponent: 0x7c00 F16, 0x7f80 BF16) set, i.e. is NaN
 * or ±Inf: (v & expMask) + its lowest bit carries into the lane's sign bit exactly then.
 * Only for NR a multiple of 8 (the backend packs other tiles in TypeScript).
 */
function definePack16(m: ModuleBuilder, o: KernelModuleOptions): void {
  const NR = o.tileCols;
  const f = m.func("pack16", [["dst", "i32"], ["src", "i32"], ["inDim", "i32"], ["outDim", "i32"], ["rowStart", "i32"], ["rowEnd", "i32"],
    ["expMask", "i32"]], ["i32"], true);
  const [dst, src, inDim, outDim, rowStart, rowEnd, expMask] = f.params;
  const [i0, i1, c, i, s, t] = ["i0", "i1", "c", "i", "s", "t"].map((n) => f.local("i32", n));
  const v = f.local("v128", "v");
  const flags = f.local("v128", "flags");
  const mask = f.local("v128", "mask");
  const low = f.local("v128", "low");
  f.define(
    set(flags, i32x4Const(0)),
    set(mask, i16x8.splat(expMask)),
    set(low, i16x8.splat(i32.and(expMask, i32.sub(i32.const(0), expMask)))),
    ...panelMoves({ dst, src, inDim, outDim, rowStart, rowEnd, i0, i1, c, i, s, t, v, flags }, NR, 2, (x) => i16x8.add(v128.and(x, mask), low)),
    i16x8.bitmask(flags),
  );
}

/** nonfinite(x, n) → i32: nonzero if any of the n floats at x is NaN or ±Inf. */
function defineNonFinite(m: ModuleBuilder): void {
  const f = m.func("nonfinite", [["x", "i32"], ["n", "i32"]], ["i32"], true);
  const [x, n] = f.params;
  const i = f.local("i32", "i");
  const flags = f.local("v128", "flags");
  const tail = f.local("i32", "tail");
  const at = i32.add(x, i32.shl(i, i32.const(2)));
  f.define(
    set(flags, i32x4Const(0)),
    set(tail, i32.const(0)),
    forUp(i, i32.const(0), i32.sub(n, i32.const(3)), 4, [set(flags, v128.or(flags, nonFiniteLanes(v128.load(at))))]),
    forUp(i, i, n, 1, [
      set(tail, i32.or(tail, i32.add(i32.and(i32.load(at), i32.const(0x7f800000)), i32.const(0x00800000)))),
    ]),
    i32.or(i32x4.bitmask(flags), i32.lt_s(tail, i32.const(0))),
  );
}
