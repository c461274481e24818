import { describe, expect, it } from "vitest";
import { FormatError, UnsafeFileError } from "../../src/errors.js";
import { pytorchTensors } from "../helpers/tensors.js";
import { toFloat32, type RawTensor } from "../../src/formats/tensor.js";
import { f32Bytes, legacyCheckpoint, makeZip, PickleWriter, stateDictPickle, torchZip, type FakeTensor } from "../helpers/zip-writer.js";
import { thrown } from "../helpers/thrown.js";

const floats = (t: RawTensor | undefined): number[] => Array.from(toFloat32(t!, "test", "t"));

/**
 * data.pkl as CPython's pickle writes it for a torch-shaped state dict (memo, BINGET, the
 * `_metadata` BUILD), made with stand-in torch classes:
 *   s0 = FloatStorage key "0", 6 elements; s1 = HalfStorage key "1", 4 elements
 *   w = (s0, 0, (2,3), (3,1)); w_t = (s0, 0, (3,2), (1,3)); row = (s0, 3, (3,), (1,));
 *   tied = w (same object); h = (s1, 1, (3,), (1,))
 */
const CPYTHON_PKL =
  "800263636f6c6c656374696f6e730a4f726465726564446963740a71002952710128580100000077710263746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a71032828580700000073746f72616765710463746f7263680a466c6f617453746f726167650a71055801000000307106580300000063707571074b06747108514b004b024b038671094b034b0186710a8968002952710b74710c52710d5803000000775f74710e6803282868046805680668074b0674710f514b004b034b028671104b014b03867111896800295271127471135271145803000000726f7771156803282868046805680668074b06747116514b034b038571174b018571188968002952711974711a52711b580400000074696564711c680d580100000068711d68032828680463746f7263680a48616c6653746f726167650a711e580100000031711f68074b04747120514b016817681889680029527121747122527123757d712458090000005f6d657461646174617125680029527126580000000071277d7128580700000076657273696f6e71294b01737373622e";

/** F16 bit patterns of 1, 2, -0.5, 65504. */
const HALVES = Uint8Array.from([0x00, 0x3c, 0x00, 0x40, 0x00, 0xb8, 0xff, 0x7b]);

function cpythonCheckpoint(opts: { zip64?: boolean } = {}): Uint8Array {
  return torchZip(Uint8Array.from(Buffer.from(CPYTHON_PKL, "hex")), { 0: f32Bytes([0, 1, 2, 3, 4, 5]), 1: HALVES }, { byteorder: "little", ...opts });
}

describe("PyTorch zip checkpoints", () => {
  it("reads views, transposes, offsets, shared storages and tied weights", () => {
    const t = pytorchTensors("m.bin", cpythonCheckpoint());
    expect([...t.keys()]).toEqual(["w", "w_t", "row", "tied", "h"]);
    expect(t.get("w")!.shape).toEqual([2, 3]);
    expect(floats(t.get("w"))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(t.get("w_t")!.shape).toEqual([3, 2]);
    expect(floats(t.get("w_t"))).toEqual([0, 3, 1, 4, 2, 5]); // materialized in C order
    expect(floats(t.get("row"))).toEqual([3, 4, 5]);
    expect(t.get("tied")).toEqual(t.get("w")); // one tensor under two names: the same bytes under each
    expect(t.get("h")!.dtype).toBe("F16");
    expect(floats(t.get("h"))).toEqual([2, -0.5, 65504]);
  });

  it("reads a ZIP64 archive the same way", () => {
    const t = pytorchTensors("m.bin", cpythonCheckpoint({ zip64: true }));
    expect(floats(t.get("w_t"))).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it("maps every storage class to its dtype", () => {
    const classes: [string, string, number][] = [
      ["FloatStorage", "F32", 4], ["HalfStorage", "F16", 2], ["BFloat16Storage", "BF16", 2], ["DoubleStorage", "F64", 8],
      ["LongStorage", "I64", 8], ["IntStorage", "I32", 4], ["ShortStorage", "I16", 2], ["CharStorage", "I8", 1],
      ["ByteStorage", "U8", 1], ["BoolStorage", "BOOL", 1],
    ];
    const tensors: FakeTensor[] = classes.map(([cls], i) => ({ name: cls, key: String(i), cls, numel: 3, size: [3], stride: [1] }));
    const storages: Record<string, Uint8Array> = {};
    classes.forEach(([, , item], i) => (storages[i] = Uint8Array.from({ length: 3 * item }, (_, j) => (i * 16 + j) & 0xff)));
    const t = pytorchTensors("m.bin", torchZip(stateDictPickle(tensors), storages));
    classes.forEach(([cls, dtype], i) => {
      expect(t.get(cls)!.dtype).toBe(dtype);
      expect(t.get(cls)!.bytes).toEqual(storages[i]);
    });
  });

  it("copies a 3-d permuted tensor out in C order, and a zero-stride (expanded) one", () => {
    // storage 0..23 as a [2,3,4] tensor, permuted to [4,2,3] with strides (1,12,4)
    const src = Array.from({ length: 24 }, (_, i) => i);
    const tensors: FakeTensor[] = [
      { name: "p", key: "0", cls: "FloatStorage", numel: 24, size: [4, 2, 3], stride: [1, 12, 4] },
      { name: "e", key: "0", cls: "FloatStorage", numel: 24, offset: 5, size: [2, 3], stride: [0, 1] },
    ];
    const t = pytorchTensors("m.bin", torchZip(stateDictPickle(tensors), { 0: f32Bytes(src) }));
    const expected: number[] = [];
    for (let a = 0; a < 4; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) expected.push(b * 12 + c * 4 + a);
    expect(floats(t.get("p"))).toEqual(expected);
    expect(floats(t.get("e"))).toEqual([5, 6, 7, 5, 6, 7]);
  });

  it("refuses a tensor whose shape and stride reach past its storage, naming it", () => {
    for (const bad of [
      { size: [2, 4], stride: [4, 1] }, // 8 elements from a 6-element storage
      { size: [3, 2], stride: [1, 4] }, // last element at 2 + 4 = 6
      { size: [6], stride: [1], offset: 1 },
    ]) {
      const pkl = stateDictPickle([{ name: "h.0.attn.c_attn.weight", key: "0", cls: "FloatStorage", numel: 6, ...bad }]);
      const e = thrown(() => pytorchTensors("m.bin", torchZip(pkl, { 0: f32Bytes([0, 1, 2, 3, 4, 5]) })));
      expect(e).toBeInstanceOf(FormatError);
      expect(e.message).toMatch(/^m\.bin: tensor h\.0\.attn\.c_attn\.weight .* reaches element \d+ of storage 0, which has only 6 elements/);
    }
  });

  it("refuses an expanded tensor too large to copy out", () => {
    const pkl = stateDictPickle([{ name: "x", key: "0", cls: "FloatStorage", numel: 1, size: [1 << 20, 1 << 20], stride: [0, 0] }]);
    expect(thrown(() => pytorchTensors("m.bin", torchZip(pkl, { 0: f32Bytes([1]) }))).message).toMatch(/refusing/);
  });

  it("bounds the total bytes copied out for expanded tensors across the whole file", () => {
    // each tensor repeats a 1 MiB storage 100 times (stride 0): two fit the allowance, the third does not
    const row = 1 << 20;
    const tensors: FakeTensor[] = ["a", "b", "c"].map((name) => ({ name, key: "0", cls: "ByteStorage", numel: row, size: [100, row], stride: [0, 1] }));
    const e = thrown(() => pytorchTensors("m.bin", torchZip(stateDictPickle(tensors), { 0: new Uint8Array(row) })));
    expect(e.message).toMatch(/^m\.bin: tensor c .* refusing/);
  });

  it("refuses a storage whose element count needs more bytes than its record holds", () => {
    const pkl = stateDictPickle([{ name: "x", key: "0", cls: "FloatStorage", numel: 7, size: [6], stride: [1] }]);
    const e = thrown(() => pytorchTensors("m.bin", torchZip(pkl, { 0: f32Bytes([0, 1, 2, 3, 4, 5]) })));
    expect(e.message).toMatch(/storage 0 declares 7 F32 elements \(28 bytes\) but record archive\/data\/0 holds 24 bytes/);
  });

  it("refuses a storage with no record", () => {
    const pkl = stateDictPickle([{ name: "x", key: "9", cls: "FloatStorage", numel: 1, size: [1], stride: [1] }]);
    expect(thrown(() => pytorchTensors("m.bin", torchZip(pkl, {}))).message).toMatch(/storage 9 has no record archive\/data\/9/);
  });

  it("refuses a big-endian checkpoint", () => {
    const bytes = torchZip(Uint8Array.from(Buffer.from(CPYTHON_PKL, "hex")), { 0: f32Bytes([0, 1, 2, 3, 4, 5]), 1: HALVES }, { byteorder: "big" });
    expect(thrown(() => pytorchTensors("m.bin", bytes)).message).toMatch(/byte order is "big"/);
  });

  for (const [module, name] of [["os", "system"], ["posix", "system"], ["builtins", "eval"]]) {
    it(`refuses a data.pkl that names ${module}.${name}`, () => {
      const pkl = new PickleWriter().proto(2).global(module, name).str("touch /tmp/pwned").raw(0x85).reduce().stop().bytes();
      const e = thrown(() => pytorchTensors("evil.bin", torchZip(pkl, {})));
      expect(e).toBeInstanceOf(UnsafeFileError);
      expect(e.message).toMatch(new RegExp(`^evil\\.bin: .*${module}\\.${name}`));
    });
  }

  it("refuses an unsupported storage dtype as unsafe-to-guess rather than misreading it", () => {
    const pkl = stateDictPickle([{ name: "c", key: "0", cls: "ComplexFloatStorage", numel: 1, size: [1], stride: [1] }]);
    expect(thrown(() => pytorchTensors("m.bin", torchZip(pkl, { 0: new Uint8Array(8) }))).message).toMatch(/ComplexFloatStorage/);
  });

  it("unwraps {'state_dict': ...} and {'model': ...}", () => {
    for (const wrap of ["state_dict", "model"]) {
      const pkl = stateDictPickle([{ name: "x", key: "0", cls: "FloatStorage", numel: 2, size: [2], stride: [1] }], { wrap });
      expect(floats(pytorchTensors("m.bin", torchZip(pkl, { 0: f32Bytes([7, 8]) })).get("x"))).toEqual([7, 8]);
    }
  });

  it("says clearly when the pickle is not a dict of tensors", () => {
    const list = new PickleWriter().proto(2).emptyList().stop().bytes();
    expect(thrown(() => pytorchTensors("m.bin", torchZip(list, {}))).message).toMatch(/holds a list of 0, not a dict of tensors/);
    const dict = new PickleWriter().proto(2).emptyDict().str("epoch").int(3).setItem().stop().bytes();
    expect(thrown(() => pytorchTensors("m.bin", torchZip(dict, {}))).message).toMatch(/entry epoch is an int, not a tensor/);
  });

  it("gives a typed error for every cut of a checkpoint", () => {
    const bytes = cpythonCheckpoint();
    for (let cut = 0; cut < bytes.length; cut += 7) {
      const e = thrown(() => pytorchTensors("cut.bin", bytes.subarray(0, cut)));
      expect(e, `cut at ${cut}: ${e.message}`).toBeInstanceOf(FormatError);
    }
  });

  it("refuses a zip archive that is not a checkpoint, and a file that is neither format", () => {
    expect(thrown(() => pytorchTensors("x.zip", makeZip([{ name: "a.txt", data: new Uint8Array(1) }]))).message).toMatch(/no <archive>\/data\.pkl/);
    expect(thrown(() => pytorchTensors("x.bin", new TextEncoder().encode("hello world"))).message).toMatch(/not a PyTorch checkpoint/);
  });
});

describe("legacy (pre-1.6) PyTorch checkpoints", () => {
  const tensors: FakeTensor[] = [
    { name: "w", key: "140", cls: "FloatStorage", numel: 6, size: [3, 2], stride: [1, 3] },
    { name: "m", key: "77", cls: "ByteStorage", numel: 4, size: [1, 1, 2, 2], stride: [4, 4, 2, 1] },
  ];
  const storages = { 140: f32Bytes([0, 1, 2, 3, 4, 5]), 77: Uint8Array.from([1, 0, 1, 1]) };
  const bytes = legacyCheckpoint(tensors, storages, { 140: 4, 77: 1 });

  it("reads the storages that follow the pickles", () => {
    const t = pytorchTensors("old.bin", bytes);
    expect(floats(t.get("w"))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(t.get("m")).toEqual({ dtype: "U8", shape: [1, 1, 2, 2], bytes: Uint8Array.from([1, 0, 1, 1]) });
  });

  it("gives a typed error for every cut", () => {
    for (let cut = 0; cut < bytes.length; cut++) {
      const e = thrown(() => pytorchTensors("old.bin", bytes.subarray(0, cut)));
      expect(e, `cut at ${cut}: ${e.message}`).toBeInstanceOf(FormatError);
    }
  });
});
