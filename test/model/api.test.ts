/** The public API as a user imports it from the package entry point. */
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as api from "../../src/index.js";
import { FIXTURES } from "../helpers/cli.js";
import { POISON, referenceEncode } from "../helpers/gpt2-bpe.js";

const folder = join(FIXTURES, "models", "bf16-3label");

describe("RewardModel", async () => {
  const model = await api.RewardModel.fromPretrained(folder, { threads: 1 });
  afterAll(() => model.close());

  it("exposes the parsed config and label names", () => {
    expect(model.config).toMatchObject({ n_layer: 3, n_embd: 32, n_head: 2, num_labels: 3, layer_norm_epsilon: 1e-4, pad_token_id: 50256 });
    expect(model.labels).toEqual(["bad", "ok", "good"]);
  });

  it("scores texts and pre-tokenized ids the same way", () => {
    const text = "User: hi\nBot: hello!";
    const { ids } = model.tokenize(text);
    expect(ids).toEqual(api.encode(text));
    const [a] = model.score([text]);
    const [b] = model.scoreIds([ids]);
    expect(a).toEqual(b);
    expect(a.logits).toHaveLength(3);
  });

  it("refuses an empty text and an out-of-vocabulary id with InputError", () => {
    expect(() => model.score(["fine", ""])).toThrow(api.InputError);
    expect(() => model.score(["fine", ""])).toThrow(/text 1: empty text/);
    expect(() => model.scoreIds([[50257]])).toThrow(api.InputError);
    expect(() => model.scoreIds([[]])).toThrow(/empty list of ids/);
  });

  it("loads from a weights file with config.json beside it", () => {
    const m = api.RewardModel.load(join(folder, "model.safetensors"), { threads: 1 });
    expect(m.score(["abc"])).toEqual(model.score(["abc"]));
  });

  it("scores texts with a long run of any kind (whitespace, newlines, symbols, one word) like their reference ids", async () => {
    const texts = Object.values(POISON);
    const scored = await model.score(texts);
    expect(scored.map((r) => r.truncated)).toEqual(texts.map(() => true));
    const tails = texts.map((t) => api.truncateLeft(referenceEncode(t), 256).ids);
    expect(scored.map((r) => r.logits)).toEqual((await model.scoreIds(tails)).map((r) => r.logits));
  });

  it("refuses a text whose one run exceeds MAX_PIECE_BYTES with InputError, naming the text", async () => {
    const huge = `a${" ".repeat(api.MAX_PIECE_BYTES + 2)}b`;
    await expect(async () => model.score(["fine", huge])).rejects.toThrow(api.InputError);
    await expect(async () => model.score(["fine", huge])).rejects.toThrow(/^text 1: text has a run of 8388609 bytes with no break/);
  });

  it("refuses a max length beyond n_positions", () => {
    expect(() => model.score(["abc"], { maxLength: 1025 })).toThrow(/exceeds the model's n_positions 1024/);
  });
});

describe("lower layers", () => {
  it("exports the forward pass, kernels with references, readers and writers", () => {
    for (const name of ["forward", "loadWeights", "readConfig", "matmulReference", "matmulPacked", "attentionReference", "attention", "layernormReference", "layernorm", "geluReference", "softmaxReference", "residualReference", "embedding", "createTsKernels", "createWasmKernels", "readSafetensors", "readPytorchCheckpoint", "loadCheckpoint", "writeSafetensors", "scoredPosition", "encodeTruncated"]) {
      expect(typeof (api as Record<string, unknown>)[name], name).toBe("function");
    }
  });
});

describe("checkpoint keys", () => {
  it("scores a checkpoint saved without the transformer. prefix exactly like the original", async () => {
    const { mkdtempSync, copyFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-noprefix-"));
    const { tensors } = api.readSafetensors(join(folder, "model.safetensors"));
    api.writeSafetensors(join(dir, "model.safetensors"), [...tensors].map(([k, t]) => [k.replace(/^transformer\./, ""), t] as [string, api.RawTensor]));
    copyFileSync(join(folder, "config.json"), join(dir, "config.json"));
    const stripped = api.RewardModel.load(dir, { threads: 1 });
    expect(api.readSafetensors(join(dir, "model.safetensors")).tensors.has("wte.weight")).toBe(true);
    const original = api.RewardModel.load(folder, { threads: 1 });
    expect(stripped.score(["User: hi\nBot: hello"])).toEqual(original.score(["User: hi\nBot: hello"]));
  });
});
