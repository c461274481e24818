/**
 * Test helpers that build files byte by byte: a small ZIP writer (stored or deflated records,
 * optional ZIP64 structures), a pickle opcode writer, and a `torch.save`-shaped checkpoint built
 * from both. Independent of src/formats so the readers are tested against a second implementation.
 */
import { crc32, deflateRawSync } from "node:zlib";

export interface ZipRecord {
  name: string;
  data: Uint8Array;
  /** 0 stored (default), 8 deflate, anything else written as stored bytes with that method number. */
  method?: number;
}

export interface ZipOptions {
  /** Write ZIP64 local/central extra fields, an EOCD64 record and its locator. */
  zip64?: boolean;
  comment?: string;
}

export function makeZip(records: ZipRecord[], opts: ZipOptions = {}): Uint8Array {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const put = (b: Buffer): void => {
    chunks.push(b);
    offset += b.length;
  };
  for (const r of records) {
    const method = r.method ?? 0;
    const body = method === 8 ? deflateRawSync(r.data) : Buffer.from(r.data);
    const name = Buffer.from(r.name, "utf8");
    const crc = crc32(r.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    local.writeUInt16LE(0x800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    let localExtra = Buffer.alloc(0);
    if (opts.zip64) {
      local.writeUInt32LE(0xffffffff, 18);
      local.writeUInt32LE(0xffffffff, 22);
      localExtra = Buffer.alloc(20);
      localExtra.writeUInt16LE(1, 0);
      localExtra.writeUInt16LE(16, 2);
      localExtra.writeBigUInt64LE(BigInt(r.data.length), 4);
      localExtra.writeBigUInt64LE(BigInt(body.length), 12);
    } else {
      local.writeUInt32LE(body.length, 18);
      local.writeUInt32LE(r.data.length, 22);
    }
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    const localAt = offset;
    put(Buffer.concat([local, name, localExtra, body]));

    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    c.writeUInt16LE(opts.zip64 ? 45 : 20, 6);
    c.writeUInt16LE(0x800, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(crc, 16);
    let centralExtra = Buffer.alloc(0);
    if (opts.zip64) {
      c.writeUInt32LE(0xffffffff, 20);
      c.writeUInt32LE(0xffffffff, 24);
      c.writeUInt32LE(0xffffffff, 42);
      centralExtra = Buffer.alloc(28);
      centralExtra.writeUInt16LE(1, 0);
      centralExtra.writeUInt16LE(24, 2);
      centralExtra.writeBigUInt64LE(BigInt(r.data.length), 4);
      centralExtra.writeBigUInt64LE(BigInt(body.length), 12);
      centralExtra.writeBigUInt64LE(BigInt(localAt), 20);
    } else {
      c.writeUInt32LE(body.length, 20);
      c.writeUInt32LE(r.data.length, 24);
      c.writeUInt32LE(localAt, 42);
    }
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(centralExtra.length, 30);
    central.push(Buffer.concat([c, name, centralExtra]));
  }
  const cdAt = offset;
  const cd = Buffer.concat(central);
  put(cd);
  if (opts.zip64) {
    const eocd64At = offset;
    const e64 = Buffer.alloc(56);
    e64.writeUInt32LE(0x06064b50, 0);
    e64.writeBigUInt64LE(44n, 4);
    e64.writeUInt16LE(45, 12);
    e64.writeUInt16LE(45, 14);
    e64.writeBigUInt64LE(BigInt(records.length), 24);
    e64.writeBigUInt64LE(BigInt(records.length), 32);
    e64.writeBigUInt64LE(BigInt(cd.length), 40);
    e64.writeBigUInt64LE(BigInt(cdAt), 48);
    put(e64);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(eocd64At), 8);
    loc.writeUInt32LE(1, 16);
    put(loc);
  }
  const comment = Buffer.from(opts.comment ?? "", "utf8");
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : records.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : records.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdAt, 16);
  eocd.writeUInt16LE(comment.length, 20);
  put(Buffer.concat([eocd, comment]));
  const out = Buffer.concat(chunks);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

// ---- pickle ----

/** Emits pickle opcodes one call at a time (protocol 2 forms, as torch.save writes them). */
export class PickleWriter {
  private out: number[] = [];

  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  proto(v = 2): this { return this.raw(0x80, v); }
  mark(): this { return this.raw(0x28); }
  stop(): this { return this.raw(0x2e); }
  none(): this { return this.raw(0x4e); }
  bool(b: boolean): this { return this.raw(b ? 0x88 : 0x89); }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(n);
      return this.raw(0x4a, ...b);
    }
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(n));
    return this.raw(0x8a, 8, ...b);
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.raw(0x47, ...b);
  }
  str(s: string): this {
    const b = Buffer.from(s, "utf8");
    if (b.length < 256) return this.raw(0x8c, b.length, ...b);
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return this.raw(0x58, ...n, ...b);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, ...Buffer.from(`${module}\n${name}\n`, "utf8"));
  }
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).raw(0x93);
  }
  emptyTuple(): this { return this.raw(0x29); }
  tuple(): this { return this.raw(0x74); }
  emptyList(): this { return this.raw(0x5d); }
  appends(): this { return this.raw(0x65); }
  emptyDict(): this { return this.raw(0x7d); }
  setItem(): this { return this.raw(0x73); }
  setItems(): this { return this.raw(0x75); }
  reduce(): this { return this.raw(0x52); }
  build(): this { return this.raw(0x62); }
  binpersid(): this { return this.raw(0x51); }
  put(i: number): this { return this.raw(0x71, i); }
  get(i: number): this { return this.raw(0x68, i); }
  /** A tuple of ints via MARK … TUPLE. */
  ints(values: number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

// ---- torch.save-shaped checkpoints ----

export interface FakeTensor {
  name: string;
  /** Storage key (record data/<key>), its class (FloatStorage, ...) and element count. */
  key: string;
  cls: string;
  numel: number;
  offset?: number;
  size: number[];
  stride: number[];
}

/**
 * The data.pkl of `torch.save(OrderedDict(name → tensor))`, each tensor via _rebuild_tensor_v2.
 * `wrap` nests it as {wrap: state_dict}; `legacy` writes the pre-1.6 persistent id (with a view slot).
 */
export function stateDictPickle(tensors: FakeTensor[], opts: { wrap?: string; legacy?: boolean } = {}): Uint8Array {
  const w = new PickleWriter().proto(2);
  if (opts.wrap) w.emptyDict().str(opts.wrap);
  w.global("collections", "OrderedDict").emptyTuple().reduce().mark();
  for (const t of tensors) {
    w.str(t.name).global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", t.cls).str(t.key).str("cpu").int(t.numel);
    if (opts.legacy) w.none();
    w.tuple().binpersid();
    w.int(t.offset ?? 0).ints(t.size).ints(t.stride).bool(false);
    w.global("collections", "OrderedDict").emptyTuple().reduce();
    w.tuple().reduce();
  }
  w.setItems();
  if (opts.wrap) w.setItem();
  return w.stop().bytes();
}

export function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array>, opts: ZipOptions & { byteorder?: string } = {}): Uint8Array {
  const records: ZipRecord[] = [{ name: "archive/data.pkl", data: pickle }];
  if (opts.byteorder !== undefined) records.push({ name: "archive/byteorder", data: Buffer.from(opts.byteorder) });
  for (const [key, data] of Object.entries(storages)) records.push({ name: `archive/data/${key}`, data });
  records.push({ name: "archive/version", data: Buffer.from("3\n") });
  return makeZip(records, opts);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A pre-1.6 `torch.save` stream: magic, protocol version, sys info, the state dict, the key list, the storages. */
export function legacyCheckpoint(tensors: FakeTensor[], storages: Record<string, Uint8Array>, itemsize: Record<string, number>): Uint8Array {
  const magic = Buffer.alloc(10);
  magic.writeBigUInt64LE(0x1950a86a20f9469cfc6cn & 0xffffffffffffffffn, 0);
  magic.writeUInt16LE(Number(0x1950a86a20f9469cfc6cn >> 64n), 8);
  const parts: Uint8Array[] = [
    new PickleWriter().proto(2).raw(0x8a, 10, ...magic).stop().bytes(),
    new PickleWriter().proto(2).int(1001).stop().bytes(),
    new PickleWriter().proto(2).emptyDict().mark().str("protocol_version").int(1001).str("little_endian").bool(true).setItems().stop().bytes(),
    stateDictPickle(tensors, { legacy: true }),
  ];
  const keys = Object.keys(storages).sort();
  const list = new PickleWriter().proto(2).emptyList().mark();
  for (const k of keys) list.str(k);
  parts.push(list.appends().stop().bytes());
  for (const k of keys) {
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(storages[k].length / itemsize[k]));
    parts.push(n, storages[k]);
  }
  return Uint8Array.from(Buffer.concat(parts));
}
