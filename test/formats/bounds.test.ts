/**
 * Bounded reads of PyTorch checkpoints: what a hostile file may declare or append costs nothing.
 * A zip record is inflated only as far as its pickle or its tensors need (a data.pkl followed by
 * 256 MiB of deflated zeros, a storage record padded by 256 MiB); a legacy (pre-1.6) file is read
 * like the zip format, by position, never whole. Each is checked against the memory it takes
 * (ArrayBuffers, which is where file and inflated bytes live) and against the unpadded file's tensors.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { pytorchSource } from "../../src/formats/pytorch.js";
import { DTYPE_BYTES, elementCount } from "../../src/formats/tensor.js";
import { readZip } from "../../src/formats/zip.js";
import { FIXTURES } from "../helpers/cli.js";
import { tempDir } from "../helpers/fuzz-models.js";
import { f32Bytes, legacyCheckpoint, makeZip, type ZipRecord } from "../helpers/zip-writer.js";

const tmp = tempDir("bounds");
afterAll(() => tmp.cleanup());
const FIXTURE = join(FIXTURES, "models", "f16-8head-bin", "pytorch_model.bin");
const PAD = 256 << 20;
// Writing the padded files (deflating 256 MiB) takes seconds on a busy machine.
const SLOW = 300_000;

/** Every tensor's bytes, read through the streaming source (what the loader uses). */
function tensorsOf(file: string): Map<string, Buffer> {
  const src = pytorchSource(file);
  try {
    return new Map(src.names().map((name) => {
      const { dtype, shape } = src.info(name);
      const dst = new Uint8Array(elementCount(shape) * DTYPE_BYTES[dtype]);
      src.read(name, dst);
      return [name, Buffer.from(dst)];
    }));
  } finally {
    src.close();
  }
}

/** Same names, same bytes (Buffer.equals: a deep toEqual over megabytes takes minutes). */
function expectSameTensors(got: Map<string, Buffer>, want: Map<string, Buffer>): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, bytes] of want) expect(got.get(name)!.equals(bytes), name).toBe(true);
}

/** The fixture's records with one changed, written to a file of its own. */
function rewrite(name: string, change: (r: ZipRecord) => ZipRecord): string {
  const zip = readZip(FIXTURE, new Uint8Array(readFileSync(FIXTURE)));
  const records = zip.names().map((n) => ({ name: n, data: zip.read(n).slice() }));
  const file = join(tmp.dir, `${name.replace(/\W/g, "_")}.bin`);
  writeFileSync(file, makeZip(records.map((r) => (r.name.endsWith(name) ? change(r) : r))));
  return file;
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + PAD);
  out.set(data);
  return out;
}

/** Reads every tensor of `file`; returns them and the ArrayBuffer bytes that grew meanwhile. */
function measure(file: string): { tensors: Map<string, Buffer>; grew: number } {
  const before = process.memoryUsage().arrayBuffers;
  const tensors = tensorsOf(file);
  return { tensors, grew: process.memoryUsage().arrayBuffers - before };
}

describe("zip records are inflated only as far as they are needed", () => {
  const expected = tensorsOf(FIXTURE);

  it("a data.pkl followed by 256 MiB of deflated zeros loads, inflating about 1 MiB of them", () => {
    const file = rewrite("data.pkl", (r) => ({ ...r, data: padded(r.data), method: 8 }));
    const { tensors, grew } = measure(file);
    expectSameTensors(tensors, expected);
    expect(grew).toBeLessThan(32 << 20);
  }, SLOW);

  it("a storage record padded by 256 MiB of deflated zeros inflates only its storage's bytes", () => {
    const file = rewrite("data/0", (r) => ({ ...r, data: padded(r.data), method: 8 }));
    const { tensors, grew } = measure(file);
    expectSameTensors(tensors, expected);
    expect(grew).toBeLessThan(32 << 20);
  }, SLOW);
});

describe("a legacy (pre-1.6) checkpoint is read by position, like the zip format", () => {
  it("opening a 64 MiB legacy file reads its pickles, not its storages", () => {
    const n = 16 << 20; // 16 Mi F32 elements: 64 MiB
    const values = new Float32Array(n);
    for (let i = 0; i < n; i += 4096) values[i] = i;
    const file = join(tmp.dir, "legacy.bin");
    writeFileSync(file, legacyCheckpoint(
      [{ name: "w", key: "0", cls: "FloatStorage", numel: n, size: [n], stride: [1] }, { name: "b", key: "1", cls: "FloatStorage", numel: 2, size: [2], stride: [1] }],
      { "0": new Uint8Array(values.buffer), "1": f32Bytes([1, 2]) }, { "0": 4, "1": 4 },
    ));
    const before = process.memoryUsage().arrayBuffers;
    const src = pytorchSource(file);
    try {
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 << 20);
      const b = new Uint8Array(8);
      src.read("b", b);
      expect(Buffer.from(b)).toEqual(Buffer.from(f32Bytes([1, 2])));
      const w = new Uint8Array(4 * n);
      src.read("w", w);
      expect(Buffer.compare(w, new Uint8Array(values.buffer))).toBe(0);
    } finally {
      src.close();
    }
  });
});
