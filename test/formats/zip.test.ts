import { describe, expect, it } from "vitest";
import { FormatError, UnsafeFileError } from "../../src/errors.js";
import { isZip, readZip } from "../../src/formats/zip.js";
import { makeZip } from "../helpers/zip-writer.js";
import { thrown } from "../helpers/thrown.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Runs `f` and returns what it threw (failing the test if it did not throw). */

describe("zip reader", () => {
  const records = [
    { name: "archive/data.pkl", data: enc("pickle bytes") },
    { name: "archive/data/0", data: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff) },
    { name: "archive/empty", data: new Uint8Array(0) },
  ];

  for (const zip64 of [false, true]) {
    it(`lists and reads stored records (${zip64 ? "ZIP64" : "classic"})`, () => {
      const bytes = makeZip(records, { zip64 });
      expect(isZip(bytes)).toBe(true);
      const zip = readZip("a.zip", bytes);
      expect(zip.names()).toEqual(records.map((r) => r.name));
      for (const r of records) expect(zip.read(r.name)).toEqual(r.data);
    });
  }

  it("returns stored records as views of the input, not copies", () => {
    const bytes = makeZip(records);
    const data = readZip("a.zip", bytes).read("archive/data/0");
    expect(data.buffer).toBe(bytes.buffer);
  });

  it("finds the end record behind an archive comment", () => {
    const bytes = makeZip(records, { comment: "written by a test; PK\x05\x06 inside the comment" });
    expect(text(readZip("a.zip", bytes).read("archive/data.pkl"))).toBe("pickle bytes");
  });

  it("inflates deflated records to their declared size", () => {
    const big = enc("abcabcabc".repeat(1000));
    for (const zip64 of [false, true]) {
      const zip = readZip("a.zip", makeZip([{ name: "x", data: big, method: 8 }], { zip64 }));
      expect(zip.entries.get("x")!.compressedSize).toBeLessThan(big.length);
      expect(zip.read("x")).toEqual(big);
    }
  });

  it("refuses a deflated record that inflates past its declared size", () => {
    const bytes = Buffer.from(makeZip([{ name: "bomb", data: new Uint8Array(100_000), method: 8 }]));
    // Lower the declared uncompressed size in both headers: the cap must stop the inflate.
    const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bytes.writeUInt32LE(1000, 22); // local header
    bytes.writeUInt32LE(1000, cd + 24); // central header
    const e = thrown(() => readZip("bomb.zip", bytes).read("bomb"));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(/^bomb\.zip: zip record bomb/);
  });

  it("refuses an unknown compression method, naming the record", () => {
    const zip = readZip("a.zip", makeZip([{ name: "archive/data/3", data: enc("xz?"), method: 14 }]));
    const e = thrown(() => zip.read("archive/data/3"));
    expect(e).toBeInstanceOf(UnsafeFileError);
    expect(e.message).toContain("archive/data/3");
    expect(e.message).toContain("method 14");
  });

  it("refuses a record whose offset points outside the file", () => {
    const bytes = Buffer.from(makeZip(records));
    const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bytes.writeUInt32LE(bytes.length + 1000, cd + 42); // local header offset of the first record
    const e = thrown(() => readZip("a.zip", bytes).read("archive/data.pkl"));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(/outside the file/);
  });

  it("refuses a record whose size runs past the end of the file", () => {
    const bytes = Buffer.from(makeZip(records));
    const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    const second = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), cd + 4);
    // record 2: make both headers claim 10 MB
    const localAt = bytes.readUInt32LE(second + 42);
    for (const [at, off] of [[localAt, 18], [localAt, 22], [second, 20], [second, 24]]) bytes.writeUInt32LE(10_000_000, at + off);
    const e = thrown(() => readZip("a.zip", bytes).read("archive/data/0"));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(/data of record archive\/data\/0 .* outside the file/);
  });

  it("refuses a central entry whose local header names a different record", () => {
    const bytes = Buffer.from(makeZip([{ name: "aaaa", data: enc("1") }]));
    bytes.write("bbbb", 30, "latin1"); // name in the local header
    expect(thrown(() => readZip("a.zip", bytes).read("aaaa")).message).toMatch(/local header names it "bbbb"/);
  });

  for (const zip64 of [false, true]) {
    it(`gives a FormatError for every truncation of an archive (${zip64 ? "ZIP64" : "classic"})`, () => {
      const bytes = makeZip(records, { zip64 });
      for (let cut = 0; cut < bytes.length; cut++) {
        const e = thrown(() => {
          const zip = readZip("cut.zip", bytes.subarray(0, cut));
          for (const n of zip.names()) zip.read(n);
        });
        expect(e, `cut at ${cut}`).toBeInstanceOf(FormatError);
        expect(e.message.startsWith("cut.zip: "), e.message).toBe(true);
      }
    });
  }

  it("says the archive is truncated when the end record is missing", () => {
    const bytes = makeZip(records);
    expect(thrown(() => readZip("t.zip", bytes.subarray(0, bytes.length - 10))).message).toMatch(/truncated/);
  });
});
