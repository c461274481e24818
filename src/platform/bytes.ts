/**
 * Random access to a file's bytes, the one thing every reader needs from a platform. In Node a
 * `ByteSource` is positional reads on a file descriptor (src/platform/node.ts); in a browser it is
 * slices of a Blob or File read in the model's worker (src/platform/browser.ts); either way a
 * reader asks for a range and gets it without the file ever being held whole.
 */
import { FormatError } from "../errors.js";

export interface ByteSource {
  readonly size: number;
  /** `length` bytes from `offset`: a view when the bytes are in memory, a fresh buffer when read from a file. */
  read(offset: number, length: number): Uint8Array;
  /** Fills `dst` with the bytes from `offset`: for a file, reads straight into `dst`. */
  readInto(offset: number, dst: Uint8Array): void;
}

/** A ByteSource that holds a resource (a descriptor): `close()` releases it, a later read reopens it. */
export interface FileBytes extends ByteSource {
  close(): void;
}

/** What a model loader needs of a file system: a folder's files, their bytes, their text. */
export interface FileSystem {
  /** "file", "dir", or undefined when nothing is there. */
  kind(path: string): "file" | "dir" | undefined;
  /** Opens a file for reads by range; throws FormatError(path, "cannot open: ...") when it cannot. */
  open(path: string): FileBytes;
  /**
   * A whole small file (config.json, an index) as UTF-8 text, refused with a FormatError if it
   * is larger than `maxBytes` (checked before a byte is read); throws an Error whose `code` says
   * why it cannot be opened (ENOENT, ...).
   */
  readText(path: string, maxBytes: number): string;
  join(dir: string, name: string): string;
  dirname(path: string): string;
  basename(path: string): string;
}

/** Reads a whole file of at most `maxBytes` through `open`, as UTF-8 text (the one readText of every platform). */
export function readSmallText(open: (path: string) => FileBytes, path: string, maxBytes: number): string {
  const src = open(path);
  try {
    if (src.size > maxBytes) throw new FormatError(path, `is ${src.size} bytes, more than the ${maxBytes} this file may have; refusing to read it`);
    return new TextDecoder().decode(src.read(0, src.size));
  } finally {
    src.close();
  }
}

/** A reader's range check failing is a bug in the reader (every range is checked against the file first), not a bad file. */
export function checkRange(src: ByteSource, offset: number, length: number): void {
  if (!(offset >= 0 && length >= 0 && offset + length <= src.size)) {
    throw new RangeError(`internal: read of bytes ${offset}..${offset + length} outside a source of ${src.size} bytes`);
  }
}

/** A ByteSource over bytes already in memory: reads are views, never copies. */
export function bufferSource(bytes: Uint8Array): ByteSource {
  const src: ByteSource = {
    size: bytes.length,
    read(offset, length) {
      checkRange(src, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    readInto(offset, dst) {
      checkRange(src, offset, dst.length);
      dst.set(bytes.subarray(offset, offset + dst.length));
    },
  };
  return src;
}

/**
 * A FileBytes from a platform's positional read: `readAt(dst, position)` fills as much of `dst` as
 * it can and returns the count; a short read means the file shrank or changed under us.
 */
export function positionalSource(size: number, readAt: (dst: Uint8Array, position: number) => number, close: () => void, unexpectedEnd: (at: number) => Error): FileBytes {
  const src: FileBytes = {
    size,
    read(offset, length) {
      const out = new Uint8Array(length);
      src.readInto(offset, out);
      return out;
    },
    readInto(offset, dst) {
      checkRange(src, offset, dst.length);
      let done = 0;
      while (done < dst.length) {
        const n = readAt(dst.subarray(done, Math.min(dst.length, done + (1 << 30))), offset + done);
        if (n === 0) throw unexpectedEnd(offset + done);
        done += n;
      }
    },
    close,
  };
  return src;
}

/** Bytes [base, base + size) of `src`, as a source of their own. */
export function windowOf(src: ByteSource, base: number, size: number): ByteSource {
  const w: ByteSource = {
    size,
    read(offset, length) {
      checkRange(w, offset, length);
      return src.read(base + offset, length);
    },
    readInto(offset, dst) {
      checkRange(w, offset, dst.length);
      src.readInto(base + offset, dst);
    },
  };
  return w;
}

/** Posix-style path helpers for platforms without a path module (the browser's mounted files). */
export const posixPath = {
  join: (dir: string, name: string): string => (dir === "" ? name : dir.endsWith("/") ? dir + name : `${dir}/${name}`),
  dirname: (path: string): string => {
    const trimmed = path.replace(/\/+$/, "");
    const i = trimmed.lastIndexOf("/");
    return i < 0 ? "." : i === 0 ? "/" : trimmed.slice(0, i);
  },
  basename: (path: string): string => path.replace(/\/+$/, "").split("/").pop() ?? "",
};
