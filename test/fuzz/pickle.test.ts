/**
 * Fuzzing the pickle machine through `pytorchSource` (the torch allowlist, persistent
 * ids, storages): opcode streams built from a grammar of hostile instructions, and raw edits of
 * the fixture pickles. Only FormatErrors (UnsafeFileError included) may escape, a tensor that
 * comes back has exactly its bytes, and nothing is allocated beyond what the file holds.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FormatError, UnsafeFileError } from "../../src/errors.js";
import { pytorchTensors } from "../helpers/tensors.js";
import { readZip } from "../../src/formats/zip.js";
import { DTYPE_BYTES, type RawTensor } from "../../src/formats/tensor.js";
import { applyMutations, concat, fuzzParams, fuzzTimeout, mutationsArb, onlyOurErrors } from "../helpers/fuzz-common.js";
import { legacyCheckpoint, makeZip, PickleWriter, stateDictPickle, torchZip, type FakeTensor } from "../helpers/zip-writer.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures");

/** Reads the checkpoint; checks every tensor that comes back against its dtype and shape. */
function readChecked(bytes: Uint8Array): Map<string, RawTensor> | undefined {
  let t: Map<string, RawTensor> | undefined;
  onlyOurErrors(() => (t = pytorchTensors("fuzz.bin", bytes)), FormatError);
  if (!t) return undefined;
  let total = 0;
  for (const [name, x] of t) {
    expect(x.bytes.length, name).toBe(x.shape.reduce((n, d) => n * d, 1) * DTYPE_BYTES[x.dtype]);
    total += x.bytes.length;
  }
  // What the loader will copy: every storage byte once, tied weights once more, strided copies within 256 MB.
  expect(total).toBeLessThanOrEqual(2 * bytes.length + 256 * 2 ** 20);
  return t;
}

// ---- a grammar of pickle instructions ----

const STORAGE_KEYS = ["0", "1"];
const GLOBALS: [string, string][] = [
  ["collections", "OrderedDict"], ["torch._utils", "_rebuild_tensor_v2"], ["torch._utils", "_rebuild_tensor"],
  ["torch._utils", "_rebuild_parameter"], ["torch._tensor", "_rebuild_from_type_v2"], ["torch.nn.parameter", "Parameter"],
  ["torch", "Tensor"], ["torch", "FloatStorage"], ["torch", "HalfStorage"], ["torch", "LongStorage"], ["torch", "UntypedStorage"],
  ["torch", "float16"], ["torch", "ComplexFloatStorage"],
  // refused: not on the allowlist
  ["os", "system"], ["builtins", "eval"], ["__builtin__", "getattr"], ["torch", "load"], ["collections", "__proto__"],
  ["torch", "__proto__"], ["", ""], ["os\nx", "system"],
];
const INTS = [0, 1, 2, 3, 255, 256, 65535, 2 ** 31 - 1, -1, -(2 ** 31), 2 ** 40, 2 ** 53 - 1];

type Emit = (w: PickleWriter) => void;

/** [[[ … ]]] 20,000 deep: String() or JSON.stringify of it overflows the stack. */
const deepList: Emit = (w) => {
  for (let i = 0; i < 20_000; i++) w.emptyList();
  for (let i = 1; i < 20_000; i++) w.raw(0x61);
};
/** t = (t, t) sixty times: 2^60 leaves when printed, 180 bytes when pickled. */
const sharedDag: Emit = (w) => {
  w.emptyList();
  for (let i = 0; i < 60; i++) w.raw(0x32, 0x86);
};
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const u64 = (n: bigint) => Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const utf8 = (s: string) => [...Buffer.from(s, "utf8")];

const small = fc.oneof(fc.constantFrom(...INTS), fc.integer({ min: -3, max: 70 }));
const text = fc.oneof(fc.constantFrom("storage", "cpu", "0", "1", "state_dict", "model", "little", "a\nb", ""), fc.string({ maxLength: 8 }));

/** One instruction: a few opcodes with their arguments, well-formed or lying about lengths. */
const instruction: fc.Arbitrary<Emit> = fc.oneof(
  // values
  fc.constantFrom<Emit>((w) => w.none(), (w) => w.bool(true), (w) => w.emptyTuple(), (w) => w.emptyList(), (w) => w.emptyDict(), (w) => w.raw(0x8f)),
  small.map((n): Emit => (w) => w.int(n)),
  fc.double().map((x): Emit => (w) => w.float(x)),
  text.map((s): Emit => (w) => w.str(s)),
  fc.uint8Array({ maxLength: 12 }).map((b): Emit => (w) => w.raw(0x8a, b.length, ...b)), // LONG1
  fc.constantFrom(-1, 0, 8, 64, 65, 2 ** 31 - 1).map((n): Emit => (w) => w.raw(0x8b, ...u32(n), ...new Array(Math.max(0, Math.min(n, 70))).fill(0xff))), // LONG4
  fc.constantFrom(0xffffffff, 1 << 30, 5).map((n): Emit => (w) => w.raw(0x58, ...u32(n), ...utf8("abc"))), // BINUNICODE lying about its length
  fc.constantFrom(2n ** 40n, 2n ** 64n - 1n, 3n).map((n): Emit => (w) => w.raw(0x8d, ...u64(n), ...utf8("abc"))), // BINUNICODE8
  fc.constantFrom(2n ** 53n + 1n, 10n).map((n): Emit => (w) => w.raw(0x8e, ...u64(n), 1, 2, 3)), // BINBYTES8
  fc.constantFrom(-5, 3, 1 << 30).map((n): Emit => (w) => w.raw(0x54, ...u32(n), 0x41, 0x42, 0x43)), // BINSTRING
  fc.uint8Array({ maxLength: 6 }).map((b): Emit => (w) => w.raw(0x8c, b.length, ...b)), // SHORT_BINUNICODE, maybe not UTF-8
  // structure
  fc.constantFrom<Emit>(
    (w) => w.mark(), (w) => w.tuple(), (w) => w.raw(0x85), (w) => w.raw(0x86), (w) => w.raw(0x87), (w) => w.raw(0x6c), (w) => w.raw(0x64),
    (w) => w.raw(0x61), (w) => w.appends(), (w) => w.setItem(), (w) => w.setItems(), (w) => w.raw(0x90), (w) => w.raw(0x91),
    (w) => w.raw(0x30), (w) => w.raw(0x31), (w) => w.raw(0x32), (w) => w.raw(0x94),
    (w) => w.reduce(), (w) => w.raw(0x81), (w) => w.raw(0x92), (w) => w.build(), (w) => w.binpersid(),
  ),
  fc.nat({ max: 6 }).map((i): Emit => (w) => w.put(i)),
  fc.nat({ max: 6 }).map((i): Emit => (w) => w.get(i)),
  fc.constantFrom(0, 7, 0xffffffff).map((i): Emit => (w) => w.raw(0x6a, ...u32(i))), // LONG_BINGET
  fc.constantFrom(...GLOBALS).map(([m, n]): Emit => (w) => w.global(m, n)),
  fc.constantFrom(...GLOBALS).map(([m, n]): Emit => (w) => w.stackGlobal(m, n)),
  fc.constantFrom(0, 1, 2, 5, 6, 255).map((p): Emit => (w) => w.proto(p)),
  fc.constantFrom(0n, 9n, 2n ** 62n).map((n): Emit => (w) => w.raw(0x95, ...u64(n))), // FRAME
  fc.constantFrom(0x2e, 0x69, 0x6f, 0x70, 0x82, 0x46, 0x56, 0x00, 0xff).map((op): Emit => (w) => w.raw(op)), // STOP, refused and unknown opcodes
  fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b): Emit => (w) => w.raw(...b)),
  // a whole tensor: persistent id + _rebuild_tensor_v2, with hostile sizes
  fc.record({
    key: fc.constantFrom(...STORAGE_KEYS, "missing"),
    cls: fc.constantFrom("FloatStorage", "HalfStorage", "BoolStorage"),
    numel: fc.oneof(fc.nat({ max: 32 }), fc.constantFrom(2 ** 40, 2 ** 53 - 1)),
    offset: fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(2 ** 40)),
    size: fc.array(fc.oneof(fc.nat({ max: 6 }), fc.constantFrom(2 ** 20, 2 ** 40)), { maxLength: 3 }),
    stride: fc.array(fc.oneof(fc.nat({ max: 6 }), fc.constant(2 ** 40)), { maxLength: 3 }),
  }).map((t): Emit => (w) => {
    w.global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", t.cls).str(t.key).str("cpu").int(t.numel).tuple().binpersid();
    w.int(t.offset).ints(t.size).ints(t.stride).bool(false).global("collections", "OrderedDict").emptyTuple().reduce().tuple().reduce();
  }),
  fc.constantFrom(deepList, sharedDag),
);

/** A single value, so that a pickle whose value is checked (the legacy version, the key list) gets odd ones. */
const value = fc.constantFrom<Emit>(deepList, sharedDag, (w) => w.int(1001), (w) => w.int(2 ** 40), (w) => w.str("0"), (w) => w.emptyList(), (w) => w.emptyDict(), (w) => w.none());

/** PROTO 2, some instructions, maybe a valid state dict's opening and closing, STOP. */
const pickleArb = fc.record({
  body: fc.oneof({ weight: 3, arbitrary: fc.array(instruction, { maxLength: 24 }) }, { weight: 1, arbitrary: value.map((v) => [v]) }),
  stateDict: fc.boolean(),
}).map(({ body, stateDict }) => {
  const w = new PickleWriter().proto(2);
  if (stateDict) w.global("collections", "OrderedDict").emptyTuple().reduce().mark().str("w");
  for (const emit of body) emit(w);
  if (stateDict) w.setItems();
  return w.stop().bytes();
});

const storages = fc.record({ 0: fc.uint8Array({ maxLength: 64 }), 1: fc.uint8Array({ maxLength: 64 }) });

describe("pickles built from hostile instructions", () => {
  it("in a torch zip archive: only FormatErrors escape", () => {
    fc.assert(
      fc.property(pickleArb, storages, fc.constantFrom(undefined, "little", "big"), (pkl, st, byteorder) => {
        readChecked(torchZip(pkl, st, byteorder === undefined ? {} : { byteorder }));
      }),
      fuzzParams(4),
    );
  }, fuzzTimeout(4));

  it("as any of the five pickles of a legacy (pre-1.6) file: only FormatErrors escape", () => {
    const tensors: FakeTensor[] = [{ name: "w", key: "0", cls: "FloatStorage", numel: 4, size: [2, 2], stride: [2, 1] }];
    const good = legacyCheckpoint(tensors, { 0: new Uint8Array(16) }, { 0: 4 });
    // The five pickles of the good file, found by running them one after another.
    const ends: number[] = [];
    for (let i = 0, at = 0; i < 5; i++) ends.push((at = endOfPickle(good, at)));
    fc.assert(
      fc.property(pickleArb, fc.nat({ max: 4 }), (pkl, slot) => {
        const start = slot === 0 ? 0 : ends[slot - 1];
        readChecked(concat(good.subarray(0, start), pkl, good.subarray(ends[slot])));
      }),
      fuzzParams(2),
    );
  }, fuzzTimeout(2));

  it("well-formed state dicts of hostile tensors: refused or read exactly", () => {
    const tensor = fc.record({
      name: fc.string({ maxLength: 6 }),
      key: fc.constantFrom("0", "1"),
      cls: fc.constantFrom("FloatStorage", "HalfStorage", "DoubleStorage", "BoolStorage"),
      numel: fc.oneof(fc.nat({ max: 40 }), fc.constantFrom(2 ** 32, 2 ** 40, 2 ** 53 - 1)),
      offset: fc.oneof(fc.nat({ max: 10 }), fc.constantFrom(2 ** 40, 2 ** 53 - 1)),
      size: fc.array(fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(2 ** 20, 2 ** 26, 2 ** 40)), { maxLength: 4 }),
      stride: fc.array(fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(0, 2 ** 40)), { maxLength: 4 }),
    });
    let read = 0;
    fc.assert(
      fc.property(fc.array(tensor, { maxLength: 4 }), fc.uint8Array({ maxLength: 160 }), fc.uint8Array({ maxLength: 160 }), fc.boolean(), (ts, a, b, legacy) => {
        const withSize = ts.map((t) => ({ ...t, stride: t.size.map((_, i) => t.stride[i] ?? 1) }));
        const bytes = legacy
          ? legacyCheckpoint(withSize, { 0: a, 1: b }, { 0: 1, 1: 1 })
          : torchZip(stateDictPickle(withSize), { 0: a, 1: b });
        if (readChecked(bytes)) read++;
      }),
      fuzzParams(3),
    );
    expect(read).toBeGreaterThan(0);
  }, fuzzTimeout(3));
});

/** Offset just past the STOP of the pickle starting at `at` (the legacy file's pickles are plain and short). */
function endOfPickle(bytes: Uint8Array, at: number): number {
  // Re-using the reader would hide a bug in it; the writer's pickles use only these opcodes' argument sizes.
  const args: Record<number, number | "u8len" | "u32len" | "line2"> = {
    0x80: 1, 0x8a: "u8len", 0x4b: 1, 0x4d: 2, 0x4a: 4, 0x47: 8, 0x8c: "u8len", 0x58: "u32len", 0x71: 1, 0x68: 1, 0x63: "line2",
  };
  let p = at;
  for (;;) {
    const op = bytes[p++];
    if (op === 0x2e) return p;
    const a = args[op];
    if (a === undefined) continue;
    if (typeof a === "number") p += a;
    else if (a === "u8len") p += 1 + bytes[p];
    else if (a === "u32len") p += 4 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(p, true);
    else for (let lines = 0; lines < 2; p++) if (bytes[p] === 0x0a) lines++;
  }
}

// ---- raw edits of the fixture pickles ----

describe("raw edits of the fixture checkpoints", () => {
  it("legacy.bin (pre-1.6 stream): only FormatErrors escape", () => {
    const base = Uint8Array.from(readFileSync(join(FIXTURES, "pytorch", "legacy.bin")));
    fc.assert(fc.property(mutationsArb(0), (m) => void readChecked(applyMutations(base, m))), fuzzParams(2));
  }, fuzzTimeout(2));

  const archives: [string, number][] = [["pytorch/strided.bin", 2], ["models/f16-8head-bin/pytorch_model.bin", 0.3]];
  it.each(archives)("data.pkl of %s, re-zipped with its storages: only FormatErrors escape", (file, weight) => {
    const zip = readZip(file, Uint8Array.from(readFileSync(join(FIXTURES, file))));
    const records = zip.names().map((name) => ({ name, data: zip.read(name) }));
    const pkl = records.find((r) => r.name.endsWith("/data.pkl"))!;
    fc.assert(
      fc.property(mutationsArb(0, 4), (m) => {
        const edited = records.map((r) => (r === pkl ? { name: r.name, data: applyMutations(r.data, m) } : r));
        readChecked(Uint8Array.from(makeZip(edited)));
      }),
      fuzzParams(weight),
    );
  }, fuzzTimeout(2));
});

// ---- pinned ----

describe("pickle declarations larger than the file are refused before any allocation", () => {
  const f32 = (n: number) => new Uint8Array(4 * n);

  it("a storage of 2^40 elements backed by a 16-byte record", () => {
    const before = process.memoryUsage().arrayBuffers;
    const bytes = torchZip(stateDictPickle([{ name: "w", key: "0", cls: "FloatStorage", numel: 2 ** 40, size: [2 ** 20, 2 ** 20], stride: [2 ** 20, 1] }]), { 0: f32(4) });
    expect(onlyOurErrors(() => pytorchTensors("m.bin", bytes), FormatError)?.message).toBe(
      "m.bin: storage 0 declares 1099511627776 F32 elements (4398046511104 bytes) but record archive/data/0 holds 16 bytes",
    );
    const legacy = legacyCheckpoint([{ name: "w", key: "0", cls: "FloatStorage", numel: 2 ** 40, size: [4], stride: [1] }], { 0: f32(4) }, { 0: 4 });
    expect(onlyOurErrors(() => pytorchTensors("m.bin", legacy), FormatError)?.message).toMatch(/^m\.bin: storage 0 holds 4 elements, its persistent id says 1099511627776$/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it("a 2^40-element view of one element (zero strides) is not copied out", () => {
    const before = process.memoryUsage().arrayBuffers;
    const bytes = torchZip(stateDictPickle([{ name: "w", key: "0", cls: "FloatStorage", numel: 1, size: [2 ** 20, 2 ** 20], stride: [0, 0] }]), { 0: f32(1) });
    expect(onlyOurErrors(() => pytorchTensors("m.bin", bytes), FormatError)?.message).toMatch(/would need 4398046511104 bytes when copied out of its storage, more than a checkpoint of this size can hold; refusing$/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it("one 64 KB tensor named 5,000 times (the loader would copy 320 MB) is refused", () => {
    // One tensor, memoized, then recalled under 5,000 names: 100 KB of pickle.
    const w = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce().mark().str("t0");
    w.global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(16384).tuple().binpersid();
    w.int(0).ints([16384]).ints([1]).bool(false).global("collections", "OrderedDict").emptyTuple().reduce().tuple().reduce().put(1);
    for (let i = 1; i < 5000; i++) w.str(`t${i}`).get(1);
    const bytes = torchZip(w.setItems().stop().bytes(), { 0: f32(16384) });
    expect(onlyOurErrors(() => pytorchTensors("m.bin", bytes), FormatError)?.message).toMatch(/^m\.bin: tensor t\d+: the state dict's tensors add up to more than twice the file's \d+ bytes/);
  });

  it("a legacy version number that is a list nested 20,000 deep, or a 2^60-leaf DAG, is described without recursing", () => {
    const tensors: FakeTensor[] = [{ name: "w", key: "0", cls: "FloatStorage", numel: 1, size: [1], stride: [1] }];
    const good = legacyCheckpoint(tensors, { 0: f32(1) }, { 0: 4 });
    const magicEnd = endOfPickle(good, 0);
    const versionEnd = endOfPickle(good, magicEnd);
    const deep = new PickleWriter().proto(2);
    for (let i = 0; i < 20_000; i++) deep.emptyList();
    for (let i = 1; i < 20_000; i++) deep.raw(0x61);
    const dag = new PickleWriter().proto(2).emptyList();
    for (let i = 0; i < 60; i++) dag.raw(0x32, 0x86);
    for (const version of [deep, dag]) {
      const bytes = concat(good.subarray(0, magicEnd), version.stop().bytes(), good.subarray(versionEnd));
      expect(onlyOurErrors(() => pytorchTensors("m.bin", bytes), FormatError)?.message).toMatch(/^m\.bin: legacy PyTorch checkpoint has protocol version an array of [12], expected 1001$/);
    }
  });

  it("a global named through STACK_GLOBAL with a newline in it is refused in one line", () => {
    const pkl = new PickleWriter().proto(2).stackGlobal("os\n", "system\u001b[2J").str("echo hi").raw(0x85).reduce().stop().bytes();
    const e = onlyOurErrors(() => pytorchTensors("m.bin", torchZip(pkl, {})), UnsafeFileError);
    expect(e?.message).toBe("m.bin: pickle refers to the global os\\n.system\\u001b[2J, which is not on the allowlist of names a checkpoint may use; refusing to load it");
  });
});
