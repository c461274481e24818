/**
 * Text pairs as Hugging Face's `tokenizer(text, text_pair, truncation=True, max_length=M)` gives
 * them for GPT-2: GPT-2 adds no special tokens, so the result is text's ids followed by
 * text_pair's ids, with `longest_first` truncation cutting tokens from the chosen side
 * (`truncation_side`: "left" drops a sequence's first tokens, "right" its last). A TEI client
 * sends `[query, document]` pairs this way (to /predict and /rerank). Checked against
 * fixtures/golden/pairs.json, exported from transformers 4.40.2.
 *
 * longest_first, as HF's token-by-token loop: while the total is above M, cut one token from the
 * strictly longer sequence, from text_pair on a tie. So the shorter one is kept whole if the other
 * can take all the cuts, else the two end at ceil(M/2) and floor(M/2) tokens (text keeps the odd one).
 */
import { encode, encodeTruncated } from "./tokenizer.js";

export type TruncationSide = "left" | "right";

/** Kept lengths [text, text_pair] under longest_first for lengths la, lb and at most maxLength tokens in all. */
export function longestFirst(la: number, lb: number, maxLength: number): [number, number] {
  if (la + lb <= maxLength) return [la, lb];
  const half = Math.ceil(maxLength / 2);
  if (la <= half) return [la, maxLength - la];
  if (lb <= maxLength - half) return [maxLength - lb, lb];
  return [half, maxLength - half];
}

/**
 * At most `maxLength` ids of a text from the side truncation keeps (its end for "left", its start
 * for "right"), and whether the text had more; a long text costs about as much as its kept part.
 */
export function encodeCapped(text: string, maxLength: number, side: TruncationSide): { ids: number[]; truncated: boolean } {
  if (side === "left") return encodeTruncated(text, maxLength);
  return encodeHead(text, maxLength);
}

/**
 * The first maxLength ids of a text, tokenizing a prefix cut where GPT-2's pre-tokenizer must end
 * a piece whatever follows (a space or newline after a letter, digit or punctuation mark: no
 * piece runs from a visible character into whitespace, see src/model/tokenizer.ts), so the
 * prefix's ids are exactly the first ids of the whole text. If too few, the prefix grows.
 */
function encodeHead(text: string, maxLength: number): { ids: number[]; truncated: boolean } {
  let window = Math.max(4096, 16 * maxLength);
  while (window < text.length) {
    const p = pieceStartAfter(text, window);
    if (p > 0 && p < text.length) {
      // text[p, end) is not empty, so it adds at least one token after the head.
      const head = encode(text.slice(0, p));
      if (head.length >= maxLength) return { ids: head.slice(0, maxLength), truncated: true };
    }
    window *= 4;
  }
  const ids = encode(text);
  return ids.length > maxLength ? { ids: ids.slice(0, maxLength), truncated: true } : { ids, truncated: false };
}

const VISIBLE = /[\p{L}\p{N}\p{P}]/u;

function pieceStartAfter(text: string, from: number): number {
  for (let p = from; p < text.length; p++) if ((text[p] === " " || text[p] === "\n") && VISIBLE.test(text[p - 1])) return p;
  return -1;
}

export interface EncodedPair {
  /** text's kept ids followed by text_pair's kept ids. */
  ids: number[];
  /** How many ids of each were kept. */
  kept: [number, number];
  /** True when any token was cut. */
  truncated: boolean;
}

/** `tokenizer(text, text_pair, truncation="longest_first", max_length=maxLength)` with `truncation_side = side`. */
export function encodePair(text: string, textPair: string, maxLength: number, side: TruncationSide): EncodedPair {
  const a = encodeCapped(text, maxLength, side);
  const b = encodeCapped(textPair, maxLength, side);
  // A side longer than maxLength gives up at least one token whatever its exact length: only "longer" matters.
  const [ka, kb] = longestFirst(a.truncated ? maxLength + 1 : a.ids.length, b.truncated ? maxLength + 1 : b.ids.length, maxLength);
  const keep = (ids: number[], k: number) => (side === "left" ? ids.slice(ids.length - k) : ids.slice(0, k));
  const ids = keep(a.ids, ka).concat(keep(b.ids, kb));
  return { ids, kept: [ka, kb], truncated: a.truncated || b.truncated || ka < a.ids.length || kb < b.ids.length };
}

/** The untruncated pair, `tokenizer(text, text_pair)`. */
export function encodePairWhole(text: string, textPair: string): EncodedPair {
  const a = encode(text);
  const b = encode(textPair);
  return { ids: a.concat(b), kept: [a.length, b.length], truncated: false };
}
