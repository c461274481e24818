/**
 * Text pairs against fixtures/golden/pairs.json (transformers 4.40.2's
 * `tokenizer(text, text_pair, truncation=..., max_length=...)` and the demo model's logits):
 * longest_first truncation from either side, and the untruncated pair.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeCapped, encodePair, encodePairWhole, longestFirst, type TruncationSide } from "../../src/model/pairs.js";
import { POOLING_RULES } from "../../src/model/pooling.js";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { encode } from "../../src/model/tokenizer.js";
import { FIXTURES } from "../helpers/cli.js";

interface PairsGolden {
  pairs: { pair_index: number; name: string; text: string; text_pair: string; ids: number[]; pair_ids: number[] }[];
  cases: { pair_index: number; truncation_side: TruncationSide | null; max_length: number | null; strategy: string; kept: [number, number]; sequence_index: number }[];
  sequences: { sequence_index: number; input_ids: number[]; logits: Record<string, number[]> }[];
}

const golden = JSON.parse(readFileSync(join(FIXTURES, "golden", "pairs.json"), "utf8")) as PairsGolden;
// The strategies a TEI-compatible server uses: longest_first (truncate) and none.
const cases = golden.cases.filter((c) => c.strategy === "longest_first" || c.strategy === "do_not_truncate");

describe("text pairs as HF's tokenizer(text, text_pair)", () => {
  it("the golden file holds longest_first cases from both sides and untruncated pairs", () => {
    expect(cases.filter((c) => c.strategy === "longest_first" && c.truncation_side === "left").length).toBeGreaterThan(50);
    expect(cases.filter((c) => c.strategy === "longest_first" && c.truncation_side === "right").length).toBeGreaterThan(50);
    expect(cases.filter((c) => c.strategy === "do_not_truncate").length).toBe(golden.pairs.length);
  });

  it("tokenizes each side as HF does", () => {
    for (const p of golden.pairs) {
      expect(encode(p.text), p.name).toEqual(p.ids);
      expect(encode(p.text_pair), p.name).toEqual(p.pair_ids);
    }
  });

  it("keeps the same tokens of each side as HF, for every side and max length", () => {
    for (const c of cases) {
      const p = golden.pairs[c.pair_index];
      const name = `${p.name} ${c.strategy} ${c.truncation_side} ${c.max_length}`;
      const ours = c.strategy === "do_not_truncate" ? encodePairWhole(p.text, p.text_pair) : encodePair(p.text, p.text_pair, c.max_length!, c.truncation_side!);
      expect(ours.kept, name).toEqual(c.kept);
      expect(ours.ids, name).toEqual(golden.sequences[c.sequence_index].input_ids);
      expect(ours.truncated, name).toBe(c.kept[0] < p.ids.length || c.kept[1] < p.pair_ids.length);
      if (c.strategy === "longest_first") expect(longestFirst(p.ids.length, p.pair_ids.length, c.max_length!), name).toEqual(c.kept);
    }
  });

  it("a long side costs only what it keeps, with the same ids as tokenizing it whole", () => {
    const long = golden.pairs.map((p) => p.text).join("\n").repeat(40);
    const whole = encode(long);
    for (const side of ["left", "right"] as const) {
      const capped = encodeCapped(long, 100, side);
      expect(capped.truncated).toBe(true);
      expect(capped.ids).toEqual(side === "left" ? whole.slice(whole.length - 100) : whole.slice(0, 100));
      const pair = encodePair(long, "User: hi", 64, side);
      expect(pair.kept).toEqual([64 - encode("User: hi").length, encode("User: hi").length]);
    }
  });

  describe("scored by the demo model", () => {
    const model = SyncRewardModel.load(join(FIXTURES, "models", "demo"), { threads: 1, kernels: "ts" });
    afterAll(() => model.close());

    it("gives HF's logits for every distinct pair sequence, with every pooling rule (atol 2e-5)", () => {
      const used = [...new Set(cases.map((c) => c.sequence_index))].map((i) => golden.sequences[i]);
      for (const rule of POOLING_RULES) {
        const ours = model.scoreTokenized(used.map((s) => ({ ids: s.input_ids, truncated: false })), { pooling: rule, batchSize: 16 });
        used.forEach((s, i) => {
          s.logits[rule].forEach((v, k) => expect(Math.abs(ours[i].logits[k] - v), `sequence ${s.sequence_index} ${rule}`).toBeLessThanOrEqual(2e-5));
        });
      }
    });
  });
});
