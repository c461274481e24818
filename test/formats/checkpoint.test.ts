import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FormatError } from "../../src/errors.js";
import { openCheckpoint } from "../../src/formats/checkpoint.js";
import { checkpointTensors, safetensorsTensors } from "../helpers/tensors.js";
import { writeSafetensors } from "../../src/formats/write-safetensors.js";
import type { RawTensor } from "../../src/formats/tensor.js";
import { f32Bytes, stateDictPickle, torchZip } from "../helpers/zip-writer.js";
import { thrown } from "../helpers/thrown.js";


const root = mkdtempSync(join(tmpdir(), "gpt2-reward-ckpt-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
function folder(files: Record<string, string | Uint8Array | Map<string, RawTensor>>): string {
  const d = join(root, String(folders++));
  mkdirSync(d);
  for (const [name, content] of Object.entries(files)) {
    if (content instanceof Map) writeSafetensors(join(d, name), content);
    else writeFileSync(join(d, name), content);
  }
  return d;
}

const tensor = (values: number[]): RawTensor => ({ dtype: "F32", shape: [values.length], bytes: f32Bytes(values) });
const bin = (name: string, values: number[]): Uint8Array =>
  torchZip(stateDictPickle([{ name, key: "0", cls: "FloatStorage", numel: values.length, size: [values.length], stride: [1] }]), { 0: f32Bytes(values) });
const index = (weightMap: Record<string, string>): string => JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });

/** Same names, dtypes, shapes and bytes. */
function expectSameTensors(a: Map<string, RawTensor>, b: Map<string, RawTensor>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, t] of a) {
    const u = b.get(name)!;
    expect({ name, dtype: u.dtype, shape: u.shape }).toEqual({ name, dtype: t.dtype, shape: t.shape });
    expect(Buffer.compare(Buffer.from(t.bytes), Buffer.from(u.bytes)), name).toBe(0);
  }
}

describe("openCheckpoint on the PyTorch-made fixtures", () => {
  it("f16-8head-bin (pytorch_model.bin) holds the same tensors byte for byte as f16-8head (safetensors), plus the attention buffers", () => {
    const st = checkpointTensors("fixtures/models/f16-8head");
    const pt = checkpointTensors("fixtures/models/f16-8head-bin");
    expect(st.format).toBe("safetensors");
    expect(st.files).toEqual(["fixtures/models/f16-8head/model.safetensors"]);
    expect(pt.format).toBe("pytorch");
    expect(pt.files).toEqual(["fixtures/models/f16-8head-bin/pytorch_model.bin"]);
    const buffers = [...pt.tensors.keys()].filter((k) => /\.attn\.(bias|masked_bias)$/.test(k));
    expect(buffers.length).toBeGreaterThan(0);
    const weights = new Map([...pt.tensors].filter(([k]) => !buffers.includes(k)));
    expectSameTensors(st.tensors, weights);

    for (const name of buffers.filter((k) => k.endsWith(".attn.bias"))) {
      // the causal mask buffer: uint8 [1, 1, P, P], ones on and below the diagonal
      const mask = pt.tensors.get(name)!;
      expect(mask.dtype).toBe("U8");
      const p = mask.shape[3];
      expect(mask.shape).toEqual([1, 1, p, p]);
      const tril = Array.from({ length: p * p }, (_, k) => (k % p <= Math.floor(k / p) ? 1 : 0));
      expect(Array.from(mask.bytes)).toEqual(tril);
    }
  });

  it("sharded-bin equals sharded-st, both read through their index", () => {
    const st = checkpointTensors("fixtures/models/sharded-st");
    const pt = checkpointTensors("fixtures/models/sharded-bin");
    expect(st.files).toEqual([
      "fixtures/models/sharded-st/model.safetensors.index.json",
      "fixtures/models/sharded-st/model-00001-of-00002.safetensors",
      "fixtures/models/sharded-st/model-00002-of-00002.safetensors",
    ]);
    expect(pt.files).toEqual([
      "fixtures/models/sharded-bin/pytorch_model.bin.index.json",
      "fixtures/models/sharded-bin/pytorch_model-00001-of-00002.bin",
      "fixtures/models/sharded-bin/pytorch_model-00002-of-00002.bin",
    ]);
    expect(safetensorsTensors(st.files[1]).metadata.format).toBe("pt");
    expectSameTensors(st.tensors, pt.tensors);
  });

  it("loads a single file or an index file named directly", () => {
    const one = checkpointTensors("fixtures/models/f16-8head-bin/pytorch_model.bin");
    expect(one.format).toBe("pytorch");
    const idx = checkpointTensors("fixtures/models/sharded-st/model.safetensors.index.json");
    expect(idx.format).toBe("safetensors");
    expect(idx.files.length).toBe(3);
  });
});

describe("openCheckpoint folder resolution", () => {
  it("prefers model.safetensors over everything else", () => {
    const d = folder({ "model.safetensors": new Map([["a", tensor([1])]]), "pytorch_model.bin": bin("b", [2]) });
    const c = checkpointTensors(d);
    expect(c.format).toBe("safetensors");
    expect([...c.tensors.keys()]).toEqual(["a"]);
  });

  it("takes the safetensors index before pytorch_model.bin", () => {
    const d = folder({
      "model.safetensors.index.json": index({ a: "s1.safetensors" }),
      "s1.safetensors": new Map([["a", tensor([1])]]),
      "pytorch_model.bin": bin("b", [2]),
    });
    expect(checkpointTensors(d).format).toBe("safetensors");
  });

  it("falls back to pytorch_model.bin, then its index", () => {
    expect(checkpointTensors(folder({ "pytorch_model.bin": bin("b", [2]), "pytorch_model.bin.index.json": "{}" })).format).toBe("pytorch");
    const d = folder({ "pytorch_model.bin.index.json": index({ b: "p1.bin", c: "p2.bin" }), "p1.bin": bin("b", [2]), "p2.bin": bin("c", [3]) });
    const c = checkpointTensors(d);
    expect([...c.tensors.keys()]).toEqual(["b", "c"]);
  });

  it("lists what it looked for when a folder has no checkpoint", () => {
    const e = thrown(() => checkpointTensors(folder({ "config.json": "{}" })));
    expect(e).toBeInstanceOf(FormatError);
    for (const name of ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]) {
      expect(e.message).toContain(name);
    }
  });

  it("names a path that does not exist", () => {
    expect(thrown(() => checkpointTensors(join(root, "nope"))).message).toMatch(/nope: cannot open: ENOENT/);
  });
});

describe("index files are validated before any shard is trusted", () => {
  for (const shard of ["../model.safetensors", "/etc/passwd", "sub/s1.safetensors", "..", "C:evil.safetensors"]) {
    it(`refuses the shard name ${JSON.stringify(shard)}`, () => {
      const d = folder({ "model.safetensors.index.json": index({ a: shard }) });
      expect(thrown(() => checkpointTensors(d)).message).toMatch(/not a plain file name/);
    });
  }

  it("refuses a shard that does not exist", () => {
    const d = folder({ "model.safetensors.index.json": index({ a: "missing.safetensors" }) });
    expect(thrown(() => checkpointTensors(d)).message).toMatch(/names shard missing\.safetensors, which does not exist/);
  });

  it("refuses a tensor that is not in the shard the index puts it in", () => {
    const d = folder({
      "model.safetensors.index.json": index({ a: "s1.safetensors", b: "s1.safetensors" }),
      "s1.safetensors": new Map([["a", tensor([1])]]),
    });
    expect(thrown(() => checkpointTensors(d)).message).toMatch(/puts tensor b in s1\.safetensors, which does not contain it/);
  });

  it("refuses a tensor present in two shards", () => {
    const d = folder({
      "model.safetensors.index.json": index({ a: "s1.safetensors", b: "s2.safetensors" }),
      "s1.safetensors": new Map([["a", tensor([1])]]),
      "s2.safetensors": new Map([["b", tensor([2])], ["a", tensor([3])]]),
    });
    expect(thrown(() => checkpointTensors(d)).message).toMatch(/tensor a is also in shard s1\.safetensors/);
  });

  it("refuses an index without a weight_map object, or not JSON", () => {
    expect(thrown(() => checkpointTensors(folder({ "model.safetensors.index.json": '{"weight_map": []}' }))).message).toMatch(/no weight_map object/);
    expect(thrown(() => checkpointTensors(folder({ "model.safetensors.index.json": "{" }))).message).toMatch(/not valid JSON/);
  });

  it("reads a shard that exists under a copied name", () => {
    const d = folder({ "model.safetensors.index.json": index({ "transformer.wte.weight": "wte.safetensors" }) });
    writeSafetensors(join(d, "wte.safetensors"), new Map([["transformer.wte.weight", tensor([1, 2])]]));
    copyFileSync(join(d, "wte.safetensors"), join(d, "unused.safetensors"));
    expect([...checkpointTensors(d).tensors.keys()]).toEqual(["transformer.wte.weight"]);
  });
});

describe("openCheckpoint reads a block of a tensor from any offset (the loader packs weights block by block)", () => {
  const sources = {
    "safetensors": "fixtures/models/f16-8head",
    "sharded safetensors": "fixtures/models/sharded-st",
    "legacy torch.save": "fixtures/pytorch/legacy.bin",
  };
  for (const [what, path] of Object.entries(sources)) {
    it(`${what}: every block equals the same bytes of the whole tensor`, () => {
      const { tensors } = checkpointTensors(path);
      const ckpt = openCheckpoint(path);
      try {
        for (const [name, t] of tensors) {
          const n = t.bytes.length;
          for (const [at, len] of [[0, n], [0, Math.min(n, 3)], [n - Math.min(n, 5), Math.min(n, 5)], [n >> 1, n - (n >> 1)], [n, 0]]) {
            const dst = new Uint8Array(len);
            ckpt.source.read(name, dst, at);
            expect(Buffer.compare(dst, t.bytes.subarray(at, at + len)), `${name} [${at}, +${len})`).toBe(0);
          }
        }
      } finally {
        ckpt.close();
      }
    });
  }

  it("refuses a block outside the tensor: the caller's bug, a RangeError naming the tensor", () => {
    const ckpt = openCheckpoint("fixtures/models/f16-8head");
    try {
      const name = "score.weight";
      const { dtype, shape } = ckpt.source.info(name);
      const n = shape.reduce((a, b) => a * b, 1) * (dtype === "F32" ? 4 : 2);
      for (const [at, len] of [[1, n], [-1, 2], [n + 1, 0], [0.5, 2]]) {
        expect(() => ckpt.source.read(name, new Uint8Array(len), at)).toThrow(RangeError);
        expect(() => ckpt.source.read(name, new Uint8Array(len), at)).toThrow(/score\.weight/);
      }
    } finally {
      ckpt.close();
    }
  });
});
