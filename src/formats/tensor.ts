/**
 * A tensor as a file stores it: a dtype, a shape and the raw little-endian bytes (C order).
 * Every reader (safetensors, PyTorch zip) produces these; `toFloat32` turns them into the
 * Float32Array the kernels compute with.
 */
import { F16_TABLE, f16ToF32 } from "../../kernels/half.js";
import { FormatError } from "../errors.js";

export { f16ToF32 };

export type DType =
  | "F64" | "F32" | "F16" | "BF16" | "F8_E4M3" | "F8_E5M2"
  | "I64" | "I32" | "I16" | "I8" | "U64" | "U32" | "U16" | "U8" | "BOOL";

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export interface RawTensor {
  dtype: DType;
  shape: number[];
  /** Exactly elementCount(shape) * DTYPE_BYTES[dtype] bytes. May be a view into a larger file buffer. */
  bytes: Uint8Array;
}

/**
 * Where tensors come from. A reader only has to say what it holds and copy one tensor's raw
 * bytes on demand, so a safetensors file can be read straight into the kernels' memory with
 * positional reads instead of being loaded whole and copied.
 */
export interface TensorSource {
  /** The file (or folder) named in error messages. */
  readonly file: string;
  names(): string[];
  info(name: string): { dtype: DType; shape: number[] };
  /**
   * Copies dst.length raw little-endian bytes of `name`, from byte `byteOffset` of the tensor
   * (default 0), into `dst`: the whole tensor, or a block of rows that the loader packs while it
   * is still in cache. The range must lie inside the tensor.
   */
  read(name: string, dst: Uint8Array, byteOffset?: number): void;
}

/** Throws unless [byteOffset, byteOffset + length) lies inside a tensor of `size` bytes (a caller's bug, not the file's). */
export function checkReadRange(name: string, size: number, byteOffset: number, length: number): void {
  if (!(Number.isInteger(byteOffset) && byteOffset >= 0 && byteOffset + length <= size)) {
    throw new RangeError(`read of tensor ${name}: bytes [${byteOffset}, ${byteOffset + length}) outside its ${size} bytes`);
  }
}

/** One tensor of `src`, read whole into a buffer of its own (what `convert` holds at a time). */
export function readTensor(src: TensorSource, name: string): RawTensor {
  const { dtype, shape } = src.info(name);
  const bytes = new Uint8Array(elementCount(shape) * DTYPE_BYTES[dtype]);
  src.read(name, bytes);
  return { dtype, shape: shape.slice(), bytes };
}

/** A TensorSource over tensors already in memory (PyTorch checkpoints, tests). */
export function mapSource(file: string, tensors: Map<string, RawTensor>): TensorSource {
  return {
    file,
    names: () => [...tensors.keys()],
    info: (name) => tensors.get(name)!,
    read(name, dst, byteOffset = 0) {
      const { bytes } = tensors.get(name)!;
      checkReadRange(name, bytes.length, byteOffset, dst.length);
      dst.set(bytes.subarray(byteOffset, byteOffset + dst.length));
    },
  };
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Decodes `bytes` of a floating-point dtype into `dst` (F32). F16 and BF16 are widened exactly. */
export function decodeFloat32Into(dst: Float32Array, dtype: DType, bytes: Uint8Array, file: string, name: string): void {
  const n = dst.length;
  switch (dtype) {
    case "F32":
      if (bytes.byteOffset % 4 === 0) dst.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      else new Uint8Array(dst.buffer, dst.byteOffset, 4 * n).set(bytes.subarray(0, 4 * n));
      break;
    case "F16":
      for (let i = 0; i < n; i++) dst[i] = F16_TABLE[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      break;
    case "BF16": {
      // bfloat16 is the top half of a float32: shift the 16 bits into place.
      const u32 = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) u32[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
      break;
    }
    case "F64": {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) dst[i] = dv.getFloat64(8 * i, true);
      break;
    }
    default:
      throw new FormatError(file, `tensor ${name} has dtype ${dtype}, expected a floating-point dtype (F32, F16 or BF16)`);
  }
}

/**
 * A floating-point tensor as F32: a view of the same bytes when it is F32 and 4-byte aligned,
 * else widened (exactly) by `decodeFloat32Into`. `name` and `file` only serve the error message.
 */
export function toFloat32(t: RawTensor, file: string, name: string): Float32Array {
  const n = elementCount(t.shape);
  if (t.dtype === "F32" && t.bytes.byteOffset % 4 === 0) return new Float32Array(t.bytes.buffer, t.bytes.byteOffset, n);
  const out = new Float32Array(n);
  decodeFloat32Into(out, t.dtype, t.bytes, file, name);
  return out;
}
