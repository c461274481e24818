/**
 * A slow, obviously-right GPT-2 tokenizer to check the fast one against: OpenAI's
 * `encoder.py` (which HF's GPT2Tokenizer copies) transcribed line by line. Each round finds the
 * lowest-ranked adjacent pair and merges every occurrence of it, left to right; no heap, no
 * cache, no shortcuts. A pair's rank is the rank of its joined bytes in r50k_base (the file
 * GPT-2's merges.txt became); `test/model/tokenizer.test.ts` checks this against HF's goldens.
 */
import r50kRanks from "gpt-tokenizer/bpeRanks/r50k_base";

const ENDOFTEXT = "<|endoftext|>";
// encoder.py's pattern under Python's `regex`, whose \s is this set (Unicode White_Space), not JavaScript's.
const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PAT = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, "gu");

const latin1 = (bytes: Uint8Array | number[]) => Array.from(bytes, (b) => String.fromCharCode(b)).join("");
const rank = new Map<string, number>();
r50kRanks.forEach((t, id) => rank.set(typeof t === "string" ? latin1(new TextEncoder().encode(t)) : latin1(t), id));

/** encoder.py's bpe(): symbols are byte strings; merge the best pair everywhere until none joins. */
function bpe(token: string): string[] {
  let word = Array.from(token);
  while (word.length > 1) {
    let best = Infinity;
    let first = "";
    let second = "";
    for (let i = 0; i + 1 < word.length; i++) {
      const r = rank.get(word[i] + word[i + 1]);
      if (r !== undefined && r < best) [best, first, second] = [r, word[i], word[i + 1]];
    }
    if (best === Infinity) break;
    const merged: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (i + 1 < word.length && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i]);
        i += 1;
      }
    }
    word = merged;
  }
  return word;
}

/** All ids of a text, as HF's GPT2Tokenizer gives them ("<|endoftext|>" is the added token 50256). */
export function referenceEncode(text: string): number[] {
  const ids: number[] = [];
  text.split(ENDOFTEXT).forEach((part, i) => {
    if (i > 0) ids.push(50256);
    for (const [piece] of part.matchAll(PAT)) {
      for (const symbol of bpe(latin1(new TextEncoder().encode(piece)))) ids.push(rank.get(symbol)!);
    }
  });
  return ids;
}

/**
 * A run with no break the pre-tokenizer can split at is one BPE piece. Texts with one such run of each kind,
 * the poison lines of a job: the API, the CLI and the tokenizer tests all feed them.
 */
export const POISON: Record<string, string> = {
  "300,000 spaces between two letters": `a${" ".repeat(300_000)}b`,
  "200,000 tabs": `a${"\t".repeat(200_000)}b`,
  "100,000 CRLF": `User: hi${"\r\n".repeat(100_000)}Bot: hello`,
  "200,000 ideographic spaces (U+3000)": `a${"\u3000".repeat(200_000)}b`,
  "400,000 newlines": `a${"\n".repeat(400_000)}b`,
  "a 300,000-symbol run": `a ${"!?-".repeat(100_000)} b`,
  "a 300,000-letter word": "ab".repeat(150_000),
  "a 100,000-character CJK run": "日本語の".repeat(25_000),
  "whitespace at the very end": `hello${" \t\n".repeat(100_000)}`,
};

