/**
 * Our logits against Hugging Face transformers' (fixtures/golden, written by
 * fixtures/export_golden.py with PyTorch): every model, every text, every pooling rule, alone
 * and in batches, within 2e-5; plus per-layer hidden states, to locate a mismatch.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { forward } from "../../src/model/gpt2.js";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { POOLING_RULES, scoredPosition } from "../../src/model/pooling.js";
import { encode, encodeTruncated, truncateLeft } from "../../src/model/tokenizer.js";
import type { GoldenFile } from "../../src/cli/verify.js";
import { maxAbsDiff, sameBits } from "../helpers/random.js";
import { referenceEncode } from "../helpers/gpt2-bpe.js";

const TOLERANCE = 2e-5;
const FIXTURES = join(import.meta.dirname, "..", "..", "fixtures");
const texts: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8"));

interface Golden extends GoldenFile {
  same_as?: string;
  hidden_states?: { text_index: number; ids: number[]; layers: number[][] };
}

function readGoldenFor(model: string): Golden {
  const g = JSON.parse(readFileSync(join(FIXTURES, "golden", `${model}.json`), "utf8")) as Golden;
  return g.same_as ? readGoldenFor(g.same_as) : g;
}

const models = readdirSync(join(FIXTURES, "models")).filter((m) => existsSync(join(FIXTURES, "models", m, "config.json")));

it("has golden models to check, with at least 40 texts", () => {
  expect(models.length).toBeGreaterThanOrEqual(4);
  expect(texts.length).toBeGreaterThanOrEqual(40);
});

// Every kernel set (the reference loops, the TS and the wasm kernels), and the thread pool,
// must meet the same tolerance.
const setups = [
  { kernels: "ref", threads: 1 },
  { kernels: "ts", threads: 1 },
  { kernels: "wasm", threads: 2 },
] as const;
const cases = models.flatMap((name) => setups.map((s) => ({ name, ...s })));

describe.each(cases)("model $name, $kernels kernels, $threads thread(s)", ({ name, kernels, threads }) => {
  const golden = readGoldenFor(name);
  const model = SyncRewardModel.load(join(FIXTURES, "models", name), { kernels, threads });
  afterAll(() => model.close());

  it("tokenizes every golden text to HF's ids, truncated from the left", () => {
    for (const s of golden.singles) {
      const t = truncateLeft(encode(texts[s.text_index]), golden.max_length);
      expect(t.ids, `text ${s.text_index}`).toEqual(s.ids);
      expect(t.truncated, `text ${s.text_index}`).toBe(s.truncated);
    }
  });

  it.each(POOLING_RULES)("scores every text alone like HF with pooling %s", (rule) => {
    const ours = model.score(golden.singles.map((s) => texts[s.text_index]), { pooling: rule, maxLength: golden.max_length, batchSize: 5 });
    golden.singles.forEach((s, i) => {
      const diff = maxAbsDiff(ours[i].logits, s.logits[rule]);
      expect(diff, `text ${s.text_index}: ours ${ours[i].logits} vs HF ${s.logits[rule]}`).toBeLessThanOrEqual(TOLERANCE);
      expect(ours[i].tokens).toBe(s.ids.length);
      expect(ours[i].truncated).toBe(s.truncated);
    });
  });

  it("scores HF's padded batches like HF does with the current (last-non-pad) rule", () => {
    for (const b of golden.batches) {
      const ours = model.score(b.text_indices.map((i) => texts[i]), { batchSize: b.text_indices.length, maxLength: golden.max_length });
      b.text_indices.forEach((ti, row) => {
        expect(maxAbsDiff(ours[row].logits, b.logits["last-non-pad"][row]), `batch row ${row} (text ${ti})`).toBeLessThanOrEqual(TOLERANCE);
      });
    }
  });

  it("gives each text bit-identical logits whatever batch it is in", () => {
    const some = golden.singles.slice(0, 12).map((s) => texts[s.text_index]);
    const alone = some.map((t) => model.score([t])[0].logits);
    for (const batchSize of [2, 5, 12]) {
      const batched = model.score(some, { batchSize });
      batched.forEach((r, i) => expect(sameBits(Float32Array.from(r.logits), Float32Array.from(alone[i]))).toBe(true));
    }
    const reversed = model.score(some.slice().reverse(), { batchSize: 4 }).reverse();
    reversed.forEach((r, i) => expect(r.logits).toEqual(alone[i]));
  });

  if (golden.hidden_states) {
    it("matches HF's hidden states after the embeddings, every block and ln_f", () => {
      const hs = golden.hidden_states!;
      const seen: Float32Array[] = [];
      forward(model, model.runner, [hs.ids], [scoredPosition(hs.ids, model.config.pad_token_id, "last-non-pad")], {
        onHiddenState: (_, x) => seen.push(x.slice(0, hs.ids.length * model.config.n_embd)),
      });
      // HF reports embeddings, then blocks 1..n-1, then ln_f(block n) in place of block n's raw output.
      const ours = [...seen.slice(0, model.config.n_layer), seen[model.config.n_layer + 1]];
      expect(ours).toHaveLength(hs.layers.length);
      hs.layers.forEach((layer, l) => {
        const scale = Math.max(1, ...layer.map(Math.abs));
        expect(maxAbsDiff(ours[l], layer) / scale, `hidden state ${l}`).toBeLessThanOrEqual(TOLERANCE);
      });
    });
  }
});

describe("tokenizer against HF's GPT2Tokenizer (fixtures/golden/tokenizer.json)", () => {
  const golden = JSON.parse(readFileSync(join(FIXTURES, "golden", "tokenizer.json"), "utf8")) as {
    cases: { text_index: number; ids: number[]; ids_256: number[]; ids_8: number[] }[];
    empty_string_ids: number[];
    whitespace_edge_cases: { text: string; ids: number[] }[];
  };

  it("covers every golden text", () => {
    expect(golden.cases.map((c) => c.text_index).sort((a, b) => a - b)).toEqual(texts.map((_, i) => i));
  });

  it.each(golden.cases.map((c) => [c.text_index, JSON.stringify(texts[c.text_index].slice(0, 40)), c] as const))(
    "text %i %s: full ids, and the last 256 and last 8 after left truncation",
    (i, _, c) => {
      expect(encode(texts[i])).toEqual(c.ids);
      expect(encodeTruncated(texts[i], 256).ids).toEqual(c.ids_256);
      expect(encodeTruncated(texts[i], 8).ids).toEqual(c.ids_8);
    },
  );

  it("gives no ids for an empty string, as HF does", () => {
    expect(encode("")).toEqual(golden.empty_string_ids);
  });

  // Python's \s (U+0085 in, U+FEFF out) where JavaScript's differs, and its neighbours.
  it.each(golden.whitespace_edge_cases.map((c) => [JSON.stringify(c.text), c] as const))("whitespace edge case %s", (_, c) => {
    expect(encode(c.text)).toEqual(c.ids);
    expect(referenceEncode(c.text)).toEqual(c.ids);
  });
});
