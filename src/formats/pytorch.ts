/**
 * Reader for PyTorch `.bin` / `.pt` state dicts, without Python and without evaluating anything.
 *
 * The torch ≥ 1.6 format is a ZIP archive:
 *   <archive>/data.pkl      the pickled state dict; each tensor is a call to
 *                           torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
 *                           whose storage is a persistent id ('storage', torch.FloatStorage, key, location, numel)
 *   <archive>/data/<key>    the raw bytes of storage <key> (little-endian, C order)
 *   <archive>/byteorder     "little" or "big" (torch ≥ 2.1; absent means little)
 * The legacy (pre-1.6) format is four pickles in a row (magic number, protocol version, system
 * info, the state dict), a pickled list of storage keys, then each storage as an int64 element
 * count followed by its bytes.
 *
 * The pickle runs on `pickle.ts`'s machine with the allowlist below; every other global is refused.
 * Tensors are checked against their storage (offset + extent ≤ numel) before any storage byte is
 * read. `pytorchSource` (what the model loader and `convert` read through) reads a zip
 * checkpoint's end records, central directory, local headers and data.pkl, then each tensor with
 * one positional read straight into the caller's buffer (strided ones: the span they cover,
 * gathered in C order), so the file never lives in memory beside the weights.
 */
import { FormatError, UnsafeFileError, quote } from "../errors.js";
import { DTYPE_BYTES, checkReadRange, elementCount, type DType, type TensorSource } from "./tensor.js";
import { describe, isPickleCallable, isTuple, loadPickle, type PickleCallable } from "./pickle.js";
import { isZip, readZip } from "./zip.js";
import { windowOf, type ByteSource } from "../platform/bytes.js";
import { platform } from "../platform/platform.js";

/** torch.<Name>Storage → dtype. */
const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: "F32", HalfStorage: "F16", BFloat16Storage: "BF16", DoubleStorage: "F64",
  LongStorage: "I64", IntStorage: "I32", ShortStorage: "I16", CharStorage: "I8",
  ByteStorage: "U8", BoolStorage: "BOOL",
};

/** torch.<dtype> objects, as a newer torch may pickle them (`torch.float16` → GLOBAL torch float16). */
const TORCH_DTYPES: Record<string, DType> = {
  float32: "F32", float: "F32", float16: "F16", half: "F16", bfloat16: "BF16", float64: "F64", double: "F64",
  int64: "I64", long: "I64", int32: "I32", int: "I32", int16: "I16", short: "I16", int8: "I8",
  uint8: "U8", bool: "BOOL",
};

/**
 * Copying strided tensors out may use at most the file's size plus this many bytes: a zero or
 * overlapping stride can make a tiny storage look like a huge tensor, and a real checkpoint's
 * strided views never hold more elements than their storages.
 */
const COPY_ALLOWANCE_BYTES = 256 * 2 ** 20;

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/**
 * A state dict's pickle is read into memory whole, but only up to this size: a real one takes
 * ~150 bytes a tensor (20 MB for 130,000 tensors), and parsing stops at its STOP opcode, so a
 * record or file that goes on for gigabytes after it costs nothing more.
 */
const MAX_PICKLE_BYTES = 128 * 2 ** 20;

/**
 * Parses what starts the first `size` bytes of something (a pickle record, a legacy file) from as
 * few of them as it needs: 1 MiB first, 8 times more each time parsing runs off the end of what
 * was read, at most MAX_PICKLE_BYTES. A 5 MB checkpoint whose data.pkl is followed by 2 GiB of
 * deflated zeros inflates 1 MiB of them.
 */
function fromPrefix<T>(size: number, read: (n: number) => Uint8Array, parse: (bytes: Uint8Array) => T): T {
  const most = Math.min(size, MAX_PICKLE_BYTES);
  for (let n = Math.min(most, 2 ** 20); ; n = Math.min(most, 8 * n)) {
    try {
      return parse(read(n));
    } catch (e) {
      if (n >= most || !(e instanceof FormatError)) throw e;
    }
  }
}

// ---- the objects the allowlisted globals produce ----

/** A storage class global such as torch.FloatStorage; torch.UntypedStorage holds bytes (U8). */
class StorageType {
  constructor(readonly qualname: string, readonly dtype: DType) {}
}

/** A torch dtype object (torch.float16). */
class TorchDType {
  constructor(readonly dtype: DType) {}
}

/** A type marker for _rebuild_from_type_v2 (torch.Tensor, torch.nn.parameter.Parameter). */
class TensorType {
  constructor(readonly qualname: string) {}
}

/**
 * One storage. Where its bytes are is known at once in the zip format (its record, not yet read),
 * after the pickle in the legacy one.
 */
class Storage {
  data: ByteSource | undefined;
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number) {}
}

/** A tensor as the pickle describes it; checked, then read from its storage when asked. */
class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

function callable(qualname: string, call: (args: readonly unknown[]) => unknown): PickleCallable {
  return { qualname, call };
}

/**
 * The allowlist: every global a state dict saved by torch may name. Anything else — os.system,
 * builtins.eval, a model class from __main__ — is refused by the pickle machine.
 */
function findGlobal(file: string, module: string, name: string): unknown {
  const arg = (args: readonly unknown[], i: number, fn: string): unknown => {
    if (i >= args.length) throw new FormatError(file, `${fn} called with ${args.length} arguments, expected at least ${i + 1}`);
    return args[i];
  };
  const tensorArg = (args: readonly unknown[], fn: string): TensorRef => {
    const t = arg(args, 0, fn);
    if (!(t instanceof TensorRef)) throw new FormatError(file, `${fn} expects a tensor, got ${describe(t)}`);
    return t;
  };
  const q = `${module}.${name}`;
  switch (q) {
    case "collections.OrderedDict":
      return callable(q, (args) => {
        const d = new Map<unknown, unknown>();
        if (args.length === 0) return d;
        const items = args[0];
        if (args.length > 1 || !Array.isArray(items)) throw new FormatError(file, `collections.OrderedDict called with unexpected arguments`);
        for (const kv of items) {
          if (!Array.isArray(kv) || kv.length !== 2) throw new FormatError(file, "collections.OrderedDict item is not a (key, value) pair");
          d.set(kv[0], kv[1]);
        }
        return d;
      });
    case "torch._utils._rebuild_tensor":
    case "torch._utils._rebuild_tensor_v2":
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]): only the first four matter.
      return callable(q, (args) => rebuildTensor(file, q, args));
    case "torch._utils._rebuild_parameter":
    case "torch._utils._rebuild_parameter_with_state":
      // (data, requires_grad, backward_hooks[, state]): a Parameter is its data for our purposes.
      return callable(q, (args) => tensorArg(args, q));
    case "torch._tensor._rebuild_from_type_v2":
      // (func, type, args, state): a tensor subclass wrapper; only plain Tensor/Parameter types are accepted.
      return callable(q, (args) => {
        const [func, type, inner] = [arg(args, 0, q), arg(args, 1, q), arg(args, 2, q)];
        if (!(type instanceof TensorType)) throw new FormatError(file, `${q}: unsupported tensor type ${describe(type)}`);
        if (!isPickleCallable(func) || !isTuple(inner)) throw new FormatError(file, `${q} called with unexpected arguments`);
        return func.call(inner);
      });
    case "torch.Tensor":
    case "torch.nn.parameter.Parameter":
      return new TensorType(q);
    case "torch.UntypedStorage":
    case "torch.storage.UntypedStorage":
      return new StorageType(q, "U8");
  }
  if (module === "torch") {
    if (Object.prototype.hasOwnProperty.call(STORAGE_DTYPES, name)) return new StorageType(q, STORAGE_DTYPES[name]);
    if (Object.prototype.hasOwnProperty.call(TORCH_DTYPES, name)) return new TorchDType(TORCH_DTYPES[name]);
    if (name.endsWith("Storage")) throw new UnsafeFileError(file, `checkpoint uses storage type ${q}, whose dtype is not supported (supported: ${Object.keys(STORAGE_DTYPES).join(", ")})`);
  }
  return undefined;
}

function index(file: string, v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new FormatError(file, `${what} must be a non-negative integer, found ${typeof v === "number" || typeof v === "bigint" ? String(v) : describe(v)}`);
  }
  return v;
}

function indexTuple(file: string, v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new FormatError(file, `${what} must be a tuple of integers, found ${describe(v)}`);
  return v.map((x, i) => index(file, x, `${what}[${i}]`));
}

function rebuildTensor(file: string, fn: string, args: readonly unknown[]): TensorRef {
  if (args.length < 4) throw new FormatError(file, `${fn} called with ${args.length} arguments, expected at least 4`);
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof Storage)) throw new FormatError(file, `${fn}: first argument must be a storage, found ${describe(storage)}`);
  const shape = indexTuple(file, size, `${fn} size`);
  const strides = indexTuple(file, stride, `${fn} stride`);
  if (shape.length !== strides.length) {
    throw new FormatError(file, `${fn}: size [${shape.join(", ")}] and stride [${strides.join(", ")}] have different lengths`);
  }
  return new TensorRef(storage, index(file, offset, `${fn} storage offset`), shape, strides);
}

/** The storage element holding the tensor's last element (strides are non-negative, so the first is at `offset`). */
function lastElement(t: TensorRef): number {
  let last = t.offset;
  for (let d = 0; d < t.size.length; d++) last += (t.size[d] - 1) * t.stride[d];
  return last;
}

/**
 * Checks a tensor against its storage, touching no byte: it must lie inside the storage, and a
 * strided one (copied out in C order when read) must fit what is left of the copy budget.
 * Returns the bytes it takes once read.
 */
function checkTensor(file: string, name: string, t: TensorRef, budget: { bytes: number }): number {
  const { storage, offset, size, stride } = t;
  const item = DTYPE_BYTES[storage.dtype];
  const where = `tensor ${name} (shape [${size.join(", ")}], stride [${stride.join(", ")}], storage offset ${offset})`;
  if (!storage.data) throw new FormatError(file, `${where}: storage ${storage.key} has no data`);
  const numel = elementCount(size);
  if (numel === 0) return 0;
  const last = lastElement(t);
  if (last >= storage.numel) {
    throw new FormatError(file, `${where} reaches element ${last} of storage ${storage.key}, which has only ${storage.numel} elements`);
  }
  if (isContiguous(size, stride)) return numel * item;
  if (!Number.isSafeInteger(numel * item) || numel * item > budget.bytes) {
    throw new FormatError(file, `${where} would need ${numel * item} bytes when copied out of its storage, more than a checkpoint of this size can hold; refusing`);
  }
  budget.bytes -= numel * item;
  return numel * item;
}

/**
 * Reads a checked tensor's bytes into `dst` (exactly its byte size) in C order: a contiguous one
 * with one read of exactly its bytes, a strided one by reading the span of storage it covers and
 * gathering from it.
 */
function readTensor(t: TensorRef, dst: Uint8Array): void {
  const { storage, offset, size, stride } = t;
  const item = DTYPE_BYTES[storage.dtype];
  const data = storage.data!;
  const numel = elementCount(size);
  if (numel === 0) return;
  if (isContiguous(size, stride)) {
    data.readInto(offset * item, dst.subarray(0, numel * item));
    return;
  }
  const span = data.read(offset * item, (lastElement(t) - offset + 1) * item);
  gather(dst, span, item, size, stride, numel);
}

/**
 * TensorSource.read over checked tensors: a contiguous tensor's bytes [byteOffset, +dst.length)
 * are one positional read; a strided one (rare: torch.save of a transposed view) is gathered
 * whole once and kept while the loader reads it block by block.
 */
function tensorReader(refs: Map<string, TensorRef>): TensorSource["read"] {
  let gathered: { name: string; bytes: Uint8Array } | null = null;
  return (name, dst, byteOffset = 0) => {
    const t = refs.get(name)!;
    const item = DTYPE_BYTES[t.storage.dtype];
    const bytes = elementCount(t.size) * item;
    checkReadRange(name, bytes, byteOffset, dst.length);
    if (dst.length === 0) return;
    if (isContiguous(t.size, t.stride)) {
      t.storage.data!.readInto(t.offset * item + byteOffset, dst);
      return;
    }
    if (byteOffset === 0 && dst.length === bytes) return readTensor(t, dst);
    if (gathered?.name !== name) {
      gathered = { name, bytes: new Uint8Array(bytes) };
      readTensor(t, gathered.bytes);
    }
    dst.set(gathered.bytes.subarray(byteOffset, byteOffset + dst.length));
  };
}

/** C-order strides, ignoring dimensions of size 1 (their stride is meaningless). */
function isContiguous(size: number[], stride: number[]): boolean {
  let expect = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expect) return false;
    expect *= size[d];
  }
  return true;
}

/**
 * Copies a strided tensor out of `src` (its storage from the tensor's first element on) into
 * `out` in C order: out[i0,..,ik] = src[Σ i_d·stride_d].
 */
function gather(out: Uint8Array, src: Uint8Array, item: number, size: number[], stride: number[], numel: number): void {
  const nd = size.length;
  const inner = size[nd - 1];
  const innerStride = stride[nd - 1] * item;
  const counter = new Array<number>(nd - 1).fill(0);
  let base = 0; // byte offset of the current row's first element
  let o = 0;
  for (let row = 0; row < numel / inner; row++) {
    if (innerStride === item) {
      out.set(src.subarray(base, base + inner * item), o);
      o += inner * item;
    } else {
      for (let j = 0, s = base; j < inner; j++, s += innerStride) {
        for (let b = 0; b < item; b++) out[o++] = src[s + b];
      }
    }
    // advance the outer index like an odometer
    for (let d = nd - 2; d >= 0; d--) {
      base += stride[d] * item;
      if (++counter[d] < size[d]) break;
      base -= size[d] * stride[d] * item;
      counter[d] = 0;
    }
  }
}

/**
 * The tensors of a pickled checkpoint's top level: a dict of tensors, or one wrapped as
 * {"state_dict": ...} or {"model": ...} (training scripts save those).
 */
function stateDict(file: string, top: unknown): Map<string, TensorRef> {
  if (top instanceof Map && ![...top.values()].every((v) => v instanceof TensorRef)) {
    const wrapped = [top.get("state_dict"), top.get("model")].find((v) => v instanceof Map);
    if (wrapped) top = wrapped; // one level only: {"state_dict": {...}, "epoch": 3, ...}
  }
  if (!(top instanceof Map)) {
    throw new FormatError(file, `checkpoint holds ${describe(top)}, not a dict of tensors (save one with torch.save(model.state_dict(), path))`);
  }
  const out = new Map<string, TensorRef>();
  for (const [k, v] of top) {
    if (typeof k !== "string") throw new FormatError(file, `checkpoint dict has a key that is ${describe(k)}, expected tensor names`);
    if (!(v instanceof TensorRef)) {
      throw new FormatError(file, `checkpoint entry ${k} is ${describe(v)}, not a tensor; expected a state dict (a dict of tensor name → tensor)`);
    }
    out.set(k, v);
  }
  return out;
}

function persistentId(file: string, pid: unknown, legacy: boolean): { key: string; type: StorageType; numel: number } {
  const want = legacy ? 6 : 5;
  if (!isTuple(pid) || pid.length !== want || pid[0] !== "storage") {
    throw new FormatError(file, `pickle persistent id is ${describe(pid)}, expected ('storage', type, key, location, numel${legacy ? ", view" : ""})`);
  }
  const [, type, key, , numel] = pid;
  if (!(type instanceof StorageType)) throw new FormatError(file, `persistent id names storage type ${describe(type)}`);
  if (typeof key !== "string") throw new FormatError(file, `persistent id has storage key ${describe(key)}, expected a string`);
  if (legacy && pid[5] !== null) throw new FormatError(file, `storage ${key} is a storage view, which legacy checkpoints from very old torch versions use and this reader does not support; re-save it with a current torch: torch.save(torch.load(old_path), new_path)`);
  return { key, type, numel: index(file, numel, `element count of storage ${key}`) };
}

/** Checks every tensor of the state dict against its storage and the file's size; reads nothing. */
function checkTensors(file: string, refs: Map<string, TensorRef>, fileBytes: number): Map<string, TensorRef> {
  const budget = { bytes: fileBytes + COPY_ALLOWANCE_BYTES };
  // Views are free here, but the loader copies every named tensor into model memory: one small
  // storage named by a thousand tensors (or one memoized tensor under a thousand names) would make
  // a small file fill gigabytes. A real state dict names each storage byte once, plus tied weights
  // (state_dict() detaches lm_head and wte into two tensors over one storage) once more.
  let named = 2 * fileBytes + COPY_ALLOWANCE_BYTES;
  const sizes = new Map<TensorRef, number>(); // tied weights: one TensorRef under two names
  for (const [name, ref] of refs) {
    let bytes = sizes.get(ref);
    if (bytes === undefined) {
      bytes = checkTensor(file, name, ref, budget);
      sizes.set(ref, bytes);
    }
    named -= bytes;
    if (named < 0) {
      throw new FormatError(file, `tensor ${name}: the state dict's tensors add up to more than twice the file's ${fileBytes} bytes (the same storage named again and again?); refusing`);
    }
  }
  return refs;
}

// ---- the two container formats ----

/**
 * Opens a zip checkpoint through `source`: reads the central directory, the pickle, and the local
 * header of each storage record, and checks every tensor against its record's size. No storage
 * byte is read.
 */
function openZipCheckpoint(file: string, source: ByteSource): Map<string, TensorRef> {
  const zip = readZip(file, source);
  const pkls = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw new FormatError(file, pkls.length === 0
      ? "zip archive has no <archive>/data.pkl record: not a PyTorch checkpoint (TorchScript and other archives are not supported)"
      : `zip archive has ${pkls.length} data.pkl records (${pkls.join(", ")})`);
  }
  const prefix = pkls[0].slice(0, -"data.pkl".length);
  if (zip.has(`${prefix}byteorder`)) {
    const order = new TextDecoder("latin1").decode(zip.read(`${prefix}byteorder`, 16));
    if (order !== "little") throw new FormatError(file, `checkpoint byte order is ${JSON.stringify(order)}; only little-endian checkpoints are supported`);
  }
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    const { key, type, numel } = persistentId(file, pid, false);
    const seen = storages.get(key);
    if (seen) {
      if (seen.dtype !== type.dtype || seen.numel !== numel) throw new FormatError(file, `storage ${key} is referenced with two different types or sizes`);
      return seen;
    }
    const record = `${prefix}data/${key}`;
    if (!zip.has(record)) throw new FormatError(file, `storage ${key} has no record ${record} in the archive`);
    const need = numel * DTYPE_BYTES[type.dtype];
    const holds = zip.entries.get(record)!.uncompressedSize;
    if (need > holds) {
      throw new FormatError(file, `storage ${key} declares ${numel} ${type.dtype} elements (${need} bytes) but record ${record} holds ${holds} bytes`);
    }
    const s = new Storage(key, type.dtype, numel);
    s.data = zip.record(record, need); // bytes past the storage's elements (padding) are never read or inflated
    storages.set(key, s);
    return s;
  };
  const pklSize = zip.entries.get(pkls[0])!.uncompressedSize;
  const { value } = fromPrefix(pklSize, (n) => zip.read(pkls[0], n), (pkl) =>
    loadPickle(file, pkl, { findGlobal: (m, n) => findGlobal(file, m, n), persistentLoad }));
  return checkTensors(file, stateDict(file, value), source.size);
}

/** Legacy files start with a pickled magic number: PROTO 2, LONG1 of 10 bytes. */
function isLegacy(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x80 && bytes[2] === 0x8a && bytes[3] === 0x0a;
}

/**
 * A legacy (pre-1.6) checkpoint through `src`, read like the zip format: the pickles at its start
 * (up to MAX_PICKLE_BYTES), then each storage's 8-byte element count, hopping over its bytes,
 * which stay where they are until a tensor is read.
 */
function openLegacyCheckpoint(file: string, src: ByteSource): Map<string, TensorRef> {
  return fromPrefix(src.size, (n) => src.read(0, n), (bytes) => openLegacyPickles(file, src, bytes));
}

/** The legacy format's pickles, from `bytes` (the start of `src`), then its storages through `src`. */
function openLegacyPickles(file: string, src: ByteSource, bytes: Uint8Array): Map<string, TensorRef> {
  const plain = { findGlobal: () => undefined };
  const magic = loadPickle(file, bytes, plain, 0);
  if (magic.value !== LEGACY_MAGIC) throw new FormatError(file, "not a PyTorch checkpoint: pickle stream without the legacy magic number");
  const version = loadPickle(file, bytes, plain, magic.end);
  // quote, not String(): String() of a pickled list recurses (a stack overflow, or 2^n steps on shared sub-lists).
  if (version.value !== 1001) throw new FormatError(file, `legacy PyTorch checkpoint has protocol version ${quote(version.value)}, expected 1001`);
  const sysInfo = loadPickle(file, bytes, plain, version.end);
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get("little_endian") !== true) {
    throw new FormatError(file, "legacy PyTorch checkpoint was written on a big-endian machine (or has no system info); re-save it on a little-endian machine with a current torch: torch.save(torch.load(old_path), new_path)");
  }

  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    const { key, type, numel } = persistentId(file, pid, true);
    const seen = storages.get(key);
    if (seen) return seen;
    const s = new Storage(key, type.dtype, numel);
    storages.set(key, s);
    return s;
  };
  const main = loadPickle(file, bytes, { findGlobal: (m, n) => findGlobal(file, m, n), persistentLoad }, sysInfo.end);
  const refs = stateDict(file, main.value);
  const keys = loadPickle(file, bytes, plain, main.end);
  if (!Array.isArray(keys.value)) throw new FormatError(file, "legacy PyTorch checkpoint: storage key list is missing");

  // Storages follow in the order of the key list: int64 element count, then the bytes.
  let pos = keys.end;
  for (const key of keys.value) {
    const s = typeof key === "string" ? storages.get(key) : undefined;
    if (!s) throw new FormatError(file, `legacy checkpoint lists storage ${quote(key)}, which the state dict never uses`);
    if (pos + 8 > src.size) throw new FormatError(file, `legacy checkpoint is truncated before storage ${key}`);
    const head = src.read(pos, 8);
    const count = new DataView(head.buffer, head.byteOffset, 8).getBigInt64(0, true);
    if (count !== BigInt(s.numel)) throw new FormatError(file, `storage ${key} holds ${count} elements, its persistent id says ${s.numel}`);
    const n = s.numel * DTYPE_BYTES[s.dtype];
    pos += 8;
    if (pos + n > src.size) throw new FormatError(file, `legacy checkpoint is truncated inside storage ${key} (needs ${n} bytes at offset ${pos}, the file has ${src.size})`);
    s.data = windowOf(src, pos, n);
    pos += n;
  }
  return checkTensors(file, refs, src.size);
}

/** The checked tensors of either container format, read through `src`; no storage byte is read. */
function openCheckpointRefs(file: string, src: ByteSource): Map<string, TensorRef> {
  const head = src.read(0, Math.min(4, src.size));
  if (isZip(head)) return openZipCheckpoint(file, src);
  if (isLegacy(head)) return openLegacyCheckpoint(file, src);
  throw new FormatError(file, "not a PyTorch checkpoint: neither a zip archive (torch ≥ 1.6) nor a legacy torch.save pickle stream");
}

/**
 * A TensorSource over a PyTorch checkpoint file that reads each tensor when asked, straight into
 * the caller's buffer (the kernels' memory), so loading never holds the file and the weights at
 * the same time. Opening reads only the zip's directory, the local headers and data.pkl, and
 * checks every tensor against its storage and the file's size. A deflated storage record (torch
 * never writes one) is inflated, once, when first read, up to the bytes its storage holds; a legacy (pre-1.6)
 * file is read the same way (its pickles, then its tensors where they lie). `bytes` replaces the
 * file (a checkpoint already in memory: `bufferSource(bytes)`); call `close()` when done.
 */
export function pytorchSource(file: string, bytes?: ByteSource): TensorSource & { close(): void } {
  const own = bytes ? undefined : platform().files.open(file);
  const src = (bytes ?? own)!;
  const close = (): void => own?.close();
  try {
    const refs = openCheckpointRefs(file, src);
    return {
      file,
      names: () => [...refs.keys()],
      info: (name) => ({ dtype: refs.get(name)!.storage.dtype, shape: refs.get(name)!.size }),
      read: tensorReader(refs),
      close,
    };
  } catch (e) {
    close();
    throw e;
  }
}
