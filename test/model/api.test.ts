/** The public API as a user imports it from the package entry point: an asynchronous model whose forward runs in a worker thread. */
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import * as api from "../../src/index.js";
import { FIXTURES } from "../helpers/cli.js";
import { POISON, referenceEncode } from "../helpers/gpt2-bpe.js";

const folder = join(FIXTURES, "models", "bf16-3label");
const demo = join(FIXTURES, "models", "demo");
const texts = JSON.parse((await import("node:fs")).readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8")) as string[];

describe("RewardModel", async () => {
  const model = await api.RewardModel.fromPretrained(folder, { threads: 1 });
  const sync = api.SyncRewardModel.load(folder, { threads: 1 });
  afterAll(async () => {
    await model.close();
    await sync.close();
  });

  it("exposes the parsed config and label names", () => {
    expect(model.config).toMatchObject({ n_layer: 3, n_embd: 32, n_head: 2, num_labels: 3, layer_norm_epsilon: 1e-4, pad_token_id: 50256 });
    expect(model.labels).toEqual(["bad", "ok", "good"]);
    expect(model.threads).toBe(1);
    expect(model.files[0]).toBe(join(folder, "config.json"));
  });

  it("scores texts and pre-tokenized ids the same way", async () => {
    const text = "User: hi\nBot: hello!";
    const { ids } = model.tokenize(text);
    expect(ids).toEqual(api.encode(text));
    const [a] = await model.score([text]);
    const [b] = await model.scoreIds([ids]);
    expect(a).toEqual(b);
    expect(a.logits).toHaveLength(3);
  });

  it("gives the synchronous core's results bit for bit, for every batch size and pooling rule", async () => {
    for (const batchSize of [1, 3, 64]) {
      for (const pooling of api.POOLING_RULES) {
        const opts = { batchSize, pooling, maxLength: 64 };
        expect(await model.score(texts, opts)).toEqual(sync.score(texts, opts));
      }
    }
  });

  it("refuses an empty text and an out-of-vocabulary id with InputError", async () => {
    await expect(model.score(["fine", ""])).rejects.toThrow(api.InputError);
    await expect(model.score(["fine", ""])).rejects.toThrow(/text 1: empty text/);
    await expect(model.scoreIds([[50257]])).rejects.toThrow(api.InputError);
    await expect(model.scoreIds([[]])).rejects.toThrow(/empty list of ids/);
  });

  it("prepares ids as scoreIds does (the CLI's jobs call prepareIds): checked, left-truncated, the same on both models", async () => {
    const ids = [464, 3290, 318, 257, 1332];
    for (const m of [model, sync]) {
      expect(m.prepareIds(ids, 3)).toEqual({ ids: [318, 257, 1332], truncated: true });
      expect(m.prepareIds(ids)).toEqual({ ids, truncated: false });
      expect(() => m.prepareIds([1, 50257], 3)).toThrow(api.InputError);
      expect(() => m.prepareIds([1, 50257], 3)).toThrow(/^id 50257 is outside the vocabulary \(0 to 50256\)$/);
      expect(() => m.prepareIds([], 3)).toThrow(/^empty list of ids: nothing to score$/);
    }
    const [prepared] = await model.scoreTokenized([model.prepareIds(ids, 3)]);
    expect(prepared).toEqual((await model.scoreIds([ids], { maxLength: 3 }))[0]);
    expect(prepared).toMatchObject({ tokens: 3, truncated: true });
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

  it("checks options and inputs with the CLI's words, never a TypeError", async () => {
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => model.score(["a"], { pooling: "last_non_pad" as api.PoolingRule }), /^pooling must be last-non-pad, before-first-pad or non-pad-count, got "last_non_pad"$/],
      [() => model.score(["a"], { batchSize: 0 }), /^batch size must be a positive integer, got 0$/],
      [() => model.score(["a"], { maxLength: 1.5 }), /^max length must be a positive integer, got 1.5$/],
      [() => model.score(["a"], { maxLength: 1025 }), /max length 1025 exceeds the model's n_positions 1024/],
      [() => model.score("text" as unknown as string[]), /^texts must be an array of strings, got "text"$/],
      [() => model.score([7 as unknown as string]), /^text 0: must be a string, got 7$/],
      [() => model.scoreIds(null as unknown as number[][]), /^ids must be an array of id lists, got null$/],
      [() => model.scoreIds([null as unknown as number[]]), /^ids 0: ids must be an array of integers, got null$/],
      [() => model.scoreIds([[1.5]]), /^ids 0: id 1.5 is outside the vocabulary \(0 to 50256\)$/],
      [() => model.rank(null as unknown as string, ["a"], { label: "good" }), /^context must be a string, got null$/],
      [() => model.rank("a", [], { label: "good" }), /^replies is empty: nothing to rank$/],
      [() => api.RewardModel.load(folder, { kernels: "gpu" as api.KernelChoice }), /^kernels must be auto, wasm, ts or ref, got "gpu"$/],
      [() => api.RewardModel.load(folder, { dtype: "f8" as api.WeightDTypeChoice }), /^dtype must be f32, f16 or bf16, got "f8"$/],
      [() => api.RewardModel.load(folder, { threads: 0 }), /^threads must be an integer from 1 to 256, got 0$/],
      [() => api.RewardModel.fromPretrained(folder, { threads: "2" as unknown as number }), /^threads must be an integer from 1 to 256, got "2"$/],
      [() => api.RewardModel.load(join(folder, "nope")), /nope: no such file or folder$/],
      [() => api.RewardModel.load(null as unknown as string), /^the model path must be a string, got null$/],
      [async () => model.tokenize(null as unknown as string), /^text must be a string, got null$/],
    ];
    for (const [call, message] of cases) {
      const e = await call().then(() => null, (err: unknown) => err);
      expect(e, String(message)).toBeInstanceOf(api.Gpt2RewardError);
      expect((e as Error).message).toMatch(message);
    }
    // Input mistakes are InputErrors (one bad text among many), option mistakes Gpt2RewardErrors.
    await expect(model.scoreIds(null as unknown as number[][])).rejects.toThrow(api.InputError);
    await expect(model.score(["a"], { batchSize: 0 })).rejects.not.toThrow(api.InputError);
  });

  it("loads from a weights file with config.json beside it", async () => {
    const m = await api.RewardModel.load(join(folder, "model.safetensors"), { threads: 1 });
    expect(await m.score(["abc"])).toEqual(await model.score(["abc"]));
    await m.close();
  });

  it("ranks replies as score would score context + reply, best first", async () => {
    const context = "User: How was your day?\nBot:";
    const replies = [" Lovely, thanks!", " ok", " I spent it reading by the sea.", " ok"];
    const ranked = await model.rank(context, replies, { label: "good" });
    const scored = await model.score(replies.map((r) => context + r));
    expect(ranked.results).toEqual(scored);
    // Several labels rank by the softmax probability of one: P(good) here.
    const pGood = scored.map(({ logits }) => Math.exp(logits[2]) / logits.reduce((sum, l) => sum + Math.exp(l), 0));
    expect(ranked.by).toBe("P(good)");
    ranked.scores.forEach((s, i) => expect(s).toBeCloseTo(pGood[i], 12));
    const expected = [0, 1, 2, 3].sort((a, b) => ranked.scores[b] - ranked.scores[a] || a - b);
    expect(ranked.order).toEqual(expected);
    expect(ranked.best).toBe(expected[0]);
    expect(await model.rank(context, replies, { label: 2 })).toEqual(ranked);
    expect(sync.rank(context, replies, { label: "good" })).toEqual(ranked);
    // The last label by default, as the CLI's rank and the server's /rank and /get_reward.
    expect(await model.rank(context, replies)).toEqual(ranked);
    expect((await model.rank(context, replies, { label: "bad" })).by).toBe("P(bad)");
    await expect(model.rank(context, replies, { label: "great" })).rejects.toThrow(/^label "great": not a label of this model \("bad", "ok", "good"\); give a label or an index from 0 to 2$/);
    await expect(model.rank(context, replies, { label: 0, pairwise: true })).rejects.toThrow(/pairwise preferences need a one-label reward model; this one has 3 labels/);
  });
});

describe("RewardModel.rank on a one-label reward model", async () => {
  const model = await api.RewardModel.load(demo, { threads: 1 });
  afterAll(() => model.close());

  it("gives the pairwise preference σ(r_a − r_b) on request", async () => {
    const replies = [" hello", " go away", " hey there, how are you?"];
    const ranked = await model.rank("User: hi\nBot:", replies, { pairwise: true });
    const r = ranked.scores;
    for (let a = 0; a < r.length; a++) {
      for (let b = 0; b < r.length; b++) {
        expect(ranked.preferences![a][b]).toBeCloseTo(1 / (1 + Math.exp(r[b] - r[a])), 12);
        expect(ranked.preferences![a][b] + ranked.preferences![b][a]).toBeCloseTo(1, 12);
      }
    }
    expect(ranked.scores).toEqual((await model.score(replies.map((x) => "User: hi\nBot:" + x))).map((x) => x.logits[0]));
  });
});

describe("the forward runs off the caller's thread", () => {
  it("keeps timers firing during a multi-second batch", async () => {
    const model = await api.RewardModel.load(demo, { threads: 1 });
    try {
      // Long texts (256 tokens each) in one batch: one uninterrupted forward pass of seconds.
      const long = texts.concat(texts).slice(0, 48).map((t, i) => `${i} ${t}`.repeat(Math.ceil(4000 / t.length)));
      const gaps: number[] = [];
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        gaps.push(now - last);
        last = now;
      }, 5);
      const t0 = performance.now();
      const results = await model.score(long, { batchSize: long.length });
      const took = performance.now() - t0;
      clearInterval(timer);
      expect(results.every((r) => r.tokens === 256)).toBe(true);
      expect(took).toBeGreaterThan(500); // long enough to have blocked a synchronous caller visibly
      // The timer fired all along (a synchronous forward would give one gap as long as the batch)...
      expect(gaps.length).toBeGreaterThan(took / 5 / 4);
      expect(Math.max(...gaps)).toBeLessThan(took / 4);
      // ...and typically on time: the median lag stays far under 50 ms even on a busy machine.
      const sorted = gaps.slice().sort((a, b) => a - b);
      expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThan(50);
    } finally {
      await model.close();
    }
  });
});

describe("closing and failures", () => {
  it("a closed model refuses calls at once; calls made before close() still finish", async () => {
    const model = await api.RewardModel.load(folder, { threads: 2 });
    const before = model.score(texts);
    const closing = model.close();
    await expect(model.score(["abc"])).rejects.toThrow(/^the model is closed$/);
    await expect(model.rank("a", ["b"], { label: 0 })).rejects.toThrow(/^the model is closed$/);
    expect(await before).toHaveLength(texts.length);
    await closing;
    await model.close(); // again: nothing to do
    expect(model.closed).toBe(true);
    const sync = api.SyncRewardModel.load(folder, { threads: 2 });
    await sync.close();
    expect(() => sync.score(["abc"])).toThrow(/^the model is closed$/);
  });

  it("a worker thread that dies fails the call in progress with a clear error, and the model says it is closed", async () => {
    const model = await api.RewardModel.load(demo, { threads: 1 });
    const inFlight = model.score(texts.map((t) => t.repeat(40)), { batchSize: 64 });
    // As a crash would: the thread is stopped from outside, not through close().
    await (model as unknown as { thread: { terminate(): Promise<void> } }).thread.terminate();
    await expect(inFlight).rejects.toThrow(/^the model's worker thread stopped \(it exited with code 1\); the model is closed$/);
    expect(model.closed).toBe(true);
    await expect(model.score(["abc"])).rejects.toThrow(/the model's worker thread stopped/);
    await model.close();
  });

  it("a load that fails leaves no thread behind and says why", async () => {
    await expect(api.RewardModel.load(join(FIXTURES, "golden"))).rejects.toThrow(/no config\.json in this folder/);
  });
});

describe("lower layers", () => {
  it("exports the forward pass, kernels with references, readers and writers", () => {
    for (const name of ["forward", "loadWeights", "readConfig", "matmulReference", "matmulPacked", "attentionReference", "attention", "layernormReference", "layernorm", "geluReference", "softmaxReference", "residualReference", "embedding", "createTsKernels", "createWasmKernels", "openCheckpoint", "safetensorsSource", "pytorchSource", "readTensor", "writeSafetensors", "scoredPosition", "encodeTruncated"]) {
      expect(typeof (api as Record<string, unknown>)[name], name).toBe("function");
    }
  });
});

describe("checkpoint keys", () => {
  it("scores a checkpoint saved without the transformer. prefix exactly like the original", async () => {
    const { mkdtempSync, copyFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-noprefix-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true })); // npm test leaves no temp folder behind
    const src = api.safetensorsSource(join(folder, "model.safetensors"));
    api.writeSafetensors(join(dir, "model.safetensors"), src.names().map((k) => [k.replace(/^transformer\./, ""), api.readTensor(src, k)] as [string, api.RawTensor]));
    src.close();
    copyFileSync(join(folder, "config.json"), join(dir, "config.json"));
    const stripped = api.SyncRewardModel.load(dir, { threads: 1 });
    const written = api.openCheckpoint(dir);
    expect(written.source.names()).toContain("wte.weight");
    written.close();
    const original = api.SyncRewardModel.load(folder, { threads: 1 });
    expect(stripped.score(["User: hi\nBot: hello"])).toEqual(original.score(["User: hi\nBot: hello"]));
  });
});
