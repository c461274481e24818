/**
 * The tokenizer on hostile text: runs of every kind (whitespace of each Unicode kind, newlines,
 * CRLF, symbols, letters, digits, CJK, emoji, contractions, the special token) mixed at random
 * lengths up to a few thousand characters. Every text gives exactly the ids of the slow
 * reference (GPT-2's encoder.py, transcribed), and the tail shortcut keeps exactly its last ids.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encode, encodeTruncated, truncateLeft } from "../../src/model/tokenizer.js";
import { referenceEncode } from "../helpers/gpt2-bpe.js";
import { fuzzParams, fuzzTimeout } from "../helpers/fuzz-common.js";

const UNITS = [" ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u00a0", "\u3000", "\u2028", "\u1680", "\ufeff", "\u0085",
  "!", "?", "-", "'", "'s", "'ll", "a", "Z", "é", "日", "7", "٣", "🙂", "\u0301", "<|endoftext|>", "\u0000", "\u007f"];

/** A text of runs: each run repeats one unit 1 to 2000 times. */
const runs = fc.array(fc.tuple(fc.constantFrom(...UNITS), fc.integer({ min: 1, max: 2000 })), { minLength: 1, maxLength: 6 })
  .map((rs) => rs.map(([unit, n]) => unit.repeat(n)).join(""));

describe("tokenizer fuzz: runs of every kind", () => {
  it("gives the reference's ids, and the tail shortcut keeps exactly the last ones", () => {
    fc.assert(
      fc.property(runs, fc.integer({ min: 1, max: 300 }), (text, maxLength) => {
        const ids = encode(text);
        expect(ids).toEqual(referenceEncode(text));
        expect(encodeTruncated(text, maxLength)).toEqual(truncateLeft(ids, maxLength));
      }),
      fuzzParams(0.5),
    );
  }, fuzzTimeout(0.5));
});
