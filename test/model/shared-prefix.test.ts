/**
 * Less work, same bits: a batch computes a prefix its texts share once, and the last block only
 * at the scored tokens; every text's logits stay bit-identical to scoring it alone with every
 * block on every token. Every fixture model, both kernel sets at 1 and 2 threads, and the
 * reference kernels (one thread).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { encode } from "../../src/model/tokenizer.js";
import type { PoolingRule } from "../../src/model/pooling.js";
import { planBatch } from "../../src/model/batch-plan.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures");
const texts: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8"));
const models = readdirSync(join(FIXTURES, "models")).filter((m) => existsSync(join(FIXTURES, "models", m, "config.json")));
const EOS = 50256;

/** Token ids of golden texts with at least n tokens. */
const long = texts.map((t) => encode(t)).filter((ids) => ids.length >= 60);
const context = long[0].slice(0, 50);
const reply = (i: number, n: number) => long[1 + (i % (long.length - 1))].slice(i, i + n);

/** Batches over the same texts: sharing nothing, a part, all; a text that is another's prefix; identical texts. */
const batches: Record<string, number[][]> = {
  "best-of-N: one context, 6 replies": Array.from({ length: 6 }, (_, i) => [...context, ...reply(i, 3 + 4 * i)]),
  "nothing shared": long.slice(0, 5).map((ids, i) => ids.slice(i, i + 20 + i)),
  "two contexts, a text that is the other's prefix, identical texts": [
    [...context, ...reply(1, 9)], [...context.slice(0, 30)], [...long[2].slice(0, 40), 5, 6], [...context],
    [...context.slice(0, 30)], [...long[2].slice(0, 40)], [...context, ...reply(1, 9)], [...context, ...reply(1, 4)],
  ],
  "the pad id inside the shared context (scored inside the prefix by before-first-pad)": [
    [...context.slice(0, 20), EOS, ...context.slice(20), ...reply(2, 5)], [...context.slice(0, 20), EOS, ...context.slice(20)],
    [...context.slice(0, 20), EOS, ...reply(3, 7)], [EOS, ...reply(4, 6)],
  ],
};

it("the best-of-N batch computes its context once", () => {
  const seqs = batches["best-of-N: one context, 6 replies"];
  const plan = planBatch(seqs, seqs.map((t) => t.length - 1));
  expect(plan.ids.length).toBe(context.length + seqs.reduce((a, t) => a + t.length - context.length, 0));
});

const bits = (logits: number[]) => Array.from(new Uint32Array(Float32Array.from(logits).buffer));

const setups = models.flatMap((name) => [
  ...(["ts", "wasm"] as const).flatMap((kernels) => [1, 2].map((threads) => ({ name, kernels, threads }))),
  { name, kernels: "ref" as const, threads: 1 },
]);

describe.each(setups)("model $name, $kernels kernels, $threads thread(s)", ({ name, kernels, threads }) => {
  const model = SyncRewardModel.load(join(FIXTURES, "models", name), { kernels, threads });
  afterAll(() => model.close());

  const cases = Object.entries(batches).flatMap(([what, seqs]) =>
    ([256, 24] as const).flatMap((maxLength) => (["last-non-pad", "before-first-pad"] as PoolingRule[]).map((pooling) => ({ what, seqs, maxLength, pooling }))));

  it.each(cases)("$what, max length $maxLength, $pooling: in one batch, each text's bits alone", ({ seqs, maxLength, pooling }) => {
    const together = model.scoreIds(seqs, { maxLength, pooling, batchSize: seqs.length });
    const alone = seqs.map((ids) => model.scoreIds([ids], { maxLength, pooling })[0]);
    // ...and alone with every block on every token (the hidden-state hook turns the last-block saving off).
    const full = seqs.map((ids) => {
      const t = ids.length > maxLength ? ids.slice(ids.length - maxLength) : ids;
      return model.scoreTokenized([{ ids: t, truncated: t !== ids }], { pooling }, { onHiddenState: () => {} })[0];
    });
    seqs.forEach((_, i) => {
      expect(bits(together[i].logits), `text ${i} in the batch`).toEqual(bits(alone[i].logits));
      expect(bits(full[i].logits), `text ${i} with the full last block`).toEqual(bits(alone[i].logits));
      expect(together[i].tokens).toBe(alone[i].tokens);
    });
  });
});
