/**
 * What the model scores: texts (tokenized and left-truncated as the model card says) or lists
 * of ids (checked against the vocabulary), each turned into one item { ids, truncated }. A bad
 * input is an InputError naming which one and why; shared by the synchronous core, the
 * asynchronous model (which checks before anything crosses to its worker) and the server.
 */
import { InputError, quote } from "../errors.js";
import { encodeTruncated, truncateLeft, type Truncated } from "./tokenizer.js";

export type Item = Truncated;

/** A text's ids after left truncation. Throws InputError for an empty text. */
export function tokenizeText(text: string, maxLength: number): Item {
  const t = encodeTruncated(text, maxLength);
  if (t.ids.length === 0) throw new InputError("empty text: it has no tokens to score");
  return t;
}

/** Why a list of ids cannot be scored, or null if it can. */
export function idsProblem(ids: unknown, vocabSize: number): string | null {
  if (!Array.isArray(ids)) return `ids must be an array of integers, got ${quote(ids)}`;
  if (ids.length === 0) return "empty list of ids: nothing to score";
  for (const id of ids) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      // quote, not JSON.stringify: an "id" nested 10,000 deep would overflow the stack.
      return `id ${quote(id)} is outside the vocabulary (0 to ${vocabSize - 1})`;
    }
  }
  return null;
}

/**
 * A list of ids as the model scores it: checked against the vocabulary, then left-truncated to
 * maxLength like a text's ids. The one preparation of ids: scoreIds (through idItems) and the
 * CLI's jobs (through the models' prepareIds) both come here. Throws InputError saying why.
 */
export function idsItem(ids: unknown, maxLength: number, vocabSize: number): Item {
  const problem = idsProblem(ids, vocabSize);
  if (problem) throw new InputError(problem);
  return truncateLeft(ids as number[], maxLength);
}

/** `texts` must be an array of strings; each one is checked for content when tokenized. */
export function checkTexts(texts: unknown, what = "texts"): string[] {
  if (!Array.isArray(texts)) throw new InputError(`${what} must be an array of strings, got ${quote(texts)}`);
  texts.forEach((t, i) => {
    if (typeof t !== "string") throw new InputError(`text ${i}: must be a string, got ${quote(t)}`);
  });
  return texts as string[];
}

/** Texts to items; an InputError names the first bad text by its index. */
export function textItems(texts: unknown, maxLength: number): Item[] {
  return checkTexts(texts).map((text, i) => {
    try {
      return tokenizeText(text, maxLength);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`text ${i}: ${e.message}`);
      throw e;
    }
  });
}

/** Id lists to items, left-truncated to maxLength like texts; an InputError names the first bad list. */
export function idItems(idLists: unknown, maxLength: number, vocabSize: number): Item[] {
  if (!Array.isArray(idLists)) throw new InputError(`ids must be an array of id lists, got ${quote(idLists)}`);
  return idLists.map((list: unknown, i) => {
    try {
      return idsItem(list, maxLength, vocabSize);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`ids ${i}: ${e.message}`);
      throw e;
    }
  });
}
