/** Tokenizer behaviour beyond the goldens: long runs, truncation, the tail shortcut, bad input. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { ENDOFTEXT_ID, MAX_PIECE_BYTES, encode, encodeTruncated, truncateLeft } from "../../src/model/tokenizer.js";
import { FIXTURES } from "../helpers/cli.js";
import { POISON, referenceEncode } from "../helpers/gpt2-bpe.js";
import { rng } from "../helpers/random.js";

describe("the slow reference (GPT-2's encoder.py, transcribed)", () => {
  it("gives HF's ids for every golden text", () => {
    const texts = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8")) as string[];
    const golden = JSON.parse(readFileSync(join(FIXTURES, "golden", "tokenizer.json"), "utf8")) as { cases: { text_index: number; ids: number[] }[] };
    for (const c of golden.cases) expect(referenceEncode(texts[c.text_index])).toEqual(c.ids);
  });
});

// The runs used to overflow the stack (spaces, tabs, CRLF, U+3000), take minutes (newlines, CJK)
// or be refused (a long word); HF has no golden for texts this long, so the reference judges.
describe("long runs: every kind of run is tokenized, to exactly the reference's ids", () => {
  it.each(Object.entries(POISON))("%s", (_, text) => {
    const ids = encode(text);
    expect(ids).toEqual(referenceEncode(text));
    expect(encodeTruncated(text, 256)).toEqual(truncateLeft(ids, 256));
  });

  it("mixed runs of every whitespace and symbol kind give the reference's ids", () => {
    const rand = rng(12);
    const parts = [" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\v", "\f", "!", "?!", "--", "'s", "a", "日", "7", "🙂", "\u2028"];
    for (let trial = 0; trial < 40; trial++) {
      let text = "";
      const n = 200 + Math.floor(rand() * 4000);
      for (let i = 0; i < n; i++) text += parts[Math.floor(rand() * (trial % 2 ? 10 : parts.length))];
      expect(encode(text)).toEqual(referenceEncode(text));
    }
  });

  it("refuses a single run beyond MAX_PIECE_BYTES with an InputError for that text", () => {
    const text = `a${" ".repeat(MAX_PIECE_BYTES + 2)}b`;
    expect(() => encode(text)).toThrow(InputError);
    expect(() => encode(text)).toThrow(/^text has a run of 8388609 bytes with no break GPT-2's tokenizer can split at \(one word, or one run of whitespace or of symbols\): longer than 8388608, too large to tokenize$/);
  });
});

describe("left truncation", () => {
  it("keeps the last maxLength ids and says whether it dropped any", () => {
    expect(truncateLeft([1, 2, 3, 4, 5], 3)).toEqual({ ids: [3, 4, 5], truncated: true });
    expect(truncateLeft([1, 2, 3], 3)).toEqual({ ids: [1, 2, 3], truncated: false });
  });

  it("tokenizing only the tail of a long text gives exactly the ids tokenizing it whole would keep", () => {
    const rand = rng(7);
    const words = ["hello", "world", "I'm", "don't", "  ", "\n", "\n\n", "🙂", "日本語", "café", "<|endoftext|>", "123", "!!", "\t", "it's", " "];
    for (let trial = 0; trial < 30; trial++) {
      let text = "";
      const n = 500 + Math.floor(rand() * 3000);
      for (let i = 0; i < n; i++) text += words[Math.floor(rand() * words.length)] + (rand() < 0.6 ? " " : "");
      for (const maxLength of [1, 8, 256]) {
        const whole = truncateLeft(encode(text), maxLength);
        expect(encodeTruncated(text, maxLength)).toEqual(whole);
      }
    }
  });

  it("scores a 50 MB text by its tail without tokenizing all of it", () => {
    const text = "User: tell me more.\nBot: ".repeat(2_000_000) + "the end";
    expect(text.length).toBeGreaterThan(50_000_000);
    const { ids, truncated } = encodeTruncated(text, 256);
    expect(truncated).toBe(true);
    expect(ids).toHaveLength(256);
    expect(ids.slice(-2)).toEqual(encode(" the end").slice(-2));
  });
});

describe("special token", () => {
  it("turns a literal <|endoftext|> into id 50256 wherever it stands", () => {
    expect(encode("<|endoftext|>")).toEqual([ENDOFTEXT_ID]);
    expect(encode("<|endoftext|><|endoftext|>")).toEqual([ENDOFTEXT_ID, ENDOFTEXT_ID]);
    const hi = encode("hi");
    const there = encode("there");
    expect(encode("hi<|endoftext|>there")).toEqual([...hi, ENDOFTEXT_ID, ...there]);
  });
});

describe("bad text", () => {
  it("refuses a lone surrogate, which has no UTF-8 bytes", () => {
    expect(() => encode("abc\uD800def")).toThrow(InputError);
    expect(() => encode("abc\uDC00")).toThrow(InputError);
    expect(encode("ok 🙂").length).toBeGreaterThan(0); // a proper pair is fine
  });
});
