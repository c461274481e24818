/**
 * A ZIP reader over bytes already in memory (the whole file read once), enough for PyTorch
 * checkpoints: `torch.save` writes an uncompressed ZIP (ZIP64 past 4 GiB) whose records hold the
 * pickle and the raw tensor storages.
 *
 * The central directory is the authority for names, sizes and offsets; each local header is read
 * only to find where its data starts, and must agree with the central entry on the name. Every
 * offset and size is checked against the file before a byte is touched. Stored records come back
 * as zero-copy views of the input; deflated ones are inflated with a cap at their declared size;
 * anything else (other methods, encryption) is refused.
 */
import { inflateRawSync } from "node:zlib";
import { FormatError, UnsafeFileError } from "../errors.js";

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

/** True if the bytes start like a ZIP archive (a local header, or an empty archive's EOCD). */
export function isZip(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  const sig = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
  return sig === SIG_LOCAL || sig === SIG_EOCD;
}

export class ZipArchive {
  /** Entries in central-directory order, by name. */
  readonly entries: Map<string, ZipEntry>;
  private readonly view: DataView;

  /** Parses the central directory; `file` only serves error messages. */
  constructor(readonly file: string, readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.entries = this.readCentralDirectory();
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The record's uncompressed bytes: a view of the input when stored, a fresh buffer when deflated. */
  read(name: string): Uint8Array {
    const entry = this.entries.get(name);
    if (!entry) throw new FormatError(this.file, `zip archive has no record ${name}`);
    const data = this.rawData(entry);
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.uncompressedSize) {
        throw this.error(`zip record ${name} is stored but declares ${entry.compressedSize} bytes compressed and ${entry.uncompressedSize} uncompressed`);
      }
      return data;
    }
    // method 8, checked by rawData
    let out: Buffer;
    try {
      // maxOutputLength must be >= 1; an empty record that inflates to anything is caught below.
      out = inflateRawSync(data, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (e) {
      throw this.error(`zip record ${name} does not inflate to its declared ${entry.uncompressedSize} bytes (${(e as Error).message})`);
    }
    if (out.length !== entry.uncompressedSize) {
      throw this.error(`zip record ${name} inflates to ${out.length} bytes, its header declares ${entry.uncompressedSize}`);
    }
    if (crc32(out) !== entry.crc32) throw this.error(`zip record ${name} fails its CRC-32 check`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  // ---- internals ----

  private error(detail: string): FormatError {
    return new FormatError(this.file, detail);
  }

  private u16(at: number): number {
    return this.view.getUint16(at, true);
  }

  private u32(at: number): number {
    return this.view.getUint32(at, true);
  }

  private u64(at: number, what: string): number {
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`zip ${what} ${v} is too large`);
    return Number(v);
  }

  /** Throws unless [start, start+length) lies inside the file. */
  private need(start: number, length: number, what: string): void {
    if (start < 0 || length < 0 || start + length > this.bytes.length) {
      throw this.error(`zip ${what} (bytes ${start}..${start + length}) lies outside the file (${this.bytes.length} bytes); the archive is truncated or corrupt`);
    }
  }

  /** Finds the end-of-central-directory record: the last signature whose comment ends at end of file. */
  private findEocd(): number {
    const n = this.bytes.length;
    if (n < EOCD_SIZE) throw this.error(`file is ${n} bytes, too short to be a zip archive (truncated?)`);
    const lowest = Math.max(0, n - EOCD_SIZE - U16_MAX);
    for (let i = n - EOCD_SIZE; i >= lowest; i--) {
      if (this.u32(i) === SIG_EOCD && i + EOCD_SIZE + this.u16(i + 20) === n) return i;
    }
    throw this.error("zip end-of-central-directory record not found (the archive is truncated or not a zip file)");
  }

  private readCentralDirectory(): Map<string, ZipEntry> {
    const eocd = this.findEocd();
    let disk = this.u16(eocd + 4);
    let cdDisk = this.u16(eocd + 6);
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);

    // ZIP64: the locator sits right before the EOCD; when present, the EOCD64 record it points to
    // holds the real values (the EOCD fields then read 0xFFFF/0xFFFFFFFF).
    const locator = eocd - EOCD64_LOCATOR_SIZE;
    const hasLocator = locator >= 0 && this.u32(locator) === SIG_EOCD64_LOCATOR;
    const saturated = count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
    if (hasLocator) {
      const at = this.u64(locator + 8, "EOCD64 offset");
      this.need(at, EOCD64_MIN_SIZE, "ZIP64 end-of-central-directory record");
      if (this.u32(at) !== SIG_EOCD64) throw this.error(`zip ZIP64 end-of-central-directory record not found at offset ${at}`);
      disk = this.u32(at + 16);
      cdDisk = this.u32(at + 20);
      count = this.u64(at + 32, "entry count");
      cdSize = this.u64(at + 40, "central directory size");
      cdOffset = this.u64(at + 48, "central directory offset");
    } else if (saturated) {
      throw this.error("zip end-of-central-directory record has ZIP64 markers but no ZIP64 locator (truncated or corrupt archive)");
    }
    if (disk !== 0 || cdDisk !== 0) throw this.error("multi-disk zip archives are not supported");
    this.need(cdOffset, cdSize, "central directory");
    if (count * CENTRAL_SIZE > cdSize) {
      throw this.error(`zip central directory declares ${count} entries but is only ${cdSize} bytes`);
    }

    const entries = new Map<string, ZipEntry>();
    const end = cdOffset + cdSize;
    let p = cdOffset;
    const decoder = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_SIZE > end) throw this.error(`zip central directory ends inside entry ${i}`);
      if (this.u32(p) !== SIG_CENTRAL) throw this.error(`zip central directory entry ${i} at offset ${p} has a bad signature`);
      const flags = this.u16(p + 8);
      const method = this.u16(p + 10);
      const crc = this.u32(p + 16);
      let compressedSize = this.u32(p + 20);
      let uncompressedSize = this.u32(p + 24);
      const nameLen = this.u16(p + 28);
      const extraLen = this.u16(p + 30);
      const commentLen = this.u16(p + 32);
      let localHeaderOffset = this.u32(p + 42);
      const varEnd = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
      if (varEnd > end) throw this.error(`zip central directory entry ${i} runs past the directory's end`);
      let name: string;
      try {
        name = decoder.decode(this.bytes.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen));
      } catch {
        throw this.error(`zip central directory entry ${i} has a name that is not valid UTF-8`);
      }

      // The zip64 extra field holds, in this order, only the fields saturated in the fixed header.
      const zip64 = this.findExtra(p + CENTRAL_SIZE + nameLen, extraLen, name);
      if (uncompressedSize === U32_MAX || compressedSize === U32_MAX || localHeaderOffset === U32_MAX) {
        if (zip64 === undefined) throw this.error(`zip record ${name} has ZIP64 markers but no ZIP64 extra field`);
        let q = zip64.start;
        const take = (what: string): number => {
          if (q + 8 > zip64.end) throw this.error(`zip record ${name}: ZIP64 extra field is too short for its ${what}`);
          const v = this.u64(q, `${what} of record ${name}`);
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

  /** The bounds of the ZIP64 extra field's payload within an extra block, if there is one. */
  private findExtra(start: number, length: number, name: string): { start: number; end: number } | undefined {
    const end = start + length;
    let p = start;
    while (p + 4 <= end) {
      const id = this.u16(p);
      const size = this.u16(p + 2);
      if (p + 4 + size > end) throw this.error(`zip record ${name} has a malformed extra field`);
      if (id === ZIP64_EXTRA_ID) return { start: p + 4, end: p + 4 + size };
      p += 4 + size;
    }
    return undefined;
  }

  /** The record's bytes as stored in the file, after every check on the local header. */
  private rawData(entry: ZipEntry): Uint8Array {
    const { name } = entry;
    if (entry.flags & 0x1) throw new UnsafeFileError(this.file, `zip record ${name} is encrypted; refusing to read it`);
    if (entry.method !== 0 && entry.method !== 8) {
      throw new UnsafeFileError(this.file, `zip record ${name} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
    }
    const at = entry.localHeaderOffset;
    this.need(at, LOCAL_SIZE, `local header of record ${name}`);
    if (this.u32(at) !== SIG_LOCAL) throw this.error(`zip record ${name}: no local header at offset ${at}`);
    const nameLen = this.u16(at + 26);
    const extraLen = this.u16(at + 28);
    this.need(at + LOCAL_SIZE, nameLen + extraLen, `local header of record ${name}`);
    const localName = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + at + LOCAL_SIZE, nameLen).toString("utf8");
    if (localName !== name) {
      throw this.error(`zip record ${name}: its local header names it ${JSON.stringify(localName)}`);
    }
    // Local sizes are zero when a data descriptor follows (flag bit 3); otherwise they must agree.
    if (!(entry.flags & 0x8)) {
      let localCompressed = this.u32(at + 18);
      let localUncompressed = this.u32(at + 22);
      if (localCompressed === U32_MAX || localUncompressed === U32_MAX) {
        const zip64 = this.findExtra(at + LOCAL_SIZE + nameLen, extraLen, name);
        if (zip64 === undefined || zip64.end - zip64.start < 16) {
          throw this.error(`zip record ${name}: local header has ZIP64 markers but no ZIP64 extra field`);
        }
        localUncompressed = this.u64(zip64.start, `local uncompressed size of record ${name}`);
        localCompressed = this.u64(zip64.start + 8, `local compressed size of record ${name}`);
      }
      if (localCompressed !== entry.compressedSize || localUncompressed !== entry.uncompressedSize) {
        throw this.error(`zip record ${name}: local header sizes (${localCompressed}/${localUncompressed}) disagree with the central directory (${entry.compressedSize}/${entry.uncompressedSize})`);
      }
    }
    const dataStart = at + LOCAL_SIZE + nameLen + extraLen;
    this.need(dataStart, entry.compressedSize, `data of record ${name}`);
    return this.bytes.subarray(dataStart, dataStart + entry.compressedSize);
  }
}

/** Parses a ZIP archive held in memory. */
export function readZip(file: string, bytes: Uint8Array): ZipArchive {
  return new ZipArchive(file, bytes);
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

/** CRC-32 (the ZIP/PNG polynomial). Only deflated records are checked: stored ones are views, left untouched. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
