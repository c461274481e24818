import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { safetensorsTensors } from "../helpers/tensors.js";
import { convertTensor, writeSafetensors } from "../../src/formats/write-safetensors.js";
import { f16ToF32, type DType, type RawTensor } from "../../src/formats/tensor.js";
import { FIXTURES, runCli } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-convert-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bytesOf = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);

describe("writeSafetensors", () => {
  const tensors: [string, RawTensor][] = [
    ["transformer.wte.weight", { dtype: "F32", shape: [5, 3], bytes: bytesOf(60, 1) }],
    ["transformer.h.0.attn.bias", { dtype: "U8", shape: [1, 1, 4, 4], bytes: bytesOf(16, 2) }],
    ["half", { dtype: "F16", shape: [3], bytes: bytesOf(6, 3) }],
    ["bf", { dtype: "BF16", shape: [2, 1], bytes: bytesOf(4, 4) }],
    ["step", { dtype: "I64", shape: [], bytes: bytesOf(8, 5) }],
    ["empty", { dtype: "F32", shape: [0, 7], bytes: new Uint8Array(0) }],
    ["flags", { dtype: "BOOL", shape: [3], bytes: Uint8Array.from([1, 0, 1]) }],
  ];

  it("round-trips through safetensorsSource: same names, dtypes, shapes, bytes and metadata", () => {
    const file = join(dir, "rt.safetensors");
    writeSafetensors(file, tensors, { format: "pt", note: "round trip" });
    const back = safetensorsTensors(file);
    expect(back.metadata).toEqual({ format: "pt", note: "round trip" });
    expect([...back.tensors.keys()]).toEqual(tensors.map(([n]) => n));
    for (const [name, t] of tensors) {
      const r = back.tensors.get(name)!;
      expect({ dtype: r.dtype, shape: r.shape, bytes: Array.from(r.bytes) }).toEqual({ dtype: t.dtype, shape: t.shape, bytes: Array.from(t.bytes) });
    }
  });

  it("writes the standard layout: padded compact header, __metadata__ first, data in header order", () => {
    const file = join(dir, "layout.safetensors");
    writeSafetensors(file, new Map(tensors));
    const raw = readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = raw.subarray(8, 8 + n).toString("utf8");
    expect(header.startsWith('{"__metadata__":{"format":"pt"},"transformer.wte.weight":')).toBe(true);
    expect(header.trimEnd()).toBe(JSON.stringify(JSON.parse(header))); // compact, only trailing spaces
    const json = JSON.parse(header) as Record<string, { data_offsets: [number, number] }>;
    let at = 0;
    for (const [name, t] of tensors) {
      expect(json[name].data_offsets).toEqual([at, at + t.bytes.length]);
      expect(Array.from(raw.subarray(8 + n + at, 8 + n + at + t.bytes.length))).toEqual(Array.from(t.bytes));
      at += t.bytes.length;
    }
    expect(raw.length).toBe(8 + n + at);
    expect(existsSync(`${file}.tmp`)).toBe(false);
  });

  it("refuses a tensor whose bytes do not match its shape, and a repeated name", () => {
    const file = join(dir, "bad.safetensors");
    expect(() => writeSafetensors(file, [["x", { dtype: "F32", shape: [2], bytes: new Uint8Array(7) }]])).toThrow(/holds 7 bytes/);
    const t: RawTensor = { dtype: "U8", shape: [1], bytes: new Uint8Array(1) };
    expect(() => writeSafetensors(file, [["x", t], ["x", t]])).toThrow(/repeated/);
    expect(existsSync(file)).toBe(false);
  });

  it("never leaves a half-written file at the final name when writing fails midway", () => {
    const file = join(dir, "atomic.safetensors");
    writeFileSync(file, "previous contents");
    let reads = 0;
    const failing = {
      dtype: "F32" as DType,
      shape: [4],
      // the first read (validation) succeeds; the second (writing the data) fails like a disk would
      get bytes(): Uint8Array {
        if (++reads > 1) throw new Error("simulated I/O failure");
        return new Uint8Array(16);
      },
    };
    expect(() => writeSafetensors(file, [["a", tensors[0][1]], ["b", failing]])).toThrow(/simulated/);
    expect(readFileSync(file, "utf8")).toBe("previous contents");
    expect(readdirSync(dir).filter((f) => f.startsWith("atomic"))).toEqual(["atomic.safetensors"]);
  });
});

// ---- conversion ----

/**
 * Reference rounding straight from the IEEE definition: list every finite non-negative value of
 * the format (decoded from its bit pattern), add the value one ulp past the largest finite one as
 * the stand-in for +Inf (IEEE rounds to Inf from there), and pick the nearest, ties to the even
 * bit pattern.
 */
function referenceRounder(maxFiniteBits: number, infBits: number, decode: (bits: number) => number, infValue: number): (x: number) => number {
  const values: number[] = [];
  for (let b = 0; b <= maxFiniteBits; b++) values.push(decode(b));
  values.push(infValue);
  const bitsAt = (i: number): number => (i === values.length - 1 ? infBits : i);
  const signBit = 0x8000;
  return (x: number): number => {
    const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
    const a = Math.abs(x);
    if (a >= infValue) return sign | infBits;
    let lo = 0;
    let hi = values.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (values[mid] <= a) lo = mid;
      else hi = mid;
    }
    const dLo = a - values[lo];
    const dHi = values[hi] - a;
    const pick = dLo < dHi ? lo : dHi < dLo ? hi : bitsAt(lo) % 2 === 0 ? lo : hi;
    return sign | bitsAt(pick);
  };
}

const bf16ToF32 = (bits: number): number => {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, bits << 16);
  return dv.getFloat32(0);
};
const refF16 = referenceRounder(0x7bff, 0x7c00, f16ToF32, 2 ** 16);
const refBF16 = referenceRounder(0x7f7f, 0x7f80, bf16ToF32, 2 ** 128);

function tensorOf(dtype: "F32" | "F64", values: number[]): RawTensor {
  const bytes = dtype === "F32" ? new Uint8Array(Float32Array.from(values).buffer) : new Uint8Array(Float64Array.from(values).buffer);
  return { dtype, shape: [values.length], bytes };
}

function bitsOf(t: RawTensor): number[] {
  return Array.from({ length: t.bytes.length / 2 }, (_, i) => t.bytes[2 * i] | (t.bytes[2 * i + 1] << 8));
}

/** Values at and around every kind of boundary, all exactly representable as F32. */
function trickyValues(): number[] {
  const out: number[] = [0, -0, 1, -1, 0.1, 1 / 3, Math.PI, 65504, 65519, 65520, 65536, 1e5, -1e5, 3.4e38, 1e-8, 2 ** -24, 2 ** -25, 2 ** -26, 3 * 2 ** -26, 2 ** -14, 2 ** -126, 2 ** -133, 2 ** -134, 2 ** -149];
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  // midpoints between neighbouring F16 and BF16 values, and the F32 values just either side of them
  for (const h of [0x0001, 0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x3c02, 0x7bfe, 0x7bff]) {
    const mid = (f16ToF32(h) + (h === 0x7bff ? 65536 : f16ToF32(h + 1))) / 2;
    f32[0] = mid;
    out.push(f32[0]);
    const at = u32[0];
    u32[0] = at + 1; out.push(f32[0]);
    u32[0] = at - 1; out.push(f32[0]);
  }
  for (const b of [0x0001, 0x007f, 0x0080, 0x3f80, 0x3f81, 0x7f7e, 0x7f7f]) {
    u32[0] = (b << 16) | 0x8000; // exact midpoint to the next BF16 value
    for (const d of [0, 1, -1]) {
      const save = u32[0];
      u32[0] = save + d;
      out.push(f32[0]);
      u32[0] = save;
    }
  }
  return [...out, ...out.map((v) => -v)];
}

describe("convertTensor", () => {
  it("rounds F32 to F16 to nearest, ties to even, like the IEEE definition (incl. subnormals and overflow)", () => {
    const values = trickyValues();
    expect(bitsOf(convertTensor(tensorOf("F32", values), "F16"))).toEqual(values.map(refF16));
  });

  it("rounds F32 to BF16 to nearest, ties to even, like the IEEE definition", () => {
    const values = trickyValues();
    expect(bitsOf(convertTensor(tensorOf("F32", values), "BF16"))).toEqual(values.map(refBF16));
  });

  it("matches the reference on 20,000 random F32 bit patterns", () => {
    const u32 = new Uint32Array(20_000);
    let s = 12345;
    for (let i = 0; i < u32.length; i++) u32[i] = s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const values = Array.from(new Float32Array(u32.buffer)).filter((v) => !Number.isNaN(v));
    const t = tensorOf("F32", values);
    expect(bitsOf(convertTensor(t, "F16"))).toEqual(values.map(refF16));
    expect(bitsOf(convertTensor(t, "BF16"))).toEqual(values.map(refBF16));
  });

  it("pins a few values by hand", () => {
    const f16 = (x: number): number => bitsOf(convertTensor(tensorOf("F64", [x]), "F16"))[0];
    // F16 1.0 has biased exponent 15 and fraction 0; its ulp is 2^-10
    expect(f16(1)).toBe(15 << 10);
    expect(f16(1 + 2 ** -11)).toBe(15 << 10); // tie between fractions 0 and 1: even → 0
    expect(f16(1 + 3 * 2 ** -11)).toBe((15 << 10) | 2); // tie between fractions 1 and 2: even → 2
    expect(f16(2 ** -24)).toBe(1); // smallest subnormal
    expect(f16(2 ** -25)).toBe(0); // half of it: tie → even (zero)
    expect(f16(65520)).toBe(0x7c00); // halfway past the largest finite (65504): overflows to Inf
    expect(f16(-0)).toBe(0x8000);
  });

  it("rounds an F64 source once, not through F32 (no double rounding)", () => {
    // 1 + 2^-8 + 2^-30: through F32 it becomes 1 + 2^-8, an exact BF16 tie that goes to 1.0;
    // rounded directly it is above the tie and must go up to 1 + 2^-7.
    const x = 1 + 2 ** -8 + 2 ** -30;
    expect(Math.fround(x)).toBe(1 + 2 ** -8);
    expect(bitsOf(convertTensor(tensorOf("F64", [x]), "BF16"))).toEqual([refBF16(x)]);
    expect(refBF16(x)).toBe((127 << 7) | 1);
    const y = 1 + 2 ** -11 + 2 ** -40; // same for F16
    expect(bitsOf(convertTensor(tensorOf("F64", [y]), "F16"))).toEqual([(15 << 10) | 1]);
  });

  it("keeps NaN a NaN and infinities infinite", () => {
    const t = tensorOf("F32", [NaN, Infinity, -Infinity]);
    const h = convertTensor(t, "F16");
    expect(Array.from(bitsOf(h), f16ToF32)).toEqual([NaN, Infinity, -Infinity]);
    const b = convertTensor(t, "BF16");
    expect(Array.from(bitsOf(b), bf16ToF32)).toEqual([NaN, Infinity, -Infinity]);
  });

  it("widens F16 and BF16 to F32 exactly, and F32 to itself unchanged", () => {
    const h: RawTensor = { dtype: "F16", shape: [4], bytes: Uint8Array.from([0x01, 0x00, 0xff, 0x7b, 0x00, 0xfc, 0x55, 0x35]) };
    const f = convertTensor(h, "F32");
    expect(Array.from(new Float32Array(f.bytes.buffer))).toEqual(bitsOf(h).map(f16ToF32));
    const t = tensorOf("F32", [1, 2]);
    expect(convertTensor(t, "F32")).toBe(t);
  });

  it("leaves integer and bool tensors (like attn.bias) as they are", () => {
    const mask: RawTensor = { dtype: "U8", shape: [1, 1, 2, 2], bytes: Uint8Array.from([1, 0, 1, 1]) };
    expect(convertTensor(mask, "F16")).toBe(mask);
  });
});

// ---- the convert command ----

describe("gpt2-reward convert: never loses a file by mistake", () => {
  const BIN = join(FIXTURES, "models", "f16-8head-bin");
  const SMALL = join(FIXTURES, "models", "f16-8head");

  it("creates the output folder, writes config.json with torch_dtype set, and takes torch's and HF's dtype names", () => {
    const out = join(dir, "made", "for", "you", "model.safetensors");
    const r = runCli(["convert", BIN, out, "--dtype", "float16"]);
    expect(r.status, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, "made", "for", "you", "config.json"), "utf8"));
    expect(config.torch_dtype).toBe("float16");
    expect({ ...config, torch_dtype: undefined }).toEqual({ ...JSON.parse(readFileSync(join(BIN, "config.json"), "utf8")), torch_dtype: undefined });
    expect(runCli(["score", "--model", join(dir, "made", "for", "you"), "hello"]).stdout).toBe(runCli(["score", "--model", BIN, "hello"]).stdout);
    for (const [name, torch] of [["fp16", "float16"], ["half", "float16"], ["bfloat16", "bfloat16"], ["bf16", "bfloat16"], ["float32", "float32"], ["fp32", "float32"], ["float", "float32"], ["torch.float16", "float16"]]) {
      const o = join(dir, `names-${name}`, "model.safetensors");
      expect(runCli(["convert", BIN, o, "--dtype", name]).status, name).toBe(0);
      expect(JSON.parse(readFileSync(join(dir, `names-${name}`, "config.json"), "utf8")).torch_dtype).toBe(torch);
    }
    const bad = runCli(["convert", BIN, join(dir, "x", "m.safetensors"), "--dtype", "float8"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^gpt2-reward: --dtype must be .*got "float8"; see gpt2-reward convert --help\n$/);
  });

  it("refuses to overwrite without --force, and a config.json beside that describes another model or dtype", () => {
    const folder = join(dir, "guarded");
    const out = join(folder, "model.safetensors");
    expect(runCli(["convert", BIN, out, "--dtype", "f16"]).status).toBe(0);
    const before = readFileSync(out);
    const again = runCli(["convert", BIN, out, "--dtype", "bf16"]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^gpt2-reward: .*model\.safetensors: already exists; use --force to replace it\n$/);
    expect(readFileSync(out)).toEqual(before);
    // A second model (another dtype) into the same folder: its config would no longer describe model.safetensors.
    const second = runCli(["convert", BIN, join(folder, "other.safetensors"), "--dtype", "bf16"]);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/config\.json: already there and describes another model \(or dtype\) than .*config\.json as bfloat16; convert into another folder, or use --force to replace it\n$/);
    expect(existsSync(join(folder, "other.safetensors"))).toBe(false);
    // The same config (same model, same dtype) is fine beside it.
    expect(runCli(["convert", BIN, join(folder, "copy.safetensors"), "--dtype", "float16"]).status).toBe(0);
    const forced = runCli(["convert", BIN, out, "--dtype", "bf16", "--force"]);
    expect(forced.status, forced.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(folder, "config.json"), "utf8")).torch_dtype).toBe("bfloat16");
  });

  it("refuses an output that is the checkpoint it reads, even with --force", () => {
    const folder = join(dir, "self");
    mkdirSync(folder);
    for (const f of ["config.json", "model.safetensors"]) writeFileSync(join(folder, f), readFileSync(join(SMALL, f)));
    const before = readFileSync(join(folder, "model.safetensors"));
    const r = runCli(["convert", folder, join(folder, "model.safetensors"), "--dtype", "bf16", "--force"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/model\.safetensors: is the checkpoint being converted \(.*model\.safetensors\); write to another file\n$/);
    expect(readFileSync(join(folder, "model.safetensors"))).toEqual(before);
  });

  it("writes through an exclusively created temporary file: a symlink planted at the old <out>.tmp name is never followed", () => {
    const folder = join(dir, "planted");
    mkdirSync(folder);
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "do not touch");
    symlinkSync(victim, join(folder, "model.safetensors.tmp"));
    expect(runCli(["convert", BIN, join(folder, "model.safetensors")]).status).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("do not touch");
    expect(readdirSync(folder).sort()).toEqual(["config.json", "model.safetensors", "model.safetensors.tmp"]);
  });
});
