/**
 * runScoreJob's isolation rules, with a model whose failures we choose: a batch whose forward
 * pass throws is scored again text by text so only the guilty text errs; a throw while preparing
 * a line is that line's error; a model that fails on everything stops the job instead of writing
 * an error for every line.
 */
import { describe, expect, it } from "vitest";
import { runScoreJob, type OutputRecord } from "../../src/cli/job.js";
import type { InputItem } from "../../src/cli/input.js";
import type { RewardModel } from "../../src/model/async-model.js";

const POISON = 666;

/** A stand-in model: a text's ids are its char codes; its "logit" is its token count. */
function fakeModel(opts: { broken?: boolean } = {}) {
  const calls: number[][] = [];
  const model = {
    config: { n_embd: 32, n_inner: 128, n_layer: 2, vocab_size: 50257, n_positions: 1024, num_labels: 1 },
    checkMaxLength: () => {},
    prepareIds: (ids: number[]) => ({ ids, truncated: false }),
    tokenize: (text: string) => {
      if (text === "explode") throw new RangeError("Maximum call stack size exceeded");
      return { ids: [...text].map((c) => (c === "☠" ? POISON : c.charCodeAt(0))), truncated: false };
    },
    scoreTokenized: async (items: { ids: number[]; truncated: boolean }[]) => {
      calls.push(items.map((it) => it.ids.length));
      if (opts.broken || items.some((it) => it.ids.includes(POISON))) throw new Error("the forward pass failed");
      return items.map((it) => ({ logits: [it.ids.length], tokens: it.ids.length, truncated: it.truncated }));
    },
  };
  return { model: model as unknown as RewardModel, calls };
}

async function* lines(texts: string[]): AsyncIterable<InputItem> {
  for (const text of texts) yield { kind: "text", text };
}

describe("one bad line never takes down a job", () => {
  it("a batch whose forward pass throws is scored again text by text: only the guilty text gets the error", async () => {
    const { model, calls } = fakeModel();
    const texts = ["aa", "bbbb", "c☠c", "ddd", "eeeee", "f"];
    const out: OutputRecord[] = [];
    const r = await runScoreJob(model, lines(texts), (rec) => void out.push(rec), { batchSize: 3 });
    expect(r).toEqual({ lines: 6, own: 6, failed: 1, interrupted: false });
    expect(out).toEqual([
      { index: 0, logits: [2], tokens: 2, truncated: false },
      { index: 1, logits: [4], tokens: 4, truncated: false },
      { index: 2, error: "internal error on this line (a bug, please report it): Error: the forward pass failed" },
      { index: 3, logits: [3], tokens: 3, truncated: false },
      { index: 4, logits: [5], tokens: 5, truncated: false },
      { index: 5, logits: [1], tokens: 1, truncated: false },
    ]);
    // Two batches of 3; the one holding c☠c fails and is scored again text by text (3 calls of one
    // text), then a one-token text checks that the model itself still works (1 more).
    expect(calls.filter((c) => c.length === 3)).toHaveLength(2);
    expect(calls.filter((c) => c.length === 1)).toHaveLength(4);
    expect(calls).toHaveLength(6);
  });

  it("a throw while a line is prepared (a tokenizer bug) is that line's error", async () => {
    const { model } = fakeModel();
    const out: OutputRecord[] = [];
    await runScoreJob(model, lines(["ok", "explode", "fine"]), (rec) => void out.push(rec));
    expect(out.map((o) => ("error" in o ? o.error : o.logits[0]))).toEqual([
      2, "internal error on this line (a bug, please report it): RangeError: Maximum call stack size exceeded", 4,
    ]);
  });

  it("a model that fails on every text (even a one-token one) stops the job with its error", async () => {
    const { model } = fakeModel({ broken: true });
    const out: OutputRecord[] = [];
    await expect(runScoreJob(model, lines(["a", "b", "c"]), (rec) => void out.push(rec))).rejects.toThrow("the forward pass failed");
    expect(out).toEqual([]);
  });
});
