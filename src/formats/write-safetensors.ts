/**
 * Writing safetensors files, and the dtype conversion the `convert` command applies on the way.
 *
 * Layout (https://github.com/huggingface/safetensors#format): 8-byte little-endian header length
 * N, N bytes of compact JSON (`__metadata__` first, then each tensor in data order) padded with
 * spaces so the data starts at a multiple of 8, then the tensors' bytes back to back with
 * `data_offsets` relative to the start of the data. The header needs only each tensor's dtype
 * and shape, so a tensor's bytes may be a function, called when that tensor is written: `convert`
 * reads one tensor of the checkpoint at a time this way. The file is written to a temporary file in
 * the same folder and renamed, so the final name never holds a half-written file; the temporary
 * file is created exclusively (O_EXCL: a planted file or symlink at its name is never followed
 * or overwritten) under a name no other writer uses.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Gpt2RewardError } from "../errors.js";
import { DTYPE_BYTES, elementCount, f16ToF32, type DType, type RawTensor } from "./tensor.js";

/** A tensor to write: its bytes, or a function giving them when the tensor's turn comes. */
export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array | (() => Uint8Array);
}

export function writeSafetensors(
  file: string,
  tensors: Map<string, TensorToWrite> | [string, TensorToWrite][],
  metadata: Record<string, string> = { format: "pt" },
): void {
  const list = [...tensors];
  // No prototype: a tensor named "__proto__" (a checkpoint may hold any name) must become a
  // key, not replace the object's prototype and silently vanish from the header.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    if (name === "__metadata__" || Object.prototype.hasOwnProperty.call(header, name)) {
      throw new Gpt2RewardError(`${file}: cannot write tensor name ${JSON.stringify(name)} (reserved or repeated)`);
    }
    if (typeof t.bytes !== "function") checkSize(file, name, t, t.bytes);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + sizeOf(t)] };
    offset += sizeOf(t);
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let fd: number;
  let reading = false;
  try {
    fd = openSync(tmp, "wx", 0o644);
  } catch (e) {
    throw new Gpt2RewardError(`${file}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    writeAll(fd, prefix);
    writeAll(fd, json);
    for (const [name, t] of list) {
      reading = typeof t.bytes === "function";
      const bytes = typeof t.bytes === "function" ? checkSize(file, name, t, t.bytes()) : t.bytes;
      reading = false;
      writeAll(fd, bytes);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    if (reading || e instanceof Gpt2RewardError) throw e; // the tensor's own error (a bad checkpoint, its size), not the write's
    throw new Gpt2RewardError(`${file}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const sizeOf = (t: TensorToWrite): number => elementCount(t.shape) * DTYPE_BYTES[t.dtype];

function checkSize(file: string, name: string, t: TensorToWrite, bytes: Uint8Array): Uint8Array {
  if (bytes.length !== sizeOf(t)) {
    throw new Gpt2RewardError(`${file}: tensor ${name} has shape [${t.shape.join(", ")}] of ${t.dtype} (${sizeOf(t)} bytes) but holds ${bytes.length} bytes`);
  }
  return bytes;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

// ---- dtype conversion ----

const FLOAT_DTYPES: ReadonlySet<DType> = new Set(["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"]);

/**
 * Converts a floating-point tensor to F32, F16 or BF16, rounding to nearest, ties to even, from
 * the exact source value (F64 → F16 is rounded once, not through F32). Overflow gives ±Inf, NaN
 * stays NaN, subnormals are kept. Tensors of integer or bool dtype (e.g. GPT-2's `attn.bias`
 * mask) are returned unchanged, as is a tensor already of the target dtype.
 */
export function convertTensor(t: RawTensor, to: "F32" | "F16" | "BF16"): RawTensor {
  if (t.dtype === to || !FLOAT_DTYPES.has(t.dtype)) return t;
  const n = elementCount(t.shape);
  const read = floatReader(t);
  const out = new Uint8Array(n * DTYPE_BYTES[to]);
  if (to === "F32") {
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setFloat32(4 * i, read(i), true); // setFloat32 rounds ties-to-even
  } else {
    const [expBits, mantBits] = to === "F16" ? [5, 10] : [8, 7];
    for (let i = 0; i < n; i++) {
      const h = roundToBits(read(i), expBits, mantBits);
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >>> 8;
    }
  }
  return { dtype: to, shape: t.shape.slice(), bytes: out };
}

/** Element i of a float tensor as an exact double. */
function floatReader(t: RawTensor): (i: number) => number {
  const b = t.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (t.dtype) {
    case "F64": return (i) => dv.getFloat64(8 * i, true);
    case "F32": return (i) => dv.getFloat32(4 * i, true);
    case "F16": return (i) => f16ToF32(b[2 * i] | (b[2 * i + 1] << 8));
    case "BF16": return (i) => { F32_SCRATCH_U32[0] = (b[2 * i] | (b[2 * i + 1] << 8)) << 16; return F32_SCRATCH[0]; };
    case "F8_E5M2": return (i) => f16ToF32(b[i] << 8); // E5M2 is the top byte of an F16
    case "F8_E4M3": return (i) => e4m3ToF32(b[i]);
    default: throw new Error(`internal: ${t.dtype} is not a float dtype`);
  }
}

const F32_SCRATCH = new Float32Array(1);
const F32_SCRATCH_U32 = new Uint32Array(F32_SCRATCH.buffer);

/** float8 E4M3 "fn" (bias 7, no infinities, S.1111.111 is NaN), as torch.float8_e4m3fn. */
function e4m3ToF32(v: number): number {
  const sign = v & 0x80 ? -1 : 1;
  const exp = (v >> 3) & 0xf;
  const frac = v & 0x7;
  if (exp === 15 && frac === 7) return NaN;
  if (exp === 0) return sign * frac * 2 ** -9;
  return sign * (1 + frac / 8) * 2 ** (exp - 7);
}

/**
 * Rounds a double to the binary format with `expBits` exponent and `mantBits` fraction bits
 * (IEEE-style: bias 2^(expBits-1) − 1, subnormals, all-ones exponent for Inf/NaN) and returns its
 * bit pattern. Round to nearest, ties to even. F16 is (5, 10), BF16 is (8, 7).
 */
export function roundToBits(x: number, expBits: number, mantBits: number): number {
  const signBit = 1 << (expBits + mantBits);
  const expAllOnes = ((1 << expBits) - 1) << mantBits;
  if (Number.isNaN(x)) return expAllOnes | (1 << (mantBits - 1)); // canonical quiet NaN
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | expAllOnes;
  const bias = (1 << (expBits - 1)) - 1;
  const minNormalExp = 1 - bias;
  // Exponent of a's leading bit; Math.log2 may be off by one near powers of two, so correct it.
  let e = a === 0 ? minNormalExp : Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  if (e < minNormalExp) e = minNormalExp; // subnormal range: fixed quantum 2^(minNormalExp - mantBits)
  // a / quantum is exact (a power-of-two scaling); its integer part fits in mantBits + 1 bits.
  const q = a / 2 ** (e - mantBits);
  let m = Math.floor(q);
  const rest = q - m;
  if (rest > 0.5 || (rest === 0.5 && m & 1)) m++;
  // m < 2^mantBits: subnormal (exponent field 0); m = 2^(mantBits+1) after rounding: next binade.
  if (m >= 2 << mantBits) { m >>= 1; e++; }
  if (m < 1 << mantBits) return sign | m;
  const field = e + bias;
  if (field >= (1 << expBits) - 1) return sign | expAllOnes; // overflow → Inf
  return sign | (field << mantBits) | (m - (1 << mantBits));
}
