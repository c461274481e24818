/**
 * GPT-2's byte-level BPE, giving the ids of Hugging Face's `GPT2Tokenizer` with default settings
 * (no prefix space, no BOS/EOS added). The vocabulary is `gpt-tokenizer`'s r50k_base rank table,
 * which is GPT-2's; the two steps over it are written here, because a text is untrusted input:
 *   1. the pre-tokenizer splits the text into pieces with GPT-2's regex (`PIECES` below);
 *   2. each piece's UTF-8 bytes are merged pair by pair (`mergePiece`), lowest rank first.
 * gpt-tokenizer's own loop costs time quadratic in a piece's length and overflows the stack on a
 * long one: a whitespace run is one piece, so 300,000 spaces between two letters crashed and
 * 400,000 newlines took a minute. Ours keeps the candidate pairs in a heap: n log n for any piece.
 *
 * One difference from gpt-tokenizer's `encode` we handle too: HF treats a literal "<|endoftext|>"
 * anywhere in a text as the special token 50256 (an added token, matched before BPE, with no
 * whitespace stripping), so we split the text on the literal and encode the pieces in between,
 * which is exactly what HF's added-token split does.
 */
import r50kRanks from "gpt-tokenizer/bpeRanks/r50k_base";
import { InputError, quote } from "../errors.js";

export const ENDOFTEXT = "<|endoftext|>";
export const ENDOFTEXT_ID = 50256;

/** All of a text's ids, as HF's GPT2Tokenizer gives them (no truncation). */
export function encode(text: string): number[] {
  checkText(text);
  const ids: number[] = [];
  const parts = text.split(ENDOFTEXT);
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) ids.push(ENDOFTEXT_ID);
    for (const [piece] of parts[i].matchAll(PIECES)) {
      for (const id of pieceIds(piece)) ids.push(id);
    }
  }
  return ids;
}

/**
 * GPT-2's pre-tokenizer (HF's GPT2Tokenizer.pat): contractions, then a run of letters, of digits
 * or of other symbols with at most one leading space, then whitespace. `\s+(?!\S)` makes a
 * whitespace run followed by a word give all but its last character as one piece, so that the
 * last one (if a space) can lead the word. V8 matches each alternative in one greedy pass, so
 * splitting is linear even for a 300,000-character run. Python's `regex` (which HF runs) reads
 * `\s` as Unicode's White_Space; JavaScript's `\s` differs on two characters (it has U+FEFF and
 * lacks U+0085), so we spell out `\p{White_Space}` (golden: tokenizer.json's whitespace cases).
 */
const PIECES = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/**
 * Each token's UTF-8 bytes, one char (0–255) per byte, to its id (= its BPE rank). r50k_base
 * stores a token as its text when its bytes are valid UTF-8, else as the byte values.
 */
let RANKS: Map<string, number> | undefined;
function ranks(): Map<string, number> {
  if (RANKS) return RANKS;
  RANKS = new Map();
  r50kRanks.forEach((token, id) => RANKS!.set(typeof token === "string" ? utf8Bytes(token) : String.fromCharCode(...token), id));
  return RANKS;
}

/**
 * Words repeat, so short pieces' ids are kept (as gpt-tokenizer does): scoring a chat log costs
 * half as much. The cache is emptied when full rather than aged, which is enough for a job.
 */
const cache = new Map<string, number[]>();
const CACHE_ENTRIES = 100_000;
const CACHED_PIECE = 64;

function pieceIds(piece: string): number[] {
  if (piece.length > CACHED_PIECE) return mergePiece(utf8Bytes(piece));
  let ids = cache.get(piece);
  if (ids === undefined) {
    if (cache.size >= CACHE_ENTRIES) cache.clear();
    ids = mergePiece(utf8Bytes(piece));
    cache.set(piece, ids);
  }
  return ids;
}

const ASCII = /^[\0-\x7f]*$/;
const utf8 = new TextEncoder();

/** A string's UTF-8 bytes as a string of chars 0–255, so byte spans are cheap slices and map keys. */
function utf8Bytes(s: string): string {
  if (ASCII.test(s)) return s;
  const bytes = utf8.encode(s);
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

/**
 * A piece longer than this many bytes is refused (an error for that text only): merging holds
 * about 40 bytes per byte of the piece, so 8 MiB of one whitespace run costs some 300 MB. No
 * text a reward model judges has such a piece; a 300,000-space run is 3% of it.
 */
export const MAX_PIECE_BYTES = 8 * 1024 * 1024;

/**
 * BPE of one piece: start from single bytes and repeatedly merge the adjacent pair whose joined
 * bytes are the lowest-ranked token, the leftmost one on a tie, until no adjacent pair joins into
 * a token. (This is tiktoken's rule over r50k_base; it gives GPT-2's merges.txt results, checked
 * against HF's goldens and against a copy of GPT-2's own `bpe()` in the tests.)
 *
 * Symbols are a linked list over byte offsets: the symbol starting at byte i ends at end[i]
 * (0 once merged into its left neighbour). `pairRank[i]` is the rank of joining symbol i with the
 * next one (-1: not a token). Candidate pairs wait in a min-heap keyed rank * n + i, so the
 * smallest key is the lowest rank and, among equals, the leftmost; a key whose pair has since
 * changed is stale and skipped when popped. Each merge pushes at most two keys: O(n log n).
 */
function mergePiece(bytes: string): number[] {
  const table = ranks();
  const n = bytes.length;
  const whole = table.get(bytes);
  if (whole !== undefined) return [whole];
  if (n > MAX_PIECE_BYTES) {
    throw new InputError(`text has a run of ${n} bytes with no break GPT-2's tokenizer can split at (one word, or one run of whitespace or of symbols): longer than ${MAX_PIECE_BYTES}, too large to tokenize`);
  }
  const end = new Int32Array(n);
  const prev = new Int32Array(n);
  const pairRank = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    end[i] = i + 1;
    prev[i] = i - 1;
  }
  const joinedRank = (i: number): number => {
    const next = end[i];
    return next < n ? table.get(bytes.slice(i, end[next])) ?? -1 : -1;
  };
  const heap = new MinHeap();
  for (let i = 0; i < n; i++) {
    pairRank[i] = joinedRank(i);
    if (pairRank[i] >= 0) heap.push(pairRank[i] * n + i);
  }
  while (heap.size > 0) {
    const key = heap.pop();
    const i = key % n;
    if (end[i] === 0 || pairRank[i] * n + i !== key) continue; // stale
    const next = end[i];
    end[i] = end[next];
    end[next] = 0;
    if (end[i] < n) prev[end[i]] = i;
    pairRank[i] = joinedRank(i);
    if (pairRank[i] >= 0) heap.push(pairRank[i] * n + i);
    const left = prev[i];
    if (left >= 0) {
      pairRank[left] = joinedRank(left);
      if (pairRank[left] >= 0) heap.push(pairRank[left] * n + left);
    }
  }
  const ids: number[] = [];
  for (let i = 0; i < n; i = end[i]) ids.push(table.get(bytes.slice(i, end[i]))!);
  return ids;
}

/** A binary min-heap of numbers (keys below 2^53, so exact as doubles). */
class MinHeap {
  private keys: number[] = [];
  get size(): number {
    return this.keys.length;
  }
  push(key: number): void {
    const k = this.keys;
    let i = k.push(key) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (k[parent] <= key) break;
      k[i] = k[parent];
      i = parent;
    }
    k[i] = key;
  }
  pop(): number {
    const k = this.keys;
    const top = k[0];
    const last = k.pop()!;
    if (k.length > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= k.length) break;
        if (child + 1 < k.length && k[child + 1] < k[child]) child++;
        if (k[child] >= last) break;
        k[i] = k[child];
        i = child;
      }
      k[i] = last;
    }
    return top;
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
  if (typeof text !== "string") throw new InputError(`text must be a string, got ${quote(text)}`);
  const m = LONE_SURROGATE.exec(text);
  if (m) throw new InputError(`text contains a lone UTF-16 surrogate (\\u${m[0].charCodeAt(0).toString(16)}) at position ${m.index}: not valid Unicode`);
}

/**
 * The text a token id stands for, to show a tokenization (`gpt2-reward trace`): its bytes as
 * UTF-8, or `\xNN` escapes for a token that is part of a character (emoji, CJK) and so not
 * UTF-8 on its own. Concatenating a text's pieces (escapes aside) gives the text back.
 */
export function tokenPiece(id: number): string {
  if (id === ENDOFTEXT_ID) return ENDOFTEXT;
  const token = r50kRanks[id];
  if (token === undefined) throw new InputError(`id ${id} is outside GPT-2's vocabulary`);
  return typeof token === "string" ? token : Array.from(token, (b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
}
