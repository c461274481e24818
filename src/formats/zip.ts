/**
 * A ZIP reader, enough for PyTorch checkpoints: `torch.save` writes an uncompressed ZIP (ZIP64
 * past 4 GiB) whose records hold the pickle and the raw tensor storages.
 *
 * The archive's bytes come from a `ByteSource` (src/platform/bytes.ts): a buffer already in
 * memory, or reads by range of a file (a descriptor in Node, a Blob in a browser). The same parser serves both; from a file it reads only the end records, the central
 * directory and the local header of each record asked for, so a 6 GB checkpoint is opened by
 * reading a few kilobytes, and a storage's bytes are read when (and where) its tensor is wanted.
 *
 * The central directory is the authority for names, sizes and offsets; each local header is read
 * only to find where its data starts, and must agree with the central entry on the name. Every
 * offset and size is checked against the file before a byte is touched. Stored records are
 * windows on the archive (zero-copy views when it is in memory); deflated ones are inflated with
 * a cap at their declared size; anything else (other methods, encryption) is refused.
 */
import { Inflate } from "fflate";
import { FormatError, UnsafeFileError } from "../errors.js";
import { bufferSource, windowOf, type ByteSource } from "../platform/bytes.js";

/** A source whose bytes are produced on first use (a deflated record is inflated only when read). */
function lazySource(size: number, load: () => ByteSource): ByteSource {
  let src: ByteSource | undefined;
  return {
    size,
    read: (offset, length) => (src ??= load()).read(offset, length),
    readInto: (offset, dst) => (src ??= load()).readInto(offset, dst),
  };
}

// ---- the archive ----

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate; anything else is refused when read. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const EOCD64_LOCATOR_SIZE = 20;
const EOCD64_MIN_SIZE = 56;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const ZIP64_EXTRA_ID = 0x0001;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/** How much of the file's end is read first when looking for the end record: enough unless the archive has a long comment. */
const SHORT_TAIL = 1024;
/** Compressed bytes inflated per step: deflate expands at most ~1032×, so one step yields at most ~4 MB. */
const INFLATE_CHUNK = 4096;

/** True if the bytes start like a ZIP archive (a local header, or an empty archive's EOCD). */
export function isZip(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  const sig = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
  return sig === SIG_LOCAL || sig === SIG_EOCD;
}

/** Bytes [at, at + bytes.length) of the archive, with little-endian accessors by file offset. */
class Span {
  private readonly view: DataView;
  constructor(readonly at: number, readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u16(p: number): number {
    return this.view.getUint16(p - this.at, true);
  }
  u32(p: number): number {
    return this.view.getUint32(p - this.at, true);
  }
  big64(p: number): bigint {
    return this.view.getBigUint64(p - this.at, true);
  }
  sub(start: number, end: number): Uint8Array {
    return this.bytes.subarray(start - this.at, end - this.at);
  }
}

export class ZipArchive {
  /** Entries in central-directory order, by name. */
  readonly entries: Map<string, ZipEntry>;

  /** Parses the central directory; `file` only serves error messages. */
  constructor(readonly file: string, readonly source: ByteSource) {
    this.entries = this.readCentralDirectory();
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * The record's uncompressed bytes, or only its first `limit` (a pickle is read up to its STOP,
   * so padding after it is never inflated): a view of the input when stored in memory, a fresh
   * buffer otherwise.
   */
  read(name: string, limit = Infinity): Uint8Array {
    const record = this.record(name, limit);
    return record.read(0, record.size);
  }

  /**
   * The record's uncompressed bytes (the first `limit` of them) as a source of their own, after
   * every check on its local header: a window on the archive when stored (nothing of the data
   * read yet), inflated on first read when deflated — and then only up to `limit`, so a record
   * that declares, or really holds, gigabytes beyond what its tensors use costs only those bytes.
   */
  record(name: string, limit = Infinity): ByteSource {
    const entry = this.entries.get(name);
    if (!entry) throw new FormatError(this.file, `zip archive has no record ${name}`);
    const dataStart = this.dataStart(entry);
    const size = Math.min(limit, entry.uncompressedSize);
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.uncompressedSize) {
        throw this.error(`zip record ${name} is stored but declares ${entry.compressedSize} bytes compressed and ${entry.uncompressedSize} uncompressed`);
      }
      return windowOf(this.source, dataStart, size);
    }
    // method 8, checked by dataStart
    return lazySource(size, () => bufferSource(this.inflate(entry, dataStart, size)));
  }

  // ---- internals ----

  private error(detail: string): FormatError {
    return new FormatError(this.file, detail);
  }

  /**
   * The first `want` bytes a deflated record inflates to. The compressed bytes are read and
   * inflated a few KB at a time (fflate's streaming inflate, the same in Node and browsers) and
   * inflating stops once `want` bytes are out, so memory is `want` plus a few MB whatever the
   * record declares. When all of it is wanted, it must come to exactly its declared size and
   * match its CRC-32.
   */
  private inflate(entry: ZipEntry, dataStart: number, want: number): Uint8Array {
    const { name, compressedSize, uncompressedSize } = entry;
    const whole = want === uncompressedSize;
    // Kept as they come (not in a buffer of the declared size: a record may declare 4 GB and hold 64 bytes).
    const kept: Uint8Array[] = [];
    let total = 0; // bytes inflated, kept or not
    const inflater = new Inflate((chunk) => {
      if (total < want) kept.push(chunk.slice(0, Math.min(chunk.length, want - total)));
      total += chunk.length;
    });
    try {
      for (let at = 0; at < compressedSize && !(total >= want && (!whole || total > want)); ) {
        const n = Math.min(INFLATE_CHUNK, compressedSize - at);
        inflater.push(this.source.read(dataStart + at, n), at + n === compressedSize);
        at += n;
      }
      if (compressedSize === 0) inflater.push(new Uint8Array(0), true);
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw this.error(`zip record ${name} does not inflate to its declared ${uncompressedSize} bytes (${(e as Error).message})`);
    }
    if (whole ? total !== uncompressedSize : total < want) {
      throw this.error(`zip record ${name} inflates to ${total > want ? `more than ${want}` : total} bytes, its header declares ${uncompressedSize}`);
    }
    const out = new Uint8Array(want);
    let at = 0;
    for (const chunk of kept.splice(0)) {
      out.set(chunk, at);
      at += chunk.length;
    }
    if (whole && crc32(out) !== entry.crc32) throw this.error(`zip record ${name} fails its CRC-32 check`);
    return out;
  }

  /** Reads bytes [start, start+length) after checking they lie inside the file. */
  private span(start: number, length: number, what: string): Span {
    this.need(start, length, what);
    return new Span(start, this.source.read(start, length));
  }

  private u64(s: Span, at: number, what: string): number {
    const v = s.big64(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`zip ${what} ${v} is too large`);
    return Number(v);
  }

  /** Throws unless [start, start+length) lies inside the file. */
  private need(start: number, length: number, what: string): void {
    const n = this.source.size;
    if (start < 0 || length < 0 || start + length > n) {
      throw this.error(`zip ${what} (bytes ${start}..${start + length}) lies outside the file (${n} bytes); the archive is truncated or corrupt`);
    }
  }

  /**
   * Finds the end-of-central-directory record: the last signature whose comment ends at end of
   * file. torch writes no comment, so the last kilobyte is read first, and the whole 64 KiB a
   * comment may take only if the record is not in it.
   */
  private findEocd(): { eocd: number; tail: Span } {
    const n = this.source.size;
    if (n < EOCD_SIZE) throw this.error(`file is ${n} bytes, too short to be a zip archive (truncated?)`);
    const lowest = Math.max(0, n - EOCD_SIZE - U16_MAX);
    for (const want of [SHORT_TAIL, EOCD_SIZE + U16_MAX]) {
      const tail = this.span(Math.max(0, n - want), Math.min(n, want), "end of archive");
      for (let i = n - EOCD_SIZE; i >= Math.max(lowest, tail.at); i--) {
        if (tail.u32(i) === SIG_EOCD && i + EOCD_SIZE + tail.u16(i + 20) === n) return { eocd: i, tail };
      }
      if (tail.at <= lowest) break;
    }
    throw this.error("zip end-of-central-directory record not found (the archive is truncated or not a zip file)");
  }

  private readCentralDirectory(): Map<string, ZipEntry> {
    const { eocd, tail } = this.findEocd();
    let disk = tail.u16(eocd + 4);
    let cdDisk = tail.u16(eocd + 6);
    let count = tail.u16(eocd + 10);
    let cdSize = tail.u32(eocd + 12);
    let cdOffset = tail.u32(eocd + 16);

    // ZIP64: the locator sits right before the EOCD; when present, the EOCD64 record it points to
    // holds the real values (the EOCD fields then read 0xFFFF/0xFFFFFFFF).
    const at = eocd - EOCD64_LOCATOR_SIZE;
    const locator = at >= 0 ? this.span(at, EOCD64_LOCATOR_SIZE, "ZIP64 locator") : undefined;
    const saturated = count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
    if (locator && locator.u32(at) === SIG_EOCD64_LOCATOR) {
      const e64At = this.u64(locator, at + 8, "EOCD64 offset");
      const e64 = this.span(e64At, EOCD64_MIN_SIZE, "ZIP64 end-of-central-directory record");
      if (e64.u32(e64At) !== SIG_EOCD64) throw this.error(`zip ZIP64 end-of-central-directory record not found at offset ${e64At}`);
      disk = e64.u32(e64At + 16);
      cdDisk = e64.u32(e64At + 20);
      count = this.u64(e64, e64At + 32, "entry count");
      cdSize = this.u64(e64, e64At + 40, "central directory size");
      cdOffset = this.u64(e64, e64At + 48, "central directory offset");
    } else if (saturated) {
      throw this.error("zip end-of-central-directory record has ZIP64 markers but no ZIP64 locator (truncated or corrupt archive)");
    }
    if (disk !== 0 || cdDisk !== 0) throw this.error("multi-disk zip archives are not supported");
    this.need(cdOffset, cdSize, "central directory");
    if (count * CENTRAL_SIZE > cdSize) {
      throw this.error(`zip central directory declares ${count} entries but is only ${cdSize} bytes`);
    }

    const cd = this.span(cdOffset, cdSize, "central directory");
    const entries = new Map<string, ZipEntry>();
    const end = cdOffset + cdSize;
    let p = cdOffset;
    const decoder = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_SIZE > end) throw this.error(`zip central directory ends inside entry ${i}`);
      if (cd.u32(p) !== SIG_CENTRAL) throw this.error(`zip central directory entry ${i} at offset ${p} has a bad signature`);
      const flags = cd.u16(p + 8);
      const method = cd.u16(p + 10);
      const crc = cd.u32(p + 16);
      let compressedSize = cd.u32(p + 20);
      let uncompressedSize = cd.u32(p + 24);
      const nameLen = cd.u16(p + 28);
      const extraLen = cd.u16(p + 30);
      const commentLen = cd.u16(p + 32);
      let localHeaderOffset = cd.u32(p + 42);
      const varEnd = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
      if (varEnd > end) throw this.error(`zip central directory entry ${i} runs past the directory's end`);
      let name: string;
      try {
        name = decoder.decode(cd.sub(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen));
      } catch {
        throw this.error(`zip central directory entry ${i} has a name that is not valid UTF-8`);
      }

      // The zip64 extra field holds, in this order, only the fields saturated in the fixed header.
      const zip64 = this.findExtra(cd, p + CENTRAL_SIZE + nameLen, extraLen, name);
      if (uncompressedSize === U32_MAX || compressedSize === U32_MAX || localHeaderOffset === U32_MAX) {
        if (zip64 === undefined) throw this.error(`zip record ${name} has ZIP64 markers but no ZIP64 extra field`);
        let q = zip64.start;
        const take = (what: string): number => {
          if (q + 8 > zip64.end) throw this.error(`zip record ${name}: ZIP64 extra field is too short for its ${what}`);
          const v = this.u64(cd, q, `${what} of record ${name}`);
          q += 8;
          return v;
        };
        if (uncompressedSize === U32_MAX) uncompressedSize = take("uncompressed size");
        if (compressedSize === U32_MAX) compressedSize = take("compressed size");
        if (localHeaderOffset === U32_MAX) localHeaderOffset = take("local header offset");
      }

      if (entries.has(name)) throw this.error(`zip archive has two records named ${name}`);
      entries.set(name, { name, method, flags, crc32: crc, compressedSize, uncompressedSize, localHeaderOffset });
      p = varEnd;
    }
    return entries;
  }

  /** The bounds of the ZIP64 extra field's payload within an extra block of `s`, if there is one. */
  private findExtra(s: Span, start: number, length: number, name: string): { start: number; end: number } | undefined {
    const end = start + length;
    let p = start;
    while (p + 4 <= end) {
      const id = s.u16(p);
      const size = s.u16(p + 2);
      if (p + 4 + size > end) throw this.error(`zip record ${name} has a malformed extra field`);
      if (id === ZIP64_EXTRA_ID) return { start: p + 4, end: p + 4 + size };
      p += 4 + size;
    }
    return undefined;
  }

  /** Where the record's bytes start in the file, after every check on the local header. */
  private dataStart(entry: ZipEntry): number {
    const { name } = entry;
    if (entry.flags & 0x1) throw new UnsafeFileError(this.file, `zip record ${name} is encrypted; refusing to read it`);
    if (entry.method !== 0 && entry.method !== 8) {
      throw new UnsafeFileError(this.file, `zip record ${name} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
    }
    const at = entry.localHeaderOffset;
    const fixed = this.span(at, LOCAL_SIZE, `local header of record ${name}`);
    if (fixed.u32(at) !== SIG_LOCAL) throw this.error(`zip record ${name}: no local header at offset ${at}`);
    const nameLen = fixed.u16(at + 26);
    const extraLen = fixed.u16(at + 28);
    const rest = this.span(at + LOCAL_SIZE, nameLen + extraLen, `local header of record ${name}`);
    const nameBytes = rest.sub(at + LOCAL_SIZE, at + LOCAL_SIZE + nameLen);
    const localName = new TextDecoder().decode(nameBytes);
    if (localName !== name) {
      throw this.error(`zip record ${name}: its local header names it ${JSON.stringify(localName)}`);
    }
    // Local sizes are zero when a data descriptor follows (flag bit 3); otherwise they must agree.
    if (!(entry.flags & 0x8)) {
      let localCompressed = fixed.u32(at + 18);
      let localUncompressed = fixed.u32(at + 22);
      if (localCompressed === U32_MAX || localUncompressed === U32_MAX) {
        const zip64 = this.findExtra(rest, at + LOCAL_SIZE + nameLen, extraLen, name);
        if (zip64 === undefined || zip64.end - zip64.start < 16) {
          throw this.error(`zip record ${name}: local header has ZIP64 markers but no ZIP64 extra field`);
        }
        localUncompressed = this.u64(rest, zip64.start, `local uncompressed size of record ${name}`);
        localCompressed = this.u64(rest, zip64.start + 8, `local compressed size of record ${name}`);
      }
      if (localCompressed !== entry.compressedSize || localUncompressed !== entry.uncompressedSize) {
        throw this.error(`zip record ${name}: local header sizes (${localCompressed}/${localUncompressed}) disagree with the central directory (${entry.compressedSize}/${entry.uncompressedSize})`);
      }
    }
    const dataStart = at + LOCAL_SIZE + nameLen + extraLen;
    this.need(dataStart, entry.compressedSize, `data of record ${name}`);
    return dataStart;
  }
}

/** Parses a ZIP archive held in memory, or read through `source` with positional reads. */
export function readZip(file: string, source: Uint8Array | ByteSource): ZipArchive {
  return new ZipArchive(file, source instanceof Uint8Array ? bufferSource(source) : source);
}

const CRC_TABLE = /* @__PURE__ */ (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (the ZIP/PNG polynomial). Only deflated records are checked: stored ones are read where they lie, left untouched. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
