/**
 * A tiny WebAssembly binary emitter: just enough of the format to write our kernels at run time.
 *
 * An expression is the bytes that leave its value on the wasm stack, so `f32x4.add(a, b)` is
 * a's bytes, b's bytes, then the add opcode; a statement is the same with nothing left. Nesting
 * the helpers therefore reads like the arithmetic (`set(acc, f32x4.add(acc, f32x4.mul(a, w)))`),
 * and the stack machine falls out of the evaluation order. Loops come from `forUp`, which never
 * needs a branch label from its body, so nothing here tracks block depths.
 *
 * Format reference: the WebAssembly core spec, binary format chapter (sections, LEB128,
 * instruction encodings) and the SIMD128 / relaxed-SIMD proposals (0xFD-prefixed opcodes).
 */

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";
const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** A local variable or parameter of the function being built. Usable wherever an expression is. */
export class Local {
  constructor(readonly index: number, readonly type: ValType, readonly name: string) {}
}

/** Bytes that push one value (an expression) or nothing (a statement); or a local, read by `local.get`. */
export type Expr = number[] | Local;

// ---------------------------------------------------------------------------------------------
// Encodings

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n = Math.floor(n / 128); // arithmetic shift, also for negatives
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function f32Bytes(x: number): number[] {
  return [...new Uint8Array(new Float32Array([x]).buffer)];
}

function f64Bytes(x: number): number[] {
  return [...new Uint8Array(new Float64Array([x]).buffer)];
}

function name(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

/** A length-prefixed vector of already-encoded items. */
function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function bytes(e: Expr): number[] {
  return e instanceof Local ? [0x20, ...uleb(e.index)] : e;
}

/** Concatenates expressions and statements into one instruction sequence. */
export function seq(...parts: Expr[]): number[] {
  return parts.flatMap(bytes);
}

/** memarg: log2 of the natural alignment (a hint, never trapped on) and a constant byte offset. */
function memarg(alignLog2: number, offset: number): number[] {
  return [...uleb(alignLog2), ...uleb(offset)];
}

const simd = (op: number, ...args: Expr[]): number[] => [...seq(...args), 0xfd, ...uleb(op)];
const op = (code: number, ...args: Expr[]): number[] => [...seq(...args), code];

// ---------------------------------------------------------------------------------------------
// Variables and control flow

export const get = (l: Local): number[] => bytes(l);
export const set = (l: Local, value: Expr): number[] => [...bytes(value), 0x21, ...uleb(l.index)];
export const tee = (l: Local, value: Expr): number[] => [...bytes(value), 0x22, ...uleb(l.index)];
export const drop = (value: Expr): number[] => op(0x1a, value);
/** `cond ? a : b` without branching (both sides are evaluated). */
export const select = (a: Expr, b: Expr, cond: Expr): number[] => op(0x1b, a, b, cond);
export const call = (fn: Func, ...args: Expr[]): number[] => [...seq(...args), 0x10, ...uleb(fn.index)];
export const ret = (...values: Expr[]): number[] => op(0x0f, ...values);

const EMPTY_BLOCK = 0x40;

export function if_(cond: Expr, then: Expr[], otherwise: Expr[] = []): number[] {
  const out = [...bytes(cond), 0x04, EMPTY_BLOCK, ...seq(...then)];
  if (otherwise.length > 0) out.push(0x05, ...seq(...otherwise));
  out.push(0x0b);
  return out;
}

/**
 * for (i = start; i < end; i += step) body — as `if (i < end) do { body; i += step } while (i < end)`,
 * the shape compilers give loops: one compare-and-branch per iteration. Signed compare: loop
 * counters here are element counts, never byte addresses.
 */
export function forUp(i: Local, start: Expr, end: Expr, step: number, body: Expr[]): number[] {
  return [
    ...set(i, start),
    ...if_(i32.lt_s(i, end), [
      [0x03, EMPTY_BLOCK], // loop
      ...body,
      set(i, i32.add(i, i32.const(step))),
      i32.lt_s(i, end), [0x0d, 0], // br_if 0: back to the loop head
      [0x0b], // end loop
    ]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Scalar instructions (addresses are byte offsets into the one imported memory)

export const i32 = {
  const: (n: number): number[] => [0x41, ...sleb(n | 0)],
  add: (a: Expr, b: Expr) => op(0x6a, a, b),
  sub: (a: Expr, b: Expr) => op(0x6b, a, b),
  mul: (a: Expr, b: Expr) => op(0x6c, a, b),
  div_s: (a: Expr, b: Expr) => op(0x6d, a, b),
  and: (a: Expr, b: Expr) => op(0x71, a, b),
  or: (a: Expr, b: Expr) => op(0x72, a, b),
  shl: (a: Expr, b: Expr) => op(0x74, a, b),
  eqz: (a: Expr) => op(0x45, a),
  eq: (a: Expr, b: Expr) => op(0x46, a, b),
  ne: (a: Expr, b: Expr) => op(0x47, a, b),
  lt_s: (a: Expr, b: Expr) => op(0x48, a, b),
  gt_s: (a: Expr, b: Expr) => op(0x4a, a, b),
  le_s: (a: Expr, b: Expr) => op(0x4c, a, b),
  ge_s: (a: Expr, b: Expr) => op(0x4e, a, b),
  load: (addr: Expr, offset = 0) => [...bytes(addr), 0x28, ...memarg(2, offset)],
};

export const f32 = {
  const: (x: number): number[] => [0x43, ...f32Bytes(x)],
  add: (a: Expr, b: Expr) => op(0x92, a, b),
  sub: (a: Expr, b: Expr) => op(0x93, a, b),
  mul: (a: Expr, b: Expr) => op(0x94, a, b),
  div: (a: Expr, b: Expr) => op(0x95, a, b),
  max: (a: Expr, b: Expr) => op(0x97, a, b),
  sqrt: (a: Expr) => op(0x91, a),
  gt: (a: Expr, b: Expr) => op(0x5e, a, b),
  demote_f64: (a: Expr) => op(0xb6, a),
  convert_i32_s: (a: Expr) => op(0xb2, a),
  load: (addr: Expr, offset = 0) => [...bytes(addr), 0x2a, ...memarg(2, offset)],
  store: (addr: Expr, value: Expr, offset = 0) => [...seq(addr, value), 0x38, ...memarg(2, offset)],
};

export const f64 = {
  const: (x: number): number[] => [0x44, ...f64Bytes(x)],
  add: (a: Expr, b: Expr) => op(0xa0, a, b),
  sub: (a: Expr, b: Expr) => op(0xa1, a, b),
  mul: (a: Expr, b: Expr) => op(0xa2, a, b),
  div: (a: Expr, b: Expr) => op(0xa3, a, b),
  sqrt: (a: Expr) => op(0x9f, a),
  promote_f32: (a: Expr) => op(0xbb, a),
  convert_i32_s: (a: Expr) => op(0xb7, a),
};

// ---------------------------------------------------------------------------------------------
// SIMD128 (prefix 0xFD, opcode as unsigned LEB128)

export const v128 = {
  load: (addr: Expr, offset = 0) => [...bytes(addr), 0xfd, ...uleb(0x00), ...memarg(4, offset)],
  /** Loads one f32 and copies it into all four lanes (the "broadcast" of a matmul). */
  load32_splat: (addr: Expr, offset = 0) => [...bytes(addr), 0xfd, ...uleb(0x09), ...memarg(2, offset)],
  /** Loads two f32 into the low half, zeroes the high half. */
  load64_zero: (addr: Expr, offset = 0) => [...bytes(addr), 0xfd, ...uleb(0x5d), ...memarg(3, offset)],
  store: (addr: Expr, value: Expr, offset = 0) => [...seq(addr, value), 0xfd, ...uleb(0x0b), ...memarg(4, offset)],
  /** Stores the low 64 bits (two f32 lanes). */
  store64_lane0: (addr: Expr, value: Expr, offset = 0) =>
    [...seq(addr, value), 0xfd, ...uleb(0x5b), ...memarg(3, offset), 0],
  and: (a: Expr, b: Expr) => simd(0x4e, a, b),
  or: (a: Expr, b: Expr) => simd(0x50, a, b),
  bitselect: (a: Expr, b: Expr, mask: Expr) => simd(0x52, a, b, mask),
  /** Picks 16 bytes out of a‖b by index (0–15 from a, 16–31 from b). */
  shuffle: (a: Expr, b: Expr, lanes: number[]) => [...seq(a, b), 0xfd, ...uleb(0x0d), ...lanes],
};

/** i8x16.shuffle indices for a shuffle given in f32 lanes (0–3 from a, 4–7 from b). */
export function f32Lanes(...lanes: number[]): number[] {
  return lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);
}

export const i16x8 = {
  splat: (a: Expr) => simd(0x10, a),
  add: (a: Expr, b: Expr) => simd(0x8e, a, b),
  /** The eight lanes' sign bits as an i32 (bit l = lane l). */
  bitmask: (a: Expr) => simd(0x84, a),
};

export const i32x4 = {
  splat: (a: Expr) => simd(0x11, a),
  add: (a: Expr, b: Expr) => simd(0xae, a, b),
  shl: (a: Expr, b: Expr) => simd(0xab, a, b),
  eq: (a: Expr, b: Expr) => simd(0x37, a, b),
  /** The low four u16 lanes of an i16x8, zero-extended. */
  extend_low_i16x8_u: (a: Expr) => simd(0xa9, a),
  /** The four lanes' sign bits as an i32 (bit l = lane l). */
  bitmask: (a: Expr) => simd(0xa4, a),
  trunc_sat_f32x4_s: (a: Expr) => simd(0xf8, a),
};

export const f32x4 = {
  splat: (a: Expr) => simd(0x13, a),
  extract_lane: (a: Expr, lane: number) => [...bytes(a), 0xfd, ...uleb(0x1f), lane],
  replace_lane: (a: Expr, lane: number, x: Expr) => [...seq(a, x), 0xfd, ...uleb(0x20), lane],
  add: (a: Expr, b: Expr) => simd(0xe4, a, b),
  sub: (a: Expr, b: Expr) => simd(0xe5, a, b),
  mul: (a: Expr, b: Expr) => simd(0xe6, a, b),
  div: (a: Expr, b: Expr) => simd(0xe7, a, b),
  min: (a: Expr, b: Expr) => simd(0xe8, a, b),
  max: (a: Expr, b: Expr) => simd(0xe9, a, b),
  /** b < a ? b : a: one minps on x64, where `min` (NaN- and ±0-exact) takes about nine instructions. */
  pmin: (a: Expr, b: Expr) => simd(0xea, a, b),
  /** a < b ? b : a: one maxps on x64. */
  pmax: (a: Expr, b: Expr) => simd(0xeb, a, b),
  /** Round to nearest, ties to even. */
  nearest: (a: Expr) => simd(0x6a, a),
  convert_i32x4_s: (a: Expr) => simd(0xfa, a),
  /** f64x2 → the low two f32 lanes (high lanes zero). */
  demote_f64x2_zero: (a: Expr) => simd(0x5e, a),
  /** Relaxed SIMD: a·b + c, fused or not as the hardware prefers (one answer per machine). */
  relaxed_madd: (a: Expr, b: Expr, c: Expr) => simd(0x105, a, b, c),
};

export const f64x2 = {
  splat: (a: Expr) => simd(0x14, a),
  extract_lane: (a: Expr, lane: number) => [...bytes(a), 0xfd, ...uleb(0x21), lane],
  add: (a: Expr, b: Expr) => simd(0xf0, a, b),
  sub: (a: Expr, b: Expr) => simd(0xf1, a, b),
  mul: (a: Expr, b: Expr) => simd(0xf2, a, b),
  promote_low_f32x4: (a: Expr) => simd(0x5f, a),
};

/** A v128 constant of four f32 lanes. */
export function f32x4Const(x: number): number[] {
  const lane = f32Bytes(x);
  return [0xfd, ...uleb(0x0c), ...lane, ...lane, ...lane, ...lane];
}

export function i32x4Const(n: number): number[] {
  const lane = [...new Uint8Array(new Int32Array([n]).buffer)];
  return [0xfd, ...uleb(0x0c), ...lane, ...lane, ...lane, ...lane];
}

// ---------------------------------------------------------------------------------------------
// Functions and modules

/** A function being built: its parameters are locals 0..n−1, `local()` adds more. */
export class Func {
  readonly params: Local[];
  private readonly locals: Local[] = [];
  body: number[] | null = null;

  constructor(
    readonly index: number,
    readonly name: string,
    params: [string, ValType][],
    readonly results: ValType[],
  ) {
    this.params = params.map(([n, t], i) => new Local(i, t, n));
  }

  /** The parameter called `n`. */
  p(n: string): Local {
    const l = this.params.find((x) => x.name === n);
    if (!l) throw new Error(`wasm emitter: ${this.name} has no parameter ${n}`);
    return l;
  }

  local(type: ValType, n = ""): Local {
    const l = new Local(this.params.length + this.locals.length, type, n);
    this.locals.push(l);
    return l;
  }

  /** Sets the body from statements (the result, if any, is what the last one leaves on the stack). */
  define(...statements: Expr[]): this {
    this.body = seq(...statements);
    return this;
  }

  typeKey(): string {
    return `${this.params.map((p) => p.type).join(",")}->${this.results.join(",")}`;
  }

  encodeType(): number[] {
    return [0x60, ...vec(this.params.map((p) => [VALTYPE[p.type]])), ...vec(this.results.map((r) => [VALTYPE[r]]))];
  }

  encodeCode(): number[] {
    if (!this.body) throw new Error(`wasm emitter: ${this.name} was declared but never defined`);
    // One (count, type) group per local; the format allows runs but does not require them.
    const decls = vec(this.locals.map((l) => [1, VALTYPE[l.type]]));
    const code = [...decls, ...this.body, 0x0b];
    return [...uleb(code.length), ...code];
  }
}

/** A module that imports env.memory (shared, up to 4 GiB) and defines and exports functions. */
export class ModuleBuilder {
  private readonly funcs: Func[] = [];
  private readonly exported = new Set<Func>();

  func(name: string, params: [string, ValType][], results: ValType[] = [], exported = false): Func {
    const f = new Func(this.funcs.length, name, params, results);
    this.funcs.push(f);
    if (exported) this.exported.add(f);
    return f;
  }

  bytes(): Uint8Array<ArrayBuffer> {
    const typeKeys = [...new Set(this.funcs.map((f) => f.typeKey()))];
    const types = typeKeys.map((k) => this.funcs.find((f) => f.typeKey() === k)!.encodeType());
    const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
    // limits flag 0x03 = has maximum + shared: (memory 1 65536 shared), what kernels/arena.ts creates.
    const memoryImport = [...name("env"), ...name("memory"), 0x02, 0x03, ...uleb(1), ...uleb(65536)];
    const out = [
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
      ...section(1, vec(types)),
      ...section(2, vec([memoryImport])),
      ...section(3, vec(this.funcs.map((f) => uleb(typeKeys.indexOf(f.typeKey()))))),
      ...section(7, vec([...this.exported].map((f) => [...name(f.name), 0x00, ...uleb(f.index)]))),
      ...section(10, vec(this.funcs.map((f) => f.encodeCode()))),
    ];
    return new Uint8Array(out);
  }
}
