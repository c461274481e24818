/** Tokenizer behaviour that needs no golden file: truncation, the tail shortcut, bad input. */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { ENDOFTEXT_ID, encode, encodeTruncated, truncateLeft } from "../../src/model/tokenizer.js";
import { rng } from "../helpers/random.js";

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
