/**
 * Fuzzing the safetensors reader: headers built field by field with hostile values, and raw
 * edits of the fixture files. Only FormatErrors with one-line messages may escape, an accepted
 * header must really be valid, and no allocation may exceed what the file's bytes justify.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { Arena } from "../../kernels/arena.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { readConfig } from "../../src/model/config.js";
import { parseIndex } from "../../src/formats/checkpoint.js";
import { writeSafetensors } from "../../src/formats/write-safetensors.js";
import { FormatError } from "../../src/errors.js";
import { parseSafetensorsHeader, safetensorsSource, type SafetensorsHeader } from "../../src/formats/safetensors.js";
import { safetensorsTensors } from "../helpers/tensors.js";
import { DTYPE_BYTES, type DType } from "../../src/formats/tensor.js";
import { loadWeights } from "../../src/model/weights.js";
import { applyMutations, fuzzParams, fuzzTimeout, mutationsArb, oneIn, onlyOurErrors } from "../helpers/fuzz-common.js";
import { byteSize, deepJson, f32Data, safetensorsFromText, tempDir, TINY_CONFIG, TINY_TENSORS } from "../helpers/fuzz-models.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures", "models");
const tmp = tempDir("fuzz-st");
afterAll(() => tmp.cleanup());

// One arena for every load: `release` rewinds it, and its byte length only grows, so after each
// run it tells the most memory any load has asked for.
const arena = new Arena();
const kernels = createTsKernels(arena);
const arenaStart = arena.mark();

function loadInto(file: string, config = TINY_CONFIG) {
  const src = safetensorsSource(file);
  try {
    return loadWeights(src, config, kernels);
  } finally {
    src.close();
    arena.release(arenaStart);
  }
}

/** What an accepted header must satisfy, whatever bytes it came from. */
function checkAccepted(h: SafetensorsHeader, fileSize: number): void {
  let expected = 0;
  for (const [name, e] of h.entries) {
    expect(e.begin, name).toBe(expected);
    expect(e.shape.every((d) => Number.isSafeInteger(d) && d >= 0), name).toBe(true);
    expect(e.end - e.begin, name).toBe(e.shape.reduce((n, d) => n * d, 1) * DTYPE_BYTES[e.dtype]);
    expected = e.end;
  }
  expect(h.dataStart + expected).toBe(fileSize);
}

// ---- structure-aware headers ----

// Generators carry this marker instead of the 40 KB text, so a counterexample prints short;
// `buildFile` swaps it for the real thing.
const DEEP_MARK = "<deep>";
const DEEP = deepJson(20_000);
const junkDtype = fc.oneof(
  fc.constantFrom('"F33"', '""', "5", "null", "[]", "{}", '"f32"', '"__proto__"', '"constructor"', '"BOOL"', '"I64"', '"F8_E4M3"', '"F64"', '"U8"', '"F32 "', "true", DEEP_MARK),
  fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
);
const junkShape = fc.oneof(
  fc.constantFrom(
    "[-1]", "[1.5]", "[1e12, 1e12]", "[1e400]", '["8"]', "[]", "null", "{}", "[9007199254740993]", "[4294967296, 4294967296]",
    "[0]", "[8, -0]", "[8, 8.0000001]", "[true]", "[null]", "[1000000, 1000000, 1000000]", `[8,${"1,".repeat(1000)}8]`, `[${DEEP_MARK}]`, DEEP_MARK,
  ),
  fc.array(fc.integer({ min: -2, max: 64 }), { maxLength: 4 }).map((a) => JSON.stringify(a)),
);
const junkEntry = fc.constantFrom("null", "[]", '"x"', "{}", '{"dtype":"F32"}', '{"dtype":"F32","shape":[8]}', '{"__proto__":{"dtype":"F32"}}', DEEP_MARK);
const junkMetadata = fc.constantFrom('{"format":"pt"}', '{"a":1}', "[]", '"x"', '{"__proto__":"x"}', '{"__proto__":{"a":"b"}}', DEEP_MARK, `{"a":${DEEP_MARK}}`);
const name = fc.oneof(
  fc.constantFrom("__proto__", "__metadata__", "", "constructor", "toString", "a\nb", "\u001b[31mred", "transformer.wte.weight", "score.weight"),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }), // lone surrogates included
);
const OFFSET_EDITS = ["swap", "same", "empty", "plusOne", "minusOne", "huge", "inf", "three", "one", "null", "overlapPrev", "negative", "string", "fraction", "unsafe", "deep"] as const;

type Edit =
  | { kind: "dtype"; token: string }
  | { kind: "shape"; token: string }
  | { kind: "offsets"; how: (typeof OFFSET_EDITS)[number] }
  | { kind: "entry"; token: string }
  | { kind: "duplicate" }
  | { kind: "rename"; name: string }
  | { kind: "extra"; name: string; dtype: DType; n: number };

const edit: fc.Arbitrary<{ target: number; edit: Edit }> = fc.record({
  target: fc.nat({ max: TINY_TENSORS.length - 1 }),
  edit: fc.oneof(
    fc.record({ kind: fc.constant("dtype" as const), token: junkDtype }),
    fc.record({ kind: fc.constant("shape" as const), token: junkShape }),
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("offsets" as const), how: fc.constantFrom(...OFFSET_EDITS) }) },
    fc.record({ kind: fc.constant("entry" as const), token: junkEntry }),
    fc.record({ kind: fc.constant("duplicate" as const) }),
    fc.record({ kind: fc.constant("rename" as const), name }),
    fc.record({ kind: fc.constant("extra" as const), name, dtype: fc.constantFrom<DType>("F32", "F16", "I64", "U8"), n: fc.nat({ max: 5 }) }),
  ),
});

const headerCase = fc.record({
  dtypes: fc.array(fc.constantFrom<DType>("F32", "F16", "BF16"), { minLength: TINY_TENSORS.length, maxLength: TINY_TENSORS.length }),
  /** Sort keys for the order of keys in the JSON text (any order is legal; offsets decide the layout). */
  keyOrder: fc.array(fc.double({ noNaN: true }), { minLength: TINY_TENSORS.length, maxLength: TINY_TENSORS.length }),
  edits: fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 4, arbitrary: fc.array(edit, { minLength: 1, maxLength: 3 }) }),
  metadata: oneIn(3, junkMetadata),
  dataDelta: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -16, max: 16 }) }),
  lengthField: oneIn(8, fc.constantFrom(0n, 1n, 7n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n, 100_000_001n)),
  trailing: oneIn(6, fc.constantFrom("\u0000", "}", " x", "\uFEFF", "\n")),
  bom: fc.boolean(),
});
type HeaderCase = typeof headerCase extends fc.Arbitrary<infer T> ? T : never;

function buildFile(c: HeaderCase): { bytes: Uint8Array; clean: boolean } {
  interface Entry { name: string; dtype: string; shape: string; begin: number; end: number; offsets?: string; raw?: string }
  const datas: Uint8Array[] = [];
  let offset = 0;
  const entries: Entry[] = TINY_TENSORS.map(([n, shape], i) => {
    const dtype = c.dtypes[i];
    const size = byteSize(dtype, shape);
    const data = dtype === "F32" ? f32Data(size / 4, i) : Uint8Array.from({ length: size }, (_, j) => (j * 37 + i) & 0x3f);
    datas.push(data);
    const e = { name: n, dtype: JSON.stringify(dtype), shape: JSON.stringify(shape), begin: offset, end: offset + size };
    offset += size;
    return e;
  });
  const extra: Entry[] = [];
  for (const { target, edit: ed } of c.edits) {
    const e = entries[target];
    const prev = entries[(target + entries.length - 1) % entries.length];
    switch (ed.kind) {
      case "dtype": e.dtype = ed.token; break;
      case "shape": e.shape = ed.token; break;
      case "entry": e.raw = ed.token; break;
      case "duplicate": extra.push({ ...prev, name: e.name }); break;
      case "rename": e.name = ed.name; break;
      case "extra": {
        const size = ed.n * DTYPE_BYTES[ed.dtype];
        datas.push(new Uint8Array(size));
        extra.push({ name: ed.name, dtype: JSON.stringify(ed.dtype), shape: `[${ed.n}]`, begin: offset, end: offset + size });
        offset += size;
        break;
      }
      case "offsets": {
        const { begin: b, end: en } = e;
        e.offsets = {
          swap: `[${en},${b}]`, same: `[${b},${b}]`, empty: "[]", plusOne: `[${b},${en + 1}]`, minusOne: `[${b},${en - 1}]`,
          huge: `[${b},4000000000000]`, inf: `[${b},1e400]`, three: `[${b},${en},${en}]`, one: `[${b}]`, null: "null",
          overlapPrev: `[${prev.begin},${prev.begin + (en - b)}]`, negative: `[-1,${en}]`, string: `["${b}","${en}"]`,
          fraction: `[${b + 0.5},${en}]`, unsafe: `[${b},9007199254740993]`, deep: DEEP_MARK,
        }[ed.how];
        break;
      }
    }
  }
  const members = [...entries, ...extra].map((e, i) => ({ e, key: c.keyOrder[i] ?? i }));
  members.sort((a, b) => a.key - b.key);
  let text =
    (c.bom ? "\uFEFF" : "") +
    "{" +
    [
      ...(c.metadata === null ? [] : [`"__metadata__":${c.metadata}`]),
      ...members.map(({ e }) => `${JSON.stringify(e.name)}:${e.raw ?? `{"dtype":${e.dtype},"shape":${e.shape},"data_offsets":${e.offsets ?? `[${e.begin},${e.end}]`}}`}`),
    ].join(",") +
    "}" +
    (c.trailing ?? "");
  text = text.replaceAll(DEEP_MARK, DEEP);
  let data = Uint8Array.from(Buffer.concat(datas));
  if (c.dataDelta < 0) data = data.slice(0, data.length + c.dataDelta);
  if (c.dataDelta > 0) data = Uint8Array.from(Buffer.concat([data, new Uint8Array(c.dataDelta)]));
  const clean = c.edits.length === 0 && c.dataDelta === 0 && c.lengthField === null && (c.trailing === null || c.trailing === "\n") && !c.bom &&
    (c.metadata === null || c.metadata === '{"format":"pt"}' || c.metadata === '{"__proto__":"x"}');
  return { bytes: safetensorsFromText(text, data, c.lengthField ?? undefined), clean };
}

describe("safetensors headers built field by field", () => {
  it("parseSafetensorsHeader throws only FormatErrors, and what it accepts is contiguous and sized right", () => {
    let accepted = 0;
    fc.assert(
      fc.property(headerCase, (c) => {
        const { bytes, clean } = buildFile(c);
        let h: SafetensorsHeader | undefined;
        onlyOurErrors(() => (h = parseSafetensorsHeader("fuzz.safetensors", bytes, bytes.length)), FormatError);
        if (clean) expect(h?.entries, "a clean file must parse").toBeInstanceOf(Map);
        if (h) {
          accepted++;
          checkAccepted(h, bytes.length);
        }
      }),
      fuzzParams(3),
    );
    expect(accepted).toBeGreaterThan(0); // the generator does produce valid files
  }, fuzzTimeout(3));

  it("every tensor read through safetensorsSource, and loadWeights on the file: FormatErrors only, memory bounded by the file", () => {
    let loaded = 0;
    fc.assert(
      fc.property(headerCase, (c) => {
        const { bytes, clean } = buildFile(c);
        const file = join(tmp.dir, "model.safetensors");
        writeFileSync(file, bytes);
        onlyOurErrors(() => safetensorsTensors(file), FormatError);
        const before = arena.memory.buffer.byteLength;
        const err = onlyOurErrors(() => loadInto(file), FormatError);
        if (clean) expect(err, "a clean file must load").toBeUndefined();
        if (!err) loaded++;
        // The tiny model is 1.6 KB of F32 once widened; 1 MiB is far above it, far below a runaway.
        expect(arena.memory.buffer.byteLength).toBeLessThanOrEqual(Math.max(before, 1 << 20));
      }),
      fuzzParams(0.5),
    );
    expect(loaded).toBeGreaterThan(0);
  }, fuzzTimeout(0.5));
});

// ---- raw edits of the fixture files ----

const fixtureFiles = [
  join(FIXTURES, "demo", "model.safetensors"),
  join(FIXTURES, "f16-8head", "model.safetensors"),
  join(FIXTURES, "bf16-3label", "model.safetensors"),
  join(FIXTURES, "sharded-st", "model-00001-of-00002.safetensors"),
  join(FIXTURES, "sharded-st", "model-00002-of-00002.safetensors"),
];

describe.each(fixtureFiles.map((f) => [f.split("/").slice(-2).join("/"), f]))("raw edits of %s", (_, file) => {
  const whole = readFileSync(file);
  const headerEnd = 8 + Number(whole.readBigUInt64LE(0));
  // The header parser reads only the header and the file size: edit the header and the first
  // KB of data in memory, and add the untouched rest of the file back as a size.
  const head = Uint8Array.from(whole.subarray(0, headerEnd + 1024));
  const hot: [number, number][] = [[0, 8], [8, headerEnd], [headerEnd - 16, headerEnd + 16]];

  it("the header parser throws only FormatErrors, and what it accepts is valid", () => {
    fc.assert(
      fc.property(mutationsArb(hot.length), (muts) => {
        const bytes = applyMutations(head, muts, hot);
        const size = whole.length - head.length + bytes.length;
        let h: SafetensorsHeader | undefined;
        onlyOurErrors(() => (h = parseSafetensorsHeader("fuzz.safetensors", bytes, size)), FormatError);
        if (h) checkAccepted(h, size);
      }),
      fuzzParams(1),
    );
  }, fuzzTimeout(1));
});

describe("raw edits of a whole model file, loaded", () => {
  const dir = join(FIXTURES, "f16-8head");
  const whole = readFileSync(join(dir, "model.safetensors"));
  const config = readConfig(join(dir, "config.json"));
  const headerEnd = 8 + Number(whole.readBigUInt64LE(0));
  const hot: [number, number][] = [[0, headerEnd], [headerEnd, whole.length]];

  it("safetensorsSource + loadWeights throw only FormatErrors and allocate no more than the model", () => {
    fc.assert(
      fc.property(mutationsArb(hot.length, 4), (muts) => {
        const bytes = applyMutations(whole, muts, hot);
        const file = join(tmp.dir, "whole.safetensors");
        writeFileSync(file, bytes);
        onlyOurErrors(() => loadInto(file, config), FormatError);
        // The F16 model widens to about 2× its file in F32, plus packing; 4× is the ceiling.
        expect(arena.memory.buffer.byteLength).toBeLessThanOrEqual(4 * whole.length);
      }),
      fuzzParams(0.2),
    );
  }, fuzzTimeout(0.2));
});

// ---- the index of a sharded checkpoint ----

describe("model.safetensors.index.json", () => {
  it("parseIndex throws only FormatErrors, and accepts only plain shard names", () => {
    const shard = fc.oneof(
      fc.constantFrom('"model-00001-of-00002.safetensors"', '"../x"', '"/etc/passwd"', '"a/b"', '"C:x"', '""', '"."', '".."', '"a\\u0000b"', "1", "null", "[]", DEEP_MARK),
      fc.string({ maxLength: 10 }).map((x) => JSON.stringify(x)),
    );
    const index = fc.oneof(
      fc.array(fc.tuple(name, shard), { maxLength: 4 }).map((kv) => `{"metadata":{},"weight_map":{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}}`),
      fc.constantFrom("", "{", "[]", "null", '{"weight_map":[]}', '{"weight_map":null}', `{"weight_map":${DEEP_MARK}}`, DEEP_MARK),
    );
    fc.assert(
      fc.property(index, (text) => {
        let shards: Map<string, string[]> | undefined;
        onlyOurErrors(() => (shards = parseIndex("model.safetensors.index.json", text.replaceAll(DEEP_MARK, DEEP))), FormatError);
        for (const s of shards?.keys() ?? []) expect(s.length > 0 && s !== "." && s !== ".." && !/[/\\\0]/.test(s)).toBe(true);
      }),
      fuzzParams(2),
    );
  }, fuzzTimeout(2));
});

// ---- the cases the fuzzer is after, pinned ----

describe("huge declarations are refused before any allocation", () => {
  it("a header declaring a 10^12-element tensor over 16 bytes of data", () => {
    const text = JSON.stringify({ "transformer.wte.weight": { dtype: "F32", shape: [1_000_000, 1_000_000], data_offsets: [0, 4e12] } });
    const bytes = safetensorsFromText(text, new Uint8Array(16));
    const file = join(tmp.dir, "huge.safetensors");
    writeFileSync(file, bytes);
    const before = process.memoryUsage().arrayBuffers;
    const e = onlyOurErrors(() => safetensorsTensors(file), FormatError);
    expect(e?.message).toMatch(/huge\.safetensors: tensor transformer\.wte\.weight ends at data offset 4000000000000, past the 16 data bytes after the header/);
    expect(onlyOurErrors(() => loadInto(file), FormatError)?.message).toBe(e?.message);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it("a header whose 10^12-element shape disagrees with its small data_offsets", () => {
    const text = JSON.stringify({ t: { dtype: "F32", shape: [1_000_000, 1_000_000], data_offsets: [0, 16] } });
    const bytes = safetensorsFromText(text, new Uint8Array(16));
    const e = onlyOurErrors(() => parseSafetensorsHeader("h.safetensors", bytes, bytes.length), FormatError);
    expect(e?.message).toMatch(/tensor t has shape \[1000000, 1000000\] of F32 \(4000000000000 bytes\) but data_offsets span 16 bytes/);
  });

  it("a config asking for a 128,000,000-element embedding is refuted by the small file before the arena grows", () => {
    // Before weights.ts allocated lazily, this allocated 3 GB and only then compared shapes.
    const file = join(tmp.dir, "tiny.safetensors");
    writeFileSync(file, buildFile({ dtypes: TINY_TENSORS.map(() => "F32"), keyOrder: [], edits: [], metadata: null, dataDelta: 0, lengthField: null, trailing: null, bom: false }).bytes);
    const config = { ...TINY_CONFIG, vocab_size: 8_000_000, n_embd: 16, n_head: 2, n_inner: 64 };
    const before = arena.memory.buffer.byteLength;
    const e = onlyOurErrors(() => loadInto(file, config), FormatError);
    expect(e?.message).toMatch(/tensor transformer\.wte\.weight has shape \[16, 8\], config expects \[8000000, 16\]/);
    expect(arena.memory.buffer.byteLength).toBe(before);
  });

  it("values nested 20,000 deep in dtype, shape or data_offsets give FormatErrors, not stack overflows", () => {
    for (const entry of [`{"dtype":${DEEP},"shape":[1],"data_offsets":[0,4]}`, `{"dtype":"F32","shape":[${DEEP}],"data_offsets":[0,4]}`, `{"dtype":"F32","shape":[1],"data_offsets":${DEEP}}`]) {
      const bytes = safetensorsFromText(`{"t":${entry}}`, new Uint8Array(4));
      const e = onlyOurErrors(() => parseSafetensorsHeader("deep.safetensors", bytes, bytes.length), FormatError);
      expect(e?.message).toMatch(/^deep\.safetensors: tensor t/);
    }
  });

  it("a tensor name with a newline or a terminal escape still gives a one-line message", () => {
    const bytes = safetensorsFromText(JSON.stringify({ "a\nb\u001b[2J": { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }), new Uint8Array(1));
    const e = onlyOurErrors(() => parseSafetensorsHeader("n.safetensors", bytes, bytes.length), FormatError);
    expect(e?.message).toBe('n.safetensors: tensor a\\nb\\u001b[2J has unknown or unsupported dtype "Q4"');
  });
});

describe("tensor names that mean something to JavaScript", () => {
  it("__proto__, constructor and toString survive a write and a read", () => {
    const file = join(tmp.dir, "proto.safetensors");
    const names = ["__proto__", "constructor", "toString", "hasOwnProperty"];
    writeSafetensors(file, names.map((n, i) => [n, { dtype: "F32", shape: [i + 1], bytes: new Uint8Array(4 * (i + 1)) }]));
    const { tensors } = safetensorsTensors(file);
    expect([...tensors.keys()]).toEqual(names);
    expect(names.map((n) => tensors.get(n)!.shape)).toEqual([[1], [2], [3], [4]]);
  });
});
