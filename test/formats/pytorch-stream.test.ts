/**
 * PyTorch checkpoints read with positional reads (`pytorchSource`, what the model loader uses):
 * from the file, the same tensors, byte for byte, and the same refusals as from the same bytes
 * held in memory, while opening
 * reads only the zip's directory and pickle and each tensor is read once, straight into place.
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FormatError, UnsafeFileError } from "../../src/errors.js";
import { openCheckpoint } from "../../src/formats/checkpoint.js";
import { pytorchSource } from "../../src/formats/pytorch.js";
import { checkpointTensors, pytorchTensors } from "../helpers/tensors.js";
import { bufferSource, type ByteSource } from "../../src/platform/bytes.js";
import { fileSource } from "../../src/platform/node.js";
import { DTYPE_BYTES, elementCount, type TensorSource } from "../../src/formats/tensor.js";
import { f32Bytes, legacyCheckpoint, makeZip, PickleWriter, stateDictPickle, torchZip, type FakeTensor } from "../helpers/zip-writer.js";
import { thrown } from "../helpers/thrown.js";

const root = mkdtempSync(join(tmpdir(), "gpt2-reward-pt-stream-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
/** Writes `bytes` to a fresh file named `name` (so error messages match across readers) and returns its path. */
function onDisk(bytes: Uint8Array, name = "m.bin"): string {
  const d = join(root, String(files++));
  mkdirSync(d);
  writeFileSync(join(d, name), bytes);
  return join(d, name);
}

/** A tensor as the tests compare it: the SHA-256 of its bytes (deep equality of megabyte buffers is slow). */
interface Seen {
  dtype: string;
  shape: number[];
  sha256: string;
}
const seen = (dtype: string, shape: number[], bytes: Uint8Array): Seen => ({ dtype, shape, sha256: createHash("sha256").update(bytes).digest("hex") });

/**
 * Every tensor of a source, read the ways the loader reads: whole, into a buffer of exactly its
 * byte size, and in blocks of growing size from increasing offsets, which must give the same bytes.
 */
function readAll(src: TensorSource): Map<string, Seen> {
  const out = new Map<string, Seen>();
  for (const name of src.names()) {
    const { dtype, shape } = src.info(name);
    const dst = new Uint8Array(elementCount(shape) * DTYPE_BYTES[dtype]);
    src.read(name, dst);
    const blocks = new Uint8Array(dst.length).fill(0xee);
    for (let at = 0, step = 1; at < dst.length; at += step, step = 3 * step + 1) {
      src.read(name, blocks.subarray(at, Math.min(dst.length, at + step)), at);
    }
    if (Buffer.compare(blocks, dst) !== 0) throw new Error(`${name}: read in blocks differs from the whole read`);
    out.set(name, seen(dtype, shape, dst));
  }
  return out;
}

/** What the reader gives for `bytes` held in memory: every tensor, or the error's class and message. */
function whole(file: string, bytes: Uint8Array): unknown {
  try {
    const t = pytorchTensors(file, bytes);
    return new Map([...t].map(([k, v]) => [k, seen(v.dtype, v.shape, v.bytes)]));
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

/** The same from the file, with positional reads, opening and reading every tensor in blocks too. */
function streamed(file: string, bytes?: ByteSource): unknown {
  try {
    const src = pytorchSource(file, bytes);
    try {
      return readAll(src);
    } finally {
      src.close();
    }
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

/** Reads through `src` counted: calls and bytes. */
function counting(src: ByteSource): ByteSource & { calls: number; bytes: number } {
  const c = {
    size: src.size,
    calls: 0,
    bytes: 0,
    read(offset: number, length: number): Uint8Array {
      c.calls++;
      c.bytes += length;
      return src.read(offset, length);
    },
    readInto(offset: number, dst: Uint8Array): void {
      c.calls++;
      c.bytes += dst.length;
      src.readInto(offset, dst);
    },
  };
  return c;
}

/** Offset of the central-directory entry of record `name`. */
function centralEntry(bytes: Buffer, name: string): number {
  for (let p = bytes.indexOf("PK\x01\x02", 0, "latin1"); p >= 0; p = bytes.indexOf("PK\x01\x02", p + 4, "latin1")) {
    const n = bytes.readUInt16LE(p + 28);
    if (bytes.toString("utf8", p + 46, p + 46 + n) === name) return p;
  }
  throw new Error(`no central entry ${name}`);
}

const FIXTURES = [
  "fixtures/models/f16-8head-bin/pytorch_model.bin",
  ...readdirSync("fixtures/models/sharded-bin").filter((f) => f.endsWith(".bin")).map((f) => `fixtures/models/sharded-bin/${f}`),
  "fixtures/pytorch/strided.bin",
];

/** A small state dict with every layout: transposed, offset, expanded (stride 0), permuted 3-d, shared storage, F16. */
const LAYOUTS: FakeTensor[] = [
  { name: "w", key: "0", cls: "FloatStorage", numel: 24, size: [4, 6], stride: [6, 1] },
  { name: "w_t", key: "0", cls: "FloatStorage", numel: 24, size: [6, 4], stride: [1, 6] },
  { name: "row", key: "0", cls: "FloatStorage", numel: 24, offset: 6, size: [6], stride: [1] },
  { name: "p", key: "0", cls: "FloatStorage", numel: 24, size: [4, 2, 3], stride: [1, 12, 4] },
  { name: "e", key: "0", cls: "FloatStorage", numel: 24, offset: 5, size: [2, 3], stride: [0, 1] },
  { name: "empty", key: "0", cls: "FloatStorage", numel: 24, offset: 24, size: [0, 3], stride: [3, 1] },
  { name: "h", key: "1", cls: "HalfStorage", numel: 4, offset: 1, size: [3], stride: [1] },
];
const LAYOUT_STORAGES = { 0: f32Bytes(Array.from({ length: 24 }, (_, i) => i)), 1: Uint8Array.from([0x00, 0x3c, 0x00, 0x40, 0x00, 0xb8, 0xff, 0x7b]) };

describe("pytorchSource reads from the file the same tensors as from the bytes in memory", () => {
  for (const file of FIXTURES) {
    it(`${file}: every tensor, byte for byte`, () => {
      const want = whole(file, readFileSync(file));
      expect(want).toBeInstanceOf(Map);
      expect(streamed(file)).toEqual(want);
    });
  }

  for (const zip64 of [false, true]) {
    it(`every layout: transposed, offset, expanded, permuted, empty, shared, F16 (${zip64 ? "ZIP64" : "classic"})`, () => {
      const bytes = torchZip(stateDictPickle(LAYOUTS), LAYOUT_STORAGES, { zip64, byteorder: "little" });
      const file = onDisk(bytes);
      const got = streamed(file);
      expect(got).toBeInstanceOf(Map);
      expect(got).toEqual(whole(file, bytes));
      expect((got as Map<string, Seen>).get("w_t")).toEqual(seen("F32", [6, 4], f32Bytes([0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 21, 4, 10, 16, 22, 5, 11, 17, 23])));
    });
  }

  it("inflates deflated storage records when their tensors are read", () => {
    const records = [
      { name: "archive/data.pkl", data: stateDictPickle(LAYOUTS), method: 8 },
      { name: "archive/data/0", data: LAYOUT_STORAGES[0], method: 8 },
      { name: "archive/data/1", data: LAYOUT_STORAGES[1] },
    ];
    const bytes = makeZip(records);
    const file = onDisk(bytes);
    expect(streamed(file)).toEqual(whole(file, bytes));
  });

  it("reads a legacy (pre-1.6) file whole, with the same result", () => {
    const tensors: FakeTensor[] = [{ name: "w", key: "140", cls: "FloatStorage", numel: 6, size: [3, 2], stride: [1, 3] }];
    const bytes = legacyCheckpoint(tensors, { 140: f32Bytes([0, 1, 2, 3, 4, 5]) }, { 140: 4 });
    const file = onDisk(bytes, "old.bin");
    expect(streamed(file)).toEqual(whole(file, bytes));
    expect(streamed("fixtures/pytorch/legacy.bin")).toEqual(whole("fixtures/pytorch/legacy.bin", readFileSync("fixtures/pytorch/legacy.bin")));
  });
});

describe("pytorchSource refuses a file as it refuses its bytes in memory, with the same error", () => {
  const ok = (): Uint8Array => torchZip(stateDictPickle(LAYOUTS), LAYOUT_STORAGES, { byteorder: "little" });
  const cases: [string, () => Uint8Array, RegExp, typeof FormatError][] = [
    ["a data.pkl naming os.system", () => torchZip(new PickleWriter().proto(2).global("os", "system").str("touch /tmp/pwned").raw(0x85).reduce().stop().bytes(), {}), /os\.system/, UnsafeFileError],
    ["a storage record whose local header lies outside the file", () => {
      const b = Buffer.from(ok());
      b.writeUInt32LE(b.length + 1000, centralEntry(b, "archive/data/0") + 42);
      return b;
    }, /local header of record archive\/data\/0 .* outside the file/, FormatError],
    ["a storage record whose data runs past the end of the file", () => {
      const b = Buffer.from(ok());
      const cd = centralEntry(b, "archive/data/1");
      const local = b.readUInt32LE(cd + 42);
      for (const [at, off] of [[local, 18], [local, 22], [cd, 20], [cd, 24]]) b.writeUInt32LE(10_000_000, at + off);
      return b;
    }, /data of record archive\/data\/1 .* outside the file/, FormatError],
    ["a tensor whose shape reaches past its storage", () =>
      torchZip(stateDictPickle([{ name: "h.0.attn.c_attn.weight", key: "0", cls: "FloatStorage", numel: 6, size: [2, 4], stride: [4, 1] }]), { 0: f32Bytes([0, 1, 2, 3, 4, 5]) }),
    /tensor h\.0\.attn\.c_attn\.weight .* reaches element 7 of storage 0, which has only 6 elements/, FormatError],
    ["a storage declaring more elements than its record holds", () =>
      torchZip(stateDictPickle([{ name: "x", key: "0", cls: "FloatStorage", numel: 7, size: [6], stride: [1] }]), { 0: f32Bytes([0, 1, 2, 3, 4, 5]) }),
    /storage 0 declares 7 F32 elements \(28 bytes\) but record archive\/data\/0 holds 24 bytes/, FormatError],
    ["an expanded tensor too large to copy out", () =>
      torchZip(stateDictPickle([{ name: "x", key: "0", cls: "FloatStorage", numel: 1, size: [1 << 20, 1 << 20], stride: [0, 0] }]), { 0: f32Bytes([1]) }),
    /refusing/, FormatError],
    ["a big-endian checkpoint", () => torchZip(stateDictPickle(LAYOUTS), LAYOUT_STORAGES, { byteorder: "big" }), /byte order is "big"/, FormatError],
    ["a deflated storage record that inflates past its declared size", () => {
      const b = Buffer.from(makeZip([
        { name: "archive/data.pkl", data: stateDictPickle([{ name: "x", key: "0", cls: "ByteStorage", numel: 1000, size: [1000], stride: [1] }]) },
        { name: "archive/data/0", data: new Uint8Array(100_000), method: 8 },
      ]));
      const cd = centralEntry(b, "archive/data/0");
      b.writeUInt32LE(1000, b.readUInt32LE(cd + 42) + 22);
      b.writeUInt32LE(1000, cd + 24);
      return b;
    }, /zip record archive\/data\/0/, FormatError],
  ];
  for (const [what, make, message, type] of cases) {
    it(`refuses ${what}`, () => {
      const bytes = make();
      const file = onDisk(bytes, "evil.bin");
      const e = thrown(() => readAll(pytorchSource(file)));
      expect(e).toBeInstanceOf(type);
      expect(e.message.startsWith(`${file}: `), e.message).toBe(true);
      expect(e.message).toMatch(message);
      expect(streamed(file)).toBe(whole(file, bytes));
    });
  }

  it("gives the in-memory error for every cut of a checkpoint (classic and ZIP64)", () => {
    for (const zip64 of [false, true]) {
      const bytes = torchZip(stateDictPickle(LAYOUTS), LAYOUT_STORAGES, { zip64, byteorder: "little" });
      for (let cut = 0; cut < bytes.length; cut += 5) {
        const file = onDisk(bytes.subarray(0, cut), "cut.bin");
        const got = streamed(file);
        expect(typeof got, `cut at ${cut}`).toBe("string");
        expect(got, `cut at ${cut}`).toMatch(/^FormatError: /);
        expect(got, `cut at ${cut}`).toBe(whole(file, bytes.subarray(0, cut)));
      }
    }
  });

  it("gives the in-memory result for random corruptions of fixtures/pytorch/strided.bin", () => {
    const bytes = new Uint8Array(readFileSync("fixtures/pytorch/strided.bin"));
    let seed = 11;
    const rand = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let trial = 0; trial < 1500; trial++) {
      const copy = bytes.slice();
      for (let k = 0; k <= trial % 3; k++) copy[rand(copy.length)] = rand(256);
      const got = streamed("bad.bin", bufferSource(copy));
      expect(got, `trial ${trial}`).toEqual(whole("bad.bin", copy));
      if (typeof got === "string") expect(got, `trial ${trial}`).toMatch(/^(FormatError|UnsafeFileError): bad\.bin: /);
    }
  });
});

describe("pytorchSource reads each byte once, and storages only when their tensors are read", () => {
  const file = "fixtures/models/f16-8head-bin/pytorch_model.bin";
  const size = statSync(file).size;

  it("opens by reading the directory and the pickle only, then each tensor with one read of exactly its bytes", () => {
    const disk = fileSource(file);
    const bytes = counting(disk);
    try {
      const src = pytorchSource(file, bytes);
      const atOpen = bytes.bytes;
      expect(atOpen).toBeLessThan(size / 100); // ~10 KB of a 3.5 MB file
      let tensorBytes = 0;
      for (const name of src.names()) {
        const { dtype, shape } = src.info(name);
        const n = elementCount(shape) * DTYPE_BYTES[dtype];
        const [calls, read] = [bytes.calls, bytes.bytes];
        src.read(name, new Uint8Array(n));
        expect({ name, calls: bytes.calls - calls, bytes: bytes.bytes - read }).toEqual({ name, calls: n > 0 ? 1 : 0, bytes: n });
        tensorBytes += n;
      }
      // every storage byte read once: the file is its storages plus a few KB of zip and pickle
      expect(bytes.bytes).toBe(atOpen + tensorBytes);
      expect(tensorBytes).toBeLessThanOrEqual(size);
      expect(tensorBytes).toBeGreaterThan(0.98 * size);
    } finally {
      disk.close();
    }
  });

  it("reads a ZIP64 archive's directory without reading its records", () => {
    const big = f32Bytes(Array.from({ length: 50_000 }, (_, i) => i));
    const bytes = counting(bufferSource(torchZip(stateDictPickle([{ name: "x", key: "0", cls: "FloatStorage", numel: 50_000, size: [50_000], stride: [1] }]), { 0: big }, { zip64: true })));
    const src = pytorchSource("m.bin", bytes);
    expect(bytes.bytes).toBeLessThan(2000);
    const dst = new Uint8Array(big.length);
    src.read("x", dst);
    expect(Buffer.compare(dst, big)).toBe(0);
  });

  it("openCheckpoint reads a .bin's tensors from the file when asked, not at open", () => {
    const d = join(root, String(files++));
    mkdirSync(d);
    const bin = join(d, "pytorch_model.bin");
    copyFileSync(file, bin);
    const ckpt = openCheckpoint(d);
    try {
      expect(ckpt.format).toBe("pytorch");
      // Overwrite score.weight's storage on disk after opening: the read must see the new bytes.
      const src = ckpt.source;
      const { dtype, shape } = src.info("score.weight");
      const n = elementCount(shape) * DTYPE_BYTES[dtype];
      const before = new Uint8Array(n);
      src.read("score.weight", before);
      const patched = Buffer.from(readFileSync(bin));
      const at = patched.indexOf(Buffer.from(before));
      expect(at).toBeGreaterThan(0);
      patched.fill(0x41, at, at + n);
      writeFileSync(bin, patched); // same inode: the open descriptor sees the new bytes
      const after = new Uint8Array(n);
      src.read("score.weight", after);
      expect(Buffer.from(after)).toEqual(Buffer.alloc(n, 0x41));
    } finally {
      ckpt.close();
    }
  });
});

describe("openCheckpoint on sharded .bin files", () => {
  it("reads every shard's tensors as each shard alone gives them, listing the index then the shards", () => {
    const ckpt = openCheckpoint("fixtures/models/sharded-bin");
    try {
      expect(ckpt.files).toEqual([
        "fixtures/models/sharded-bin/pytorch_model.bin.index.json",
        "fixtures/models/sharded-bin/pytorch_model-00001-of-00002.bin",
        "fixtures/models/sharded-bin/pytorch_model-00002-of-00002.bin",
      ]);
      const want = new Map([...checkpointTensors(ckpt.files[1]).tensors, ...checkpointTensors(ckpt.files[2]).tensors]);
      const got = readAll(ckpt.source);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [name, t] of want) expect(got.get(name), name).toEqual(seen(t.dtype, t.shape, t.bytes));
    } finally {
      ckpt.close();
    }
  });

  it("refuses an index that puts a tensor in a .bin shard that does not hold it", () => {
    const d = join(root, String(files++));
    mkdirSync(d);
    const bin = (...names: string[]): Uint8Array =>
      torchZip(stateDictPickle(names.map((name) => ({ name, key: "0", cls: "FloatStorage", numel: 1, size: [1], stride: [1] }))), { 0: f32Bytes([1]) });
    writeFileSync(join(d, "s1.bin"), bin("a"));
    writeFileSync(join(d, "s2.bin"), bin("a", "c"));
    const index = (weightMap: Record<string, string>): void => writeFileSync(join(d, "pytorch_model.bin.index.json"), JSON.stringify({ weight_map: weightMap }));
    index({ a: "s1.bin", b: "s2.bin" });
    expect(thrown(() => openCheckpoint(d)).message).toMatch(/puts tensor b in s2\.bin, which does not contain it/);
    index({ a: "s1.bin", c: "s2.bin" });
    expect(thrown(() => openCheckpoint(d)).message).toMatch(/s2\.bin: tensor a is also in shard s1\.bin/);
  });
});
