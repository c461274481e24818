/**
 * Best-of-N, as the Chai paper uses a reward model: a chat service generates N candidate replies
 * to one conversation, scores each as the text `context + reply`, and keeps the best. The
 * ranking is read from one logit: the only one of a one-label reward model, or the label the
 * caller names. For one-label models trained with a pairwise (Bradley–Terry) loss,
 * σ(r_a − r_b) is the model's probability that reply a is preferred to reply b.
 */
import { Gpt2RewardError, InputError, quote } from "../errors.js";
import { checkTexts } from "./inputs.js";
import type { ScoreOptions, ScoreResult } from "./sync-model.js";

export interface RankOptions extends ScoreOptions {
  /** Which logit ranks the replies: a label name or index. Default: the only one (one-label models). */
  label?: string | number;
  /** Also return preferences[a][b] = σ(r_a − r_b) (one-label models). */
  pairwise?: boolean;
}

export interface RankResult {
  /** The ranking logit of each reply, in input order. */
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

/** The logit index `label` names, checked against the model's labels. */
export function rankingLabel(labels: readonly string[], label: unknown): number {
  if (label === undefined) {
    if (labels.length === 1) return 0;
    throw new Gpt2RewardError(`this model has ${labels.length} labels (${labels.join(", ")}): say which one ranks the replies with the label option`);
  }
  if (typeof label === "number" && Number.isInteger(label) && label >= 0 && label < labels.length) return label;
  if (typeof label === "string" && labels.includes(label)) return labels.indexOf(label);
  throw new Gpt2RewardError(`label must be one of the model's labels (${labels.join(", ")}) or an index from 0 to ${labels.length - 1}, got ${quote(label)}`);
}

export function checkRankOptions(labels: readonly string[], opts: RankOptions): number {
  const k = rankingLabel(labels, opts.label);
  if (opts.pairwise !== undefined && typeof opts.pairwise !== "boolean") throw new Gpt2RewardError(`pairwise must be true or false, got ${quote(opts.pairwise)}`);
  if (opts.pairwise && labels.length !== 1) {
    throw new Gpt2RewardError(`pairwise preferences need a one-label reward model; this one has ${labels.length} labels`);
  }
  return k;
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
  const k = checkRankOptions(labels, opts);
  const scores = results.map((r) => r.logits[k]);
  const order = bestFirst(scores);
  const ranked: RankResult = { scores, order, best: order[0], results };
  if (opts.pairwise) ranked.preferences = scores.map((a) => scores.map((b) => sigmoid(a - b)));
  return ranked;
}
