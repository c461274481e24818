/**
 * GPT-2's byte-level BPE, giving the ids of Hugging Face's `GPT2Tokenizer` with default settings
 * (no prefix space, no BOS/EOS added), through `gpt-tokenizer`'s r50k_base encoding, which is
 * GPT-2's vocabulary and merges.
 *
 * One difference we handle ourselves: HF treats a literal "<|endoftext|>" anywhere in a text as
 * the special token 50256 (it is an added token, matched before BPE, with no whitespace
 * stripping), while gpt-tokenizer either rejects it or, with `allowedSpecial`, still spells it out
 * as "<", "|", "end"... (checked against the goldens). So we split the text on the literal and
 * BPE-encode the pieces in between, which is exactly what HF's added-token split does.
 */
import { encode as bpe } from "gpt-tokenizer/encoding/r50k_base";
import { InputError } from "../errors.js";

export const ENDOFTEXT = "<|endoftext|>";
export const ENDOFTEXT_ID = 50256;
export const GPT2_VOCAB_SIZE = 50257;

/** All of a text's ids, as HF's GPT2Tokenizer gives them (no truncation). */
export function encode(text: string): number[] {
  checkText(text);
  const ids: number[] = [];
  const pieces = text.split(ENDOFTEXT);
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) ids.push(ENDOFTEXT_ID);
    if (pieces[i].length > 0) {
      checkWords(pieces[i]);
      for (const id of bpe(pieces[i])) ids.push(id);
    }
  }
  return ids;
}

/**
 * Byte-pair encoding costs time quadratic in the length of one pre-tokenizer piece (a run of
 * letters, of digits, or of other symbols, plus one leading space), and gpt-tokenizer overflows
 * the stack past ~100,000 tokens in one piece: a 160,000-letter "word" took 26 s, a 160,000-character
 * CJK run minutes and then a RangeError. No text a reward model judges has such a word, so a
 * text with one is refused (an error for that text only). 10,000 characters cost under a second.
 */
export const MAX_WORD_LENGTH = 10_000;
/** Maximal runs of one GPT-2 piece class; every piece lies inside one run (plus a leading space). */
const RUNS = /\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+/gu;

function checkWords(text: string): void {
  if (text.length <= MAX_WORD_LENGTH) return;
  for (const m of text.matchAll(RUNS)) {
    if (m[0].length > MAX_WORD_LENGTH) {
      throw new InputError(`text has a ${m[0].length}-character word (no space, no change between letters, digits and symbols): longer than ${MAX_WORD_LENGTH}, too costly to tokenize`);
    }
  }
}

export interface Truncated {
  ids: number[];
  /** True when the text had more than maxLength tokens and the leading ones were dropped. */
  truncated: boolean;
}

/** HF's truncation_side='left': keep the last maxLength ids (a reward model judges the end of a conversation). */
export function truncateLeft(ids: readonly number[], maxLength: number): Truncated {
  if (ids.length <= maxLength) return { ids: ids.slice(), truncated: false };
  return { ids: ids.slice(ids.length - maxLength), truncated: true };
}

/**
 * encode + truncateLeft, without tokenizing more of a long text than the kept tail needs: a 50 MB
 * text costs about as much as a 50 KB one. The tail is cut at a position where GPT-2's
 * pre-tokenizer is certain to start a new piece whatever precedes it (see `isPieceStart`), so its
 * ids are exactly the last ids of the whole text; if the tail is too short, it doubles.
 */
export function encodeTruncated(text: string, maxLength: number): Truncated {
  checkText(text);
  let window = Math.max(4096, 16 * maxLength);
  while (window < text.length) {
    const p = findPieceStart(text, text.length - window);
    if (p > 0) {
      const tail = encode(text.slice(p));
      // text[0, p) is not empty, so it adds at least one token before the tail: the text is
      // longer than maxLength as soon as the tail alone reaches it.
      if (tail.length >= maxLength) return { ids: tail.slice(tail.length - maxLength), truncated: true };
    }
    window *= 4;
  }
  return truncateLeft(encode(text), maxLength);
}

/**
 * GPT-2's pre-tokenizer regex is  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and looks only ahead, never behind. A whitespace character right after a non-whitespace one
 * always begins a piece: letters, digits and punctuation runs all stop before whitespace, and
 * no whitespace run reaches back past the non-whitespace character. So the pieces from such a
 * position on are the same whether or not the text before it is there. We also make sure the
 * position is not inside a literal "<|endoftext|>" (which has no whitespace, so it cannot be).
 */
function isPieceStart(text: string, p: number): boolean {
  // Conservatively: a plain space or newline after a letter, digit or punctuation mark, so that no
  // disagreement between JavaScript's and Python's idea of \s can matter.
  return p > 0 && (text[p] === " " || text[p] === "\n") && VISIBLE.test(text[p - 1]);
}
const VISIBLE = /[\p{L}\p{N}\p{P}]/u;

function findPieceStart(text: string, from: number): number {
  for (let p = Math.max(1, from); p < text.length; p++) if (isPieceStart(text, p)) return p;
  return -1;
}

/** A lone UTF-16 surrogate cannot be encoded as UTF-8, so the byte-level BPE has no bytes for it (Python raises too). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(text: string): void {
  if (typeof text !== "string") throw new InputError(`text must be a string, got ${typeof text}`);
  const m = LONE_SURROGATE.exec(text);
  if (m) throw new InputError(`text contains a lone UTF-16 surrogate (\\u${m[0].charCodeAt(0).toString(16)}) at position ${m.index}: not valid Unicode`);
}
