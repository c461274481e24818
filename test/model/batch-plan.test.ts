/**
 * The batch plan: texts that begin with the same ids share rows, and every query still sees
 * exactly its own text's tokens at or before it, in position order.
 */
import { describe, expect, it } from "vitest";
import { causalPlan } from "../../kernels/attention.js";
import { planBatch, prefixOrder, type BatchPlan } from "../../src/model/batch-plan.js";
import { rng } from "../helpers/random.js";

/** Every query of the plan, as (its row, the rows of the keys it sees). */
function queries(p: { blocks: Int32Array; keyRows: Int32Array }): { q: number; out: number; keys: number[] }[] {
  const all = [];
  for (let b = 0; b < p.blocks.length / 5; b++) {
    const [qRow, count, outRow, keyStart, seen] = p.blocks.subarray(b * 5, b * 5 + 5);
    for (let i = 0; i < count; i++) all.push({ q: qRow + i, out: outRow + i, keys: Array.from(p.keyRows.subarray(keyStart, keyStart + seen + i)) });
  }
  return all;
}

/** Checks the plan against the texts: the properties the forward pass relies on. */
function checkPlan(plan: BatchPlan, seqs: number[][], scored: number[]): void {
  const R = plan.ids.length;
  // Every row is one query of the every-row plan, writing its own row, seeing position+1 keys
  // that hold positions 0..its own, the last being itself.
  const every = queries(plan.rows);
  expect(every.map((e) => e.q).sort((a, b) => a - b)).toEqual(Array.from({ length: R }, (_, r) => r));
  for (const { q, out, keys } of every) {
    expect(out).toBe(q);
    expect(keys.map((k) => plan.positions[k])).toEqual(Array.from({ length: plan.positions[q] + 1 }, (_, p) => p));
    expect(keys[keys.length - 1]).toBe(q);
  }
  // Each text's scored query sees exactly that text's ids up to its scored position.
  const scoredQueries = queries(plan.scored);
  expect(scoredQueries.map((e) => e.out)).toEqual(seqs.map((_, s) => s));
  seqs.forEach((ids, s) => {
    const { q, keys } = scoredQueries[s];
    expect(q).toBe(plan.scoredRows[s]);
    expect(keys.map((k) => plan.ids[k])).toEqual(ids.slice(0, scored[s] + 1));
    expect(keys.map((k) => plan.positions[k])).toEqual(ids.slice(0, scored[s] + 1).map((_, p) => p));
    // and every row on the way is a row whose keys are the same text's prefix
    for (const k of keys) expect(every.find((e) => e.q === k)!.keys.map((r) => plan.ids[r])).toEqual(ids.slice(0, plan.positions[k] + 1));
  });
  expect(plan.maxKeys).toBe(Math.max(...seqs.map((t) => t.length)));
}

describe("planBatch", () => {
  it("lays texts that share nothing end to end, in input order: the plan of each text alone", () => {
    const seqs = [[5, 6, 7], [1], [2, 3]];
    const plan = planBatch(seqs, [2, 0, 1]);
    expect(Array.from(plan.ids)).toEqual([5, 6, 7, 1, 2, 3]);
    expect(Array.from(plan.positions)).toEqual([0, 1, 2, 0, 0, 1]);
    const alone = causalPlan([0, 3, 4, 6]);
    expect(Array.from(plan.rows.blocks)).toEqual(Array.from(alone.blocks));
    expect(Array.from(plan.rows.keyRows)).toEqual(Array.from(alone.keyRows));
    expect(Array.from(plan.scoredRows)).toEqual([2, 3, 5]);
    checkPlan(plan, seqs, [2, 0, 1]);
  });

  it("computes a shared prefix once: best-of-N is the context plus the replies", () => {
    const context = [10, 11, 12, 13, 14];
    const seqs = [[...context, 1, 2], [...context, 3], [...context, 1, 4, 4]];
    const scored = seqs.map((t) => t.length - 1);
    const plan = planBatch(seqs, scored);
    // context 5 + "1" shared by texts 0 and 2 + "2" + "3" + "4 4"
    expect(plan.ids.length).toBe(5 + 1 + 1 + 1 + 2);
    checkPlan(plan, seqs, scored);
  });

  it("handles a text that is a prefix of another, identical texts, and scored positions inside the prefix", () => {
    const seqs = [[1, 2, 3], [1, 2, 3, 4, 5], [1, 2, 3], [7], [1, 2, 9]];
    const scored = [2, 1, 0, 0, 2];
    const plan = planBatch(seqs, scored);
    expect(plan.ids.length).toBe(3 + 2 + 1 + 1);
    expect(plan.scoredRows[0]).toBe(plan.scoredRows[2] + 2);
    checkPlan(plan, seqs, scored);
  });

  it("keeps every query's keys right for random batches over a small vocabulary (many shared prefixes)", () => {
    const next = rng(15);
    for (let trial = 0; trial < 300; trial++) {
      const S = 1 + Math.floor(next() * 9);
      const base = Array.from({ length: 12 }, () => Math.floor(next() * 3));
      const seqs = Array.from({ length: S }, () => {
        const keep = Math.floor(next() * 13);
        const tail = Array.from({ length: 1 + Math.floor(next() * 6) }, () => Math.floor(next() * 3));
        return [...base.slice(0, keep), ...tail];
      });
      const scored = seqs.map((t) => Math.floor(next() * t.length));
      const plan = planBatch(seqs, scored);
      expect(plan.ids.length).toBeLessThanOrEqual(seqs.reduce((a, t) => a + t.length, 0));
      checkPlan(plan, seqs, scored);
    }
  });
});

describe("prefixOrder", () => {
  it("puts texts that share a prefix next to each other, a prefix before its extensions, ties in input order", () => {
    const seqs = [[9, 1], [5, 6, 7, 1], [3], [5, 6, 7], [9, 1], [5, 6, 7, 2], [5, 8]];
    expect(prefixOrder(seqs)).toEqual([2, 3, 1, 5, 6, 0, 4]);
  });

  it("groups best-of-N replies by conversation whatever the input order, so each batch of N shares one context", () => {
    const next = rng(3);
    const contexts = Array.from({ length: 4 }, (_, c) => [100 + c, ...Array.from({ length: 30 }, () => Math.floor(next() * 50))]);
    const seqs = contexts.flatMap((ctx) => Array.from({ length: 8 }, () => [...ctx, ...Array.from({ length: 5 }, () => Math.floor(next() * 50))]));
    const shuffled = seqs.map((t, i) => ({ t, k: next(), i })).sort((a, b) => a.k - b.k).map((x) => x.t);
    const order = prefixOrder(shuffled);
    for (let b = 0; b < 4; b++) {
      const batch = order.slice(b * 8, b * 8 + 8).map((i) => shuffled[i]);
      expect(new Set(batch.map((t) => t[0])).size, "one conversation per batch").toBe(1);
      const plan = planBatch(batch, batch.map((t) => t.length - 1));
      expect(plan.ids.length).toBeLessThanOrEqual(31 + 8 * 5); // the context once (replies may share a first token too)
    }
  });
});
