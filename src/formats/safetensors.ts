/**
 * Reader for `.safetensors` files: 8-byte little-endian header length N, N bytes of JSON
 * header, then the tensor bytes. The header is validated completely before a single data byte is
 * trusted, with the format's own rules (https://github.com/huggingface/safetensors#format):
 *   - N ≤ 100 MB and 8 + N ≤ file size; the header is UTF-8 JSON, an object;
 *   - each tensor has a known dtype, a shape of non-negative integers and data_offsets [b, e]
 *     with e − b = element count × dtype size;
 *   - sorted by offset, tensors cover the data region from 0 with no hole and no overlap, and the
 *     last one ends exactly at the end of the file.
 */
import { validateTensorEntry, type TensorInfo } from "@huggingface/hub";
import { FormatError, quote } from "../errors.js";
import type { FileBytes } from "../platform/bytes.js";
import { platform } from "../platform/platform.js";
import { DTYPE_BYTES, checkReadRange, elementCount, isDType, type DType, type TensorSource } from "./tensor.js";

export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  dtype: DType;
  shape: number[];
  /** Byte range inside the data region (after the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  metadata: Record<string, string>;
  /** In file order (by offset). */
  entries: Map<string, SafetensorsEntry>;
  /** Byte offset of the data region in the file: 8 + N. */
  dataStart: number;
  fileSize: number;
}

/** Parses and validates the header of a safetensors file held in `head` (at least its first 8 + N bytes). */
export function parseSafetensorsHeader(file: string, head: Uint8Array, fileSize: number): SafetensorsHeader {
  if (fileSize < 8 || head.length < 8) throw new FormatError(file, `not a safetensors file: ${fileSize} bytes is shorter than the 8-byte header length`);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER_BYTES) throw new FormatError(file, `safetensors header length ${n} exceeds the format's limit of 100 MB (corrupt or not a safetensors file)`);
  if (8 + n > fileSize) throw new FormatError(file, `safetensors header length ${n} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`);
  if (head.length < 8 + n) throw new FormatError(file, `internal: header buffer too short`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(8, 8 + n));
  } catch {
    throw new FormatError(file, "safetensors header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(file, "safetensors header is not a JSON object");

  const dataSize = fileSize - 8 - n;
  const metadata: Record<string, string> = {};
  const list: [string, SafetensorsEntry][] = [];
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof info !== "object" || info === null || Array.isArray(info)) throw new FormatError(file, "__metadata__ is not an object of strings");
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") throw new FormatError(file, `__metadata__ value for "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    list.push([name, checkEntry(file, name, info, dataSize)]);
  }
  list.sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let expected = 0;
  for (const [name, e] of list) {
    if (e.begin !== expected) {
      const what = e.begin < expected ? "overlaps the previous tensor" : `leaves a hole of ${e.begin - expected} bytes before it`;
      throw new FormatError(file, `tensor ${name} starts at data offset ${e.begin}, which ${what} (offsets must be contiguous from 0)`);
    }
    expected = e.end;
  }
  if (expected !== dataSize) {
    throw new FormatError(file, `tensor data ends at offset ${expected} but the file has ${dataSize} data bytes after the header (truncated, or trailing bytes)`);
  }
  return { file, metadata, entries: new Map(list), dataStart: 8 + n, fileSize };
}

function checkEntry(file: string, name: string, info: unknown, dataSize: number): SafetensorsEntry {
  if (typeof info !== "object" || info === null || Array.isArray(info)) throw new FormatError(file, `tensor ${name}: header entry is not an object`);
  const { dtype, shape, data_offsets } = info as Record<string, unknown>;
  if (!isDType(dtype)) throw new FormatError(file, `tensor ${name} has unknown or unsupported dtype ${quote(dtype)}`);
  // Types first, with our messages: the library's messages print the values, and printing one
  // nested 10,000 deep overflows the stack.
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number")) {
    throw new FormatError(file, `tensor ${name}: shape must be an array of non-negative integers, found ${quote(shape)}`);
  }
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((o) => typeof o === "number")) {
    throw new FormatError(file, `tensor ${name}: data_offsets must be two integers [begin, end], found ${quote(data_offsets)}`);
  }
  try {
    // @huggingface/hub's checks: integer dims, sane offsets. Not the span: its message calls
    // the data region "the file size", which reads wrong for a truncated file (ours is below).
    validateTensorEntry(file, name, info as TensorInfo, undefined);
  } catch (e) {
    // "Failed to parse file F: tensor "T" has invalid data_offsets." → "tensor T has invalid data_offsets."
    const message = (e as Error).message;
    const prefix = `Failed to parse file ${file}: tensor "${name}" `;
    throw new FormatError(file, `tensor ${name} ${message.startsWith(prefix) ? message.slice(prefix.length) : message}`);
  }
  const dims = shape as number[];
  const [begin, end] = data_offsets as [number, number];
  if (end > dataSize) {
    throw new FormatError(file, `tensor ${name} ends at data offset ${end}, past the ${dataSize} data bytes after the header (truncated file?)`);
  }
  const bytes = elementCount(dims) * DTYPE_BYTES[dtype];
  if (end - begin !== bytes) {
    throw new FormatError(file, `tensor ${name} has shape [${dims.join(", ")}] of ${dtype} (${bytes} bytes) but data_offsets span ${end - begin} bytes`);
  }
  return { dtype, shape: dims.slice(), begin, end };
}

/** Reads just the header of a safetensors file (a few KB), e.g. for `inspect`. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const bytes = platform().files.open(file);
  try {
    return headerOf(file, bytes);
  } finally {
    bytes.close();
  }
}

/** The header of the safetensors file `bytes`: its length first, then just that many bytes. */
function headerOf(file: string, bytes: FileBytes): SafetensorsHeader {
  const size = bytes.size;
  const lenBuf = bytes.read(0, Math.min(8, size));
  const n = size >= 8 ? Number(new DataView(lenBuf.buffer, lenBuf.byteOffset, 8).getBigUint64(0, true)) : 0;
  const want = n <= MAX_HEADER_BYTES && 8 + n <= size ? 8 + n : 8;
  return parseSafetensorsHeader(file, bytes.read(0, Math.min(want, size)), size);
}

/**
 * A TensorSource over one safetensors file that reads each tensor by range straight into the
 * caller's buffer (the kernels' memory for F32), so loading never holds the file and the weights
 * at the same time. Call `close()` when done.
 */
export function safetensorsSource(file: string): TensorSource & { header: SafetensorsHeader; close(): void } {
  const bytes = platform().files.open(file);
  let header: SafetensorsHeader;
  try {
    header = headerOf(file, bytes);
  } catch (e) {
    bytes.close();
    throw e;
  }
  return {
    file,
    header,
    names: () => [...header.entries.keys()],
    info: (name) => header.entries.get(name)!,
    read(name, dst, byteOffset = 0) {
      const e = header.entries.get(name)!;
      checkReadRange(name, e.end - e.begin, byteOffset, dst.length);
      bytes.readInto(header.dataStart + e.begin + byteOffset, dst);
    },
    close: () => bytes.close(),
  };
}
