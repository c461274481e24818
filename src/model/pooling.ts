/**
 * Which token's hidden state the score head reads. GPT2ForSequenceClassification reads one
 * position per row, and Hugging Face has changed the rule over the years; all three are offered,
 * each defined on the text alone (a batch of one, no padding), so a score never depends on what
 * else is in the batch.
 */
export type PoolingRule = "last-non-pad" | "before-first-pad" | "non-pad-count";

export const POOLING_RULES: readonly PoolingRule[] = ["last-non-pad", "before-first-pad", "non-pad-count"];

/**
 * ids are one text's tokens (no padding); padId is config.pad_token_id. Returns an index in [0, n).
 *
 * - last-non-pad (current transformers): the rightmost token that is not the pad id,
 *   `(arange(T) * (ids != pad)).argmax(-1)`; a text of pad ids only gives 0.
 * - before-first-pad (transformers 4.32 to 4.44, e.g. 4.40.2): the token before the first pad
 *   id, `(argmax(ids == pad) - 1) % T`; with no pad id that is the last token, and a text that
 *   starts with the pad id (a literal <|endoftext|>) wraps around to the last token too.
 * - non-pad-count (transformers 4.31 and older): `sum(ids != pad) - 1`, where −1 (only pad ids)
 *   indexes the last token as Python does.
 *
 * With no pad id in the config, HF reads the last token of a single text, whatever the rule.
 * The rules differ only for texts that contain the pad id, i.e. a literal "<|endoftext|>".
 */
export function scoredPosition(ids: ArrayLike<number>, padId: number | null, rule: PoolingRule): number {
  const n = ids.length;
  if (padId === null) return n - 1;
  switch (rule) {
    case "last-non-pad": {
      for (let i = n - 1; i >= 0; i--) if (ids[i] !== padId) return i;
      return 0;
    }
    case "before-first-pad": {
      let first = 0; // argmax of an all-false mask is 0
      for (let i = 0; i < n; i++) {
        if (ids[i] === padId) {
          first = i;
          break;
        }
      }
      return (((first - 1) % n) + n) % n;
    }
    case "non-pad-count": {
      let count = 0;
      for (let i = 0; i < n; i++) if (ids[i] !== padId) count++;
      return count === 0 ? n - 1 : count - 1;
    }
  }
}

export function parsePoolingRule(s: string): PoolingRule | null {
  return (POOLING_RULES as readonly string[]).includes(s) ? (s as PoolingRule) : null;
}
