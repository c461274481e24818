/**
 * Fuzzing the ZIP reader: archives from test/zip-writer.ts with their structural fields
 * overwritten, and raw edits of the PyTorch fixture archives. Only FormatErrors (UnsafeFileError
 * included) may escape; a record that is read is exactly its declared size, and a stored one is a
 * view of the input, never a copy.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FormatError } from "../../src/errors.js";
import { readZip, type ZipArchive } from "../../src/formats/zip.js";
import { applyMutations, fuzzParams, fuzzTimeout, mutationsArb, oneIn, onlyOurErrors } from "../helpers/fuzz-common.js";
import { makeZip } from "../helpers/zip-writer.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures");

/** Opens the archive and reads every record; checks what comes back. Returns how many records were read. */
function readAll(bytes: Uint8Array): number {
  let zip: ZipArchive | undefined;
  let read = 0;
  onlyOurErrors(() => (zip = readZip("fuzz.zip", bytes)), FormatError);
  if (!zip) return 0;
  for (const [name, entry] of zip.entries) {
    let data: Uint8Array | undefined;
    onlyOurErrors(() => (data = zip!.read(name)), FormatError);
    if (!data) continue;
    read++;
    expect(data.length).toBe(entry.uncompressedSize);
    if (entry.method === 0) expect(data.buffer).toBe(bytes.buffer); // a view: stored records cost no memory
    else expect(data.length).toBeLessThanOrEqual(1032 * bytes.length + 1024); // deflate's ceiling
  }
  return read;
}

// ---- structure-aware: well-formed archives, then their fields overwritten ----

/** [offset, width] of each field after a signature, per record kind (APPNOTE 4.3.7, 4.3.12, 4.3.14-16). */
const FIELDS: Record<string, { sig: number; fields: [number, number][] }> = {
  local: { sig: 0x04034b50, fields: [[4, 2], [6, 2], [8, 2], [14, 4], [18, 4], [22, 4], [26, 2], [28, 2]] },
  central: { sig: 0x02014b50, fields: [[8, 2], [10, 2], [16, 4], [20, 4], [24, 4], [28, 2], [30, 2], [32, 2], [34, 2], [42, 4]] },
  eocd: { sig: 0x06054b50, fields: [[4, 2], [6, 2], [8, 2], [10, 2], [12, 4], [16, 4], [20, 2]] },
  eocd64: { sig: 0x06064b50, fields: [[4, 8], [16, 4], [20, 4], [24, 8], [32, 8], [40, 8], [48, 8]] },
  locator: { sig: 0x07064b50, fields: [[4, 4], [8, 8], [16, 4]] },
};
const KINDS = Object.keys(FIELDS);

function signatures(bytes: Uint8Array, sig: number): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 4 <= bytes.length; i++) if (dv.getUint32(i, true) === sig) out.push(i);
  return out;
}

type FieldValue = bigint | "len" | "len+1" | "otherSig" | "plus1" | "minus1";
const fieldValue: fc.Arbitrary<FieldValue> = fc.oneof(
  fc.constantFrom<FieldValue>(0n, 1n, 0xffffn, 0xffffffffn, 0x7fffffffn, 2n ** 40n, 2n ** 53n + 1n, 2n ** 64n - 1n, "len", "len+1", "otherSig", "plus1", "minus1"),
  fc.bigInt({ min: 0n, max: 2n ** 32n }),
);
const fieldEdit = fc.record({ kind: fc.constantFrom(...KINDS), which: fc.nat(), field: fc.nat(), value: fieldValue });

const record = fc.record({
  name: fc.oneof(
    fc.constantFrom("archive/data.pkl", "archive/data/0", "archive/data/0", "../evil", "a\nb", "", "/abs", "archive/byteorder"),
    fc.string({ maxLength: 12 }),
  ),
  data: fc.uint8Array({ maxLength: 96 }),
  method: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.constant(8) }, { weight: 1, arbitrary: fc.constantFrom(1, 12, 99, 0xffff) }),
});

const zipCase = fc.record({
  records: fc.array(record, { maxLength: 5 }),
  zip64: fc.boolean(),
  comment: oneIn(4, fc.constantFrom("", "PK\u0005\u0006 fake end record", "x".repeat(300))),
  edits: fc.array(fieldEdit, { maxLength: 4 }),
  raw: oneIn(4, mutationsArb(0, 3)),
});

function setField(bytes: Uint8Array, at: number, width: number, value: FieldValue, others: number[]): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (at + width > bytes.length) return;
  const current = width === 2 ? BigInt(dv.getUint16(at, true)) : width === 4 ? BigInt(dv.getUint32(at, true)) : dv.getBigUint64(at, true);
  let v =
    value === "len" ? BigInt(bytes.length) : value === "len+1" ? BigInt(bytes.length + 1) : value === "plus1" ? current + 1n : value === "minus1" ? current - 1n :
    value === "otherSig" ? BigInt(others[Number(current) % Math.max(1, others.length)] ?? 0) : value;
  v = BigInt.asUintN(8 * width, v);
  if (width === 2) dv.setUint16(at, Number(v), true);
  else if (width === 4) dv.setUint32(at, Number(v), true);
  else dv.setBigUint64(at, v, true);
}

describe("zip archives with structural fields overwritten", () => {
  it("readZip and read() of every record throw only FormatErrors, and return exactly the declared bytes", () => {
    let read = 0;
    fc.assert(
      fc.property(zipCase, (c) => {
        const records = c.records.map((r) => ({ name: r.name, data: r.data, method: r.method }));
        let bytes: Uint8Array = Uint8Array.from(makeZip(records, { zip64: c.zip64, comment: c.comment ?? "" }));
        const allSigs = KINDS.flatMap((k) => signatures(bytes, FIELDS[k].sig));
        for (const e of c.edits) {
          const { sig, fields } = FIELDS[e.kind];
          const at = signatures(bytes, sig);
          if (at.length === 0) continue;
          const [off, width] = fields[e.field % fields.length];
          setField(bytes, at[e.which % at.length] + off, width, e.value, allSigs);
        }
        if (c.raw) bytes = applyMutations(bytes, c.raw);
        read += readAll(bytes);
      }),
      fuzzParams(3),
    );
    expect(read).toBeGreaterThan(0); // the generator does make readable archives
  }, fuzzTimeout(3));
});

// ---- raw edits of the fixture archives ----

/** Local headers and the central directory + end records: where a reader takes offsets and sizes from. */
function hotRanges(bytes: Uint8Array): [number, number][] {
  const zip = readZip("fixture", bytes);
  const hot: [number, number][] = [...zip.entries.values()].map((e) => [e.localHeaderOffset, e.localHeaderOffset + 30 + e.name.length + 20]);
  const tail = Math.min(bytes.length, zip.entries.size * 120 + 200);
  hot.push([bytes.length - tail, bytes.length], [bytes.length - 22, bytes.length]);
  return hot;
}

const archives: [string, string, number][] = [
  ["pytorch/strided.bin", join(FIXTURES, "pytorch", "strided.bin"), 2],
  ["models/sharded-bin/pytorch_model-00002-of-00002.bin", join(FIXTURES, "models", "sharded-bin", "pytorch_model-00002-of-00002.bin"), 1],
  ["models/f16-8head-bin/pytorch_model.bin", join(FIXTURES, "models", "f16-8head-bin", "pytorch_model.bin"), 0.3],
];

describe.each(archives)("raw edits of %s", (_, file, weight) => {
  const base = Uint8Array.from(readFileSync(file));
  const hot = hotRanges(base);

  it("readZip and read() of every record throw only FormatErrors", () => {
    fc.assert(
      fc.property(mutationsArb(hot.length), (muts) => {
        readAll(applyMutations(base, muts, hot));
      }),
      fuzzParams(weight),
    );
  }, fuzzTimeout(weight));
});

// ---- pinned ----

describe("zip declarations larger than the file are refused before any allocation", () => {
  const records = [
    { name: "archive/data.pkl", data: Uint8Array.from([1, 2, 3]) },
    { name: "archive/data/0", data: new Uint8Array(64) },
  ];

  it("a record whose local header offset lies outside the file", () => {
    const bytes = Uint8Array.from(makeZip(records));
    const central = signatures(bytes, FIELDS.central.sig)[1];
    new DataView(bytes.buffer).setUint32(central + 42, 0x7fff0000, true);
    const zip = readZip("m.bin", bytes);
    const e = onlyOurErrors(() => zip.read("archive/data/0"), FormatError);
    expect(e?.message).toMatch(/^m\.bin: zip local header of record archive\/data\/0 \(bytes 2147418112\.\.2147418142\) lies outside the file \(\d+ bytes\)/);
  });

  it("a ZIP64 directory declaring 2^40 entries, and a record declaring 2^53 bytes", () => {
    const bytes = Uint8Array.from(makeZip(records, { zip64: true }));
    const dv = new DataView(bytes.buffer);
    const e64 = signatures(bytes, FIELDS.eocd64.sig)[0];
    const before = process.memoryUsage().arrayBuffers;
    const many = Uint8Array.from(bytes);
    new DataView(many.buffer).setBigUint64(e64 + 32, 2n ** 40n, true);
    expect(onlyOurErrors(() => readZip("m.bin", many), FormatError)?.message).toMatch(/declares 1099511627776 entries but is only \d+ bytes/);

    // the ZIP64 extra field of the second central entry: uncompressed size, compressed size, offset
    const central = signatures(bytes, FIELDS.central.sig)[1];
    const extra = central + 46 + "archive/data/0".length + 4;
    dv.setBigUint64(extra, 2n ** 53n - 1n, true);
    dv.setBigUint64(extra + 8, 2n ** 53n - 1n, true);
    const zip = readZip("m.bin", bytes);
    expect(onlyOurErrors(() => zip.read("archive/data/0"), FormatError)?.message).toMatch(/disagree with the central directory|lies outside the file/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it("a deflated record that declares 4 GB but holds 64 bytes", () => {
    const bytes = Uint8Array.from(makeZip([{ name: "archive/data/0", data: new Uint8Array(64), method: 8 }]));
    const dv = new DataView(bytes.buffer);
    dv.setUint32(signatures(bytes, FIELDS.local.sig)[0] + 22, 0xfffffff0, true);
    dv.setUint32(signatures(bytes, FIELDS.central.sig)[0] + 24, 0xfffffff0, true);
    const before = process.memoryUsage().arrayBuffers;
    const zip = readZip("m.bin", bytes);
    expect(onlyOurErrors(() => zip.read("archive/data/0"), FormatError)?.message).toMatch(/inflates to 64 bytes, its header declares 4294967280/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });
});
