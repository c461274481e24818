/**
 * Best-of-N, as the Chai paper uses a reward model: a chat service generates N candidate replies
 * to one conversation, scores each as the text `context + reply`, and keeps the best. One rule
 * ranks everywhere (the API's `rank`, the CLI's `rank` and `demo`, the server's /rank and
 * /get_reward): a one-label reward model by its logit, the reward itself; a model with several
 * labels by the softmax probability of one label, by default the last (the positive class by the
 * usual convention: LABEL_1 of a binary classifier, "good" of bad/ok/good). For one-label models
 * trained with a pairwise (Bradley–Terry) loss, σ(r_a − r_b) is the model's probability that
 * reply a is preferred to reply b.
 */
import { Gpt2RewardError, InputError, quote } from "../errors.js";
import { checkTexts } from "./inputs.js";
import type { ScoreOptions, ScoreResult } from "./sync-model.js";

export interface RankOptions extends ScoreOptions {
  /** Which label ranks the replies: a label name or index. Default: the only one, or the last of several. */
  label?: string | number;
  /** Also return preferences[a][b] = σ(r_a − r_b) (one-label models). */
  pairwise?: boolean;
}

export interface RankResult {
  /** What the scores are: "reward" (the logit of a one-label model) or "P(label)". */
  by: string;
  /** Each reply's ranking value, in input order. */
  scores: number[];
  /** Reply indices, best first (ties keep input order; NaN scores last). */
  order: number[];
  /** order[0]: the index of the best reply. */
  best: number;
  /** Each reply's full result, as `score` returns it. */
  results: ScoreResult[];
  /** With `pairwise`: preferences[a][b] = σ(scores[a] − scores[b]). */
  preferences?: number[][];
}

/** What ranks replies best-first, for one model and one choice of label. */
export interface RankKey {
  /** Short, for output: "reward" or "P(good)". */
  by: string;
  /** A sentence for people. */
  describe: string;
  value(logits: number[]): number;
}

/**
 * The ranking rule of a model with these labels. `label` (a name, an index, or an index as a
 * string as the CLI passes it) chooses the label of a multi-label model; `option` names it in errors.
 */
export function rankKey(labels: readonly string[], label?: unknown, option = "label"): RankKey {
  const k = label === undefined ? labels.length - 1 : labelIndex(labels, label);
  if (k < 0) {
    throw new Gpt2RewardError(`${option} ${quote(label)}: not a label of this model (${labels.map((l) => quote(l)).join(", ")}); give a label or an index from 0 to ${labels.length - 1}`);
  }
  if (labels.length === 1) return { by: "reward", describe: "the reward (the model's one logit)", value: (logits) => logits[0] };
  const name = labels[k];
  return {
    by: `P(${name})`,
    describe: `P(${name}), the softmax probability of label ${k} of ${labels.length}${label === undefined ? ` (the last label; choose another with ${option})` : ""}`,
    value: (logits) => softmax(logits)[k],
  };
}

function labelIndex(labels: readonly string[], label: unknown): number {
  if (typeof label === "string" && labels.includes(label)) return labels.indexOf(label);
  const i = typeof label === "string" && /^\d+$/.test(label) ? Number(label) : label;
  return typeof i === "number" && Number.isInteger(i) && i >= 0 && i < labels.length ? i : -1;
}

/** Checks the options before any work; returns the ranking rule. */
export function checkRankOptions(labels: readonly string[], opts: RankOptions): RankKey {
  const key = rankKey(labels, opts.label);
  if (opts.pairwise !== undefined && typeof opts.pairwise !== "boolean") throw new Gpt2RewardError(`pairwise must be true or false, got ${quote(opts.pairwise)}`);
  if (opts.pairwise && labels.length !== 1) {
    throw new Gpt2RewardError(`pairwise preferences need a one-label reward model; this one has ${labels.length} labels`);
  }
  return key;
}

/** The texts to score: `context + reply` for each reply. */
export function rankTexts(context: unknown, replies: unknown): string[] {
  if (typeof context !== "string") throw new InputError(`context must be a string, got ${quote(context)}`);
  const r = checkTexts(replies, "replies");
  if (r.length === 0) throw new InputError("replies is empty: nothing to rank");
  return r.map((reply) => context + reply);
}

/** Best first; among equal scores the earlier reply first; NaN (a broken checkpoint) last. */
export function bestFirst(scores: readonly number[]): number[] {
  const key = (i: number) => (Number.isNaN(scores[i]) ? -Infinity : scores[i]);
  return scores.map((_, i) => i).sort((a, b) => {
    if (Number.isNaN(scores[a]) !== Number.isNaN(scores[b])) return Number.isNaN(scores[a]) ? 1 : -1;
    return key(b) - key(a) || a - b;
  });
}

/** σ(x) in float64. For very negative x, exp(−x) overflows to Infinity and σ is 0, its limit. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Softmax over the labels, from the float32 logits, max subtracted first so exp cannot overflow. */
export function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

export function rankResults(results: ScoreResult[], labels: readonly string[], opts: RankOptions): RankResult {
  const key = checkRankOptions(labels, opts);
  const scores = results.map((r) => key.value(r.logits));
  const order = bestFirst(scores);
  const ranked: RankResult = { by: key.by, scores, order, best: order[0], results };
  if (opts.pairwise) ranked.preferences = scores.map((a) => scores.map((b) => sigmoid(a - b)));
  return ranked;
}
