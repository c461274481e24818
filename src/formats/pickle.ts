/**
 * A pickle *machine*: it runs the opcodes of a pickle stream (protocol 2 and later, the ones
 * `torch.save` emits) and builds plain values, but it never evaluates anything. A GLOBAL opcode
 * is only a name; the caller's `findGlobal` decides what, if anything, that name stands for, and
 * any name it does not know is refused with an `UnsafeFileError`. This is what makes reading a
 * `.bin` checkpoint safe where Python's `pickle.load` would run `os.system` for whoever wrote it.
 *
 * Values: None → null, bool → boolean, int → number (bigint past 2^53), float → number,
 * str → string, bytes → Uint8Array, list → array, tuple → frozen array, dict → Map, set → Set.
 * Globals are whatever `findGlobal` returns; REDUCE and NEWOBJ call them if they are `PickleCallable`s.
 *
 * The machine is a loop over a flat stack (no recursion, however deep the nesting); every read is
 * bounds-checked and the stack and memo have size limits.
 */
import { FormatError, UnsafeFileError } from "../errors.js";

/** A global that REDUCE / NEWOBJ may call, e.g. our stand-in for `collections.OrderedDict`. */
export interface PickleCallable {
  /** "module.name", for error messages. */
  readonly qualname: string;
  /** Builds the object from its argument tuple. Throw a FormatError for arguments it cannot use. */
  call(args: readonly unknown[]): unknown;
}

export interface PickleOptions {
  /** Resolves GLOBAL / STACK_GLOBAL. Returning undefined refuses the name (UnsafeFileError). */
  findGlobal(module: string, name: string): unknown;
  /** Turns a persistent id (BINPERSID) into the object it stands for; absent = persistent ids refused. */
  persistentLoad?(pid: unknown): unknown;
  /** Defaults: 1,000,000 stack items and 4,000,000 memo entries. */
  maxStack?: number;
  maxMemo?: number;
}

export function isPickleCallable(v: unknown): v is PickleCallable {
  return typeof v === "object" && v !== null && typeof (v as PickleCallable).call === "function" && typeof (v as PickleCallable).qualname === "string";
}

/** Tuples are frozen arrays, lists are plain arrays. */
export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

/** A one-phrase description of a value's type, for error messages (never recursive). */
export function describe(v: unknown): string {
  if (v === null) return "None";
  if (typeof v === "boolean") return "a bool";
  if (typeof v === "number" || typeof v === "bigint") return Number.isInteger(v) || typeof v === "bigint" ? "an int" : "a float";
  if (typeof v === "string") return "a string";
  if (v instanceof Uint8Array) return "bytes";
  if (isTuple(v)) return `a tuple of ${v.length}`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof Map) return "a dict";
  if (v instanceof Set) return "a set";
  if (isPickleCallable(v)) return `the global ${v.qualname}`;
  const name = (v as object).constructor?.name;
  return name ? `a ${name}` : "an object";
}

// ---- opcodes ----

const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32,
  BINBYTES: 0x42, SHORT_BINBYTES: 0x43, BINFLOAT: 0x47, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d,
  NONE: 0x4e, BINPERSID: 0x51, REDUCE: 0x52, BINSTRING: 0x54, SHORT_BINSTRING: 0x55, BINUNICODE: 0x58,
  EMPTY_LIST: 0x5d, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63, DICT: 0x64, APPENDS: 0x65,
  BINGET: 0x68, LONG_BINGET: 0x6a, LIST: 0x6c, BINPUT: 0x71, LONG_BINPUT: 0x72,
  SETITEM: 0x73, TUPLE: 0x74, SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29,
  PROTO: 0x80, NEWOBJ: 0x81, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89,
  LONG1: 0x8a, LONG4: 0x8b, SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f, ADDITEMS: 0x90, FROZENSET: 0x91, NEWOBJ_EX: 0x92, STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94, FRAME: 0x95,
} as const;

/** Opcodes that exist but that this machine refuses (text protocol 0/1 forms, extensions, buffers, INST/OBJ). */
const UNSUPPORTED: Record<number, string> = {
  0x46: "FLOAT", 0x49: "INT", 0x4c: "LONG", 0x50: "PERSID", 0x53: "STRING", 0x56: "UNICODE",
  0x67: "GET", 0x69: "INST", 0x6f: "OBJ", 0x70: "PUT",
  0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
};

const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** Strings longer than this in GLOBAL lines are not module names. */
const MAX_GLOBAL_LINE = 1024;
/** LONG1/LONG4 integers longer than this are not sizes or offsets. */
const MAX_LONG_BYTES = 64;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/**
 * Runs the pickle that starts at `start` up to its STOP opcode.
 * Returns the value it built and the offset just past STOP (the legacy PyTorch format puts
 * several pickles one after another).
 */
export function loadPickle(file: string, bytes: Uint8Array, options: PickleOptions, start = 0): { value: unknown; end: number } {
  const maxStack = options.maxStack ?? 1_000_000;
  const maxMemo = options.maxMemo ?? 4_000_000;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  /** Stack lengths at each MARK. */
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let opAt = start;
  let op = 0;

  const fail = (detail: string): FormatError =>
    new FormatError(file, `pickle opcode ${OP_NAMES[op] ?? `0x${op.toString(16)}`} at offset ${opAt}: ${detail}`);

  const need = (n: number): number => {
    if (n < 0 || pos + n > bytes.length) throw new FormatError(file, `pickle is truncated: opcode ${OP_NAMES[op] ?? op} at offset ${opAt} needs ${n} more bytes, the data ends at ${bytes.length}`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => bytes[need(1)];
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(bytes.length)) throw fail(`length ${v} runs past the end of the data`);
    return Number(v);
  };
  const slice = (n: number): Uint8Array => {
    const at = need(n);
    return bytes.subarray(at, at + n);
  };
  const text = (n: number): string => {
    try {
      return utf8.decode(slice(n));
    } catch {
      throw fail("string is not valid UTF-8");
    }
  };
  const line = (): string => {
    const from = pos;
    const limit = Math.min(bytes.length, from + MAX_GLOBAL_LINE);
    let end = from;
    while (end < limit && bytes[end] !== 0x0a) end++;
    if (end >= limit) throw fail("global name is not a newline-terminated line (truncated or corrupt pickle)");
    pos = end + 1;
    return text2(from, end);
  };
  const text2 = (from: number, to: number): string => {
    try {
      return utf8.decode(bytes.subarray(from, to));
    } catch {
      throw fail("global name is not valid UTF-8");
    }
  };

  const push = (v: unknown): void => {
    if (stack.length >= maxStack) throw fail(`stack exceeds ${maxStack} items`);
    stack.push(v);
  };
  const floor = (): number => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (): unknown => {
    if (stack.length <= floor()) throw fail("stack underflow (corrupt pickle)");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length <= floor()) throw fail("stack underflow (corrupt pickle)");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw fail("no MARK on the stack (corrupt pickle)");
    return stack.splice(m);
  };
  const memoize = (index: number): void => {
    if (!memo.has(index) && memo.size >= maxMemo) throw fail(`memo exceeds ${maxMemo} entries`);
    memo.set(index, top());
  };
  const recall = (index: number): void => {
    if (!memo.has(index)) throw fail(`memo has no entry ${index}`);
    push(memo.get(index));
  };
  const global = (module: string, name: string): void => {
    const v = options.findGlobal(module, name);
    if (v === undefined) {
      throw new UnsafeFileError(file, `pickle refers to the global ${module}.${name}, which is not on the allowlist of names a checkpoint may use; refusing to load it`);
    }
    push(v);
  };
  const list = (v: unknown): unknown[] => {
    if (!Array.isArray(v) || isTuple(v)) throw fail(`expected a list, found ${describe(v)}`);
    return v;
  };
  const dict = (v: unknown): Map<unknown, unknown> => {
    if (!(v instanceof Map)) throw fail(`expected a dict, found ${describe(v)}`);
    return v;
  };
  const set = (v: unknown): Set<unknown> => {
    if (!(v instanceof Set) || Object.isFrozen(v)) throw fail(`expected a set, found ${describe(v)}`);
    return v;
  };
  const tuple = (v: unknown): readonly unknown[] => {
    if (!isTuple(v)) throw fail(`expected an argument tuple, found ${describe(v)}`);
    return v;
  };
  const callable = (v: unknown): PickleCallable => {
    if (!isPickleCallable(v)) throw fail(`cannot call ${describe(v)}`);
    return v;
  };
  const setItems = (d: Map<unknown, unknown>, items: unknown[]): void => {
    if (items.length % 2) throw fail("odd number of items for a dict");
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const signedLong = (raw: Uint8Array): number | bigint => {
    if (raw.length === 0) return 0;
    let v = 0n;
    for (let i = raw.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]);
    if (raw[raw.length - 1] & 0x80) v -= 1n << BigInt(8 * raw.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    opAt = pos;
    if (pos >= bytes.length) throw new FormatError(file, `pickle is truncated: no STOP opcode before the end of the data (offset ${pos})`);
    op = bytes[pos++];
    switch (op) {
      case OP.PROTO: {
        const proto = u8();
        if (proto < 2 || proto > 5) throw fail(`pickle protocol ${proto} is not supported (2 to 5 are)`);
        break;
      }
      case OP.FRAME: u64(); break; // frames only group opcodes; they are read as they come
      case OP.STOP: {
        if (marks.length) throw fail("STOP with an open MARK");
        if (stack.length !== 1) throw fail(`STOP with ${stack.length} items on the stack, expected 1`);
        return { value: stack[0], end: pos };
      }
      case OP.MARK: marks.push(stack.length); break;
      case OP.POP:
        if (stack.length > floor()) stack.pop();
        else popMark(); // Python pops the mark when the top frame is empty
        break;
      case OP.POP_MARK: popMark(); break;
      case OP.DUP: push(top()); break;

      case OP.NONE: push(null); break;
      case OP.NEWTRUE: push(true); break;
      case OP.NEWFALSE: push(false); break;
      case OP.BININT: push(view.getInt32(need(4), true)); break;
      case OP.BININT1: push(u8()); break;
      case OP.BININT2: push(u16()); break;
      case OP.LONG1: push(signedLong(slice(u8()))); break;
      case OP.LONG4: {
        const n = view.getInt32(need(4), true);
        if (n < 0 || n > MAX_LONG_BYTES) throw fail(`integer of ${n} bytes is not supported`);
        push(signedLong(slice(n)));
        break;
      }
      case OP.BINFLOAT: push(view.getFloat64(need(8), false)); break; // big-endian, unlike everything else

      case OP.SHORT_BINUNICODE: push(text(u8())); break;
      case OP.BINUNICODE: push(text(u32())); break;
      case OP.BINUNICODE8: push(text(u64())); break;
      case OP.SHORT_BINSTRING: push(latin1.decode(slice(u8()))); break;
      case OP.BINSTRING: {
        const n = view.getInt32(need(4), true);
        if (n < 0) throw fail(`negative string length ${n}`);
        push(latin1.decode(slice(n)));
        break;
      }
      case OP.SHORT_BINBYTES: push(slice(u8())); break;
      case OP.BINBYTES: push(slice(u32())); break;
      case OP.BINBYTES8: push(slice(u64())); break;

      case OP.EMPTY_TUPLE: push(Object.freeze([])); break;
      case OP.TUPLE1: { const a = pop(); push(Object.freeze([a])); break; }
      case OP.TUPLE2: { const b = pop(); const a = pop(); push(Object.freeze([a, b])); break; }
      case OP.TUPLE3: { const c = pop(); const b = pop(); const a = pop(); push(Object.freeze([a, b, c])); break; }
      case OP.TUPLE: push(Object.freeze(popMark())); break;
      case OP.EMPTY_LIST: push([]); break;
      case OP.LIST: push(popMark()); break;
      case OP.APPEND: { const v = pop(); list(top()).push(v); break; }
      case OP.APPENDS: { const items = popMark(); const l = list(top()); for (const v of items) l.push(v); break; }
      case OP.EMPTY_DICT: push(new Map()); break;
      case OP.DICT: { const d = new Map(); setItems(d, popMark()); push(d); break; }
      case OP.SETITEM: { const v = pop(); const k = pop(); dict(top()).set(k, v); break; }
      case OP.SETITEMS: { const items = popMark(); setItems(dict(top()), items); break; }
      case OP.EMPTY_SET: push(new Set()); break;
      case OP.ADDITEMS: { const items = popMark(); const s = set(top()); for (const v of items) s.add(v); break; }
      case OP.FROZENSET: push(Object.freeze(new Set(popMark()))); break;

      case OP.BINPUT: memoize(u8()); break;
      case OP.LONG_BINPUT: memoize(u32()); break;
      case OP.MEMOIZE: memoize(memo.size); break;
      case OP.BINGET: recall(u8()); break;
      case OP.LONG_BINGET: recall(u32()); break;

      case OP.GLOBAL: { const module = line(); const name = line(); global(module, name); break; }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") throw fail("module and name must be strings");
        global(module, name);
        break;
      }
      case OP.REDUCE: {
        const args = tuple(pop());
        const f = callable(pop());
        push(f.call(args));
        break;
      }
      case OP.NEWOBJ: {
        const args = tuple(pop());
        const cls = callable(pop());
        push(cls.call(args));
        break;
      }
      case OP.NEWOBJ_EX: {
        const kwargs = dict(pop());
        const args = tuple(pop());
        const cls = callable(pop());
        if (kwargs.size) throw fail(`keyword arguments to ${cls.qualname} are not supported`);
        push(cls.call(args));
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const obj = top();
        // Only dicts are built here: an OrderedDict state dict carries its `_metadata` attribute
        // as BUILD state. Python would set it as an instance attribute; we have no use for it.
        if (!(obj instanceof Map)) throw fail(`cannot set the state of ${describe(obj)}`);
        const ok = state === null || state instanceof Map ||
          (isTuple(state) && state.length === 2 && state.every((s) => s === null || s instanceof Map));
        if (!ok) throw fail(`unexpected state ${describe(state)} for a dict`);
        break;
      }
      case OP.BINPERSID: {
        const pid = pop();
        if (!options.persistentLoad) throw new UnsafeFileError(file, `pickle uses a persistent id at offset ${opAt}, which this file type does not allow`);
        push(options.persistentLoad(pid));
        break;
      }

      default: {
        const name = UNSUPPORTED[op];
        if (name) throw new FormatError(file, `pickle opcode ${name} (0x${op.toString(16)}) at offset ${opAt} is not supported`);
        throw new FormatError(file, `unknown pickle opcode 0x${op.toString(16)} at offset ${opAt} (corrupt or not a pickle)`);
      }
    }
  }
}
