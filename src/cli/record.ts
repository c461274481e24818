/**
 * What an output line says about a scored text: the raw logits (always), scores after an
 * activation, the label names from config.json's id2label, and the input's other fields.
 *
 * The activation follows Text Embeddings Inference's /predict: sigmoid for a one-label model
 * (a reward → the probability that this reply is preferred), softmax over the labels otherwise.
 * Scores appear by default; `--activation none` leaves only the logits.
 */
import type { GPT2Config } from "../model/config.js";
import { sigmoid, softmax } from "../model/rank.js";
import type { Option } from "./args.js";
import type { OutputRecord } from "./job.js";

export const ACTIVATIONS = ["sigmoid", "softmax", "none"] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export function defaultActivation(numLabels: number): Activation {
  return numLabels === 1 ? "sigmoid" : "softmax";
}

/** In float64, from the float32 logits; softmax subtracts the max first so exp cannot overflow. */
export function activate(logits: number[], activation: Activation): number[] | undefined {
  if (activation === "none") return undefined;
  return activation === "sigmoid" ? logits.map(sigmoid) : softmax(logits);
}


/** Label names worth printing: when there are several, or config.json names the one it has. */
export function shownLabels(config: GPT2Config): string[] | undefined {
  const named = config.labels.some((l, i) => l !== `LABEL_${i}`);
  return config.num_labels > 1 || named ? config.labels : undefined;
}

/** The fields `score`'s lines use; an input field of the same name passes through as "input.<name>". */
export const OUTPUT_FIELDS = ["index", "line", "logits", "scores", "labels", "label", "tokens", "truncated", "error"];

/**
 * Our fields, then the input record's others. `fields` is every field the command's lines may
 * hold (`rank` and `tokenize` have their own), so an input field named like one of them, on any
 * line, is kept as "input.<name>" and never replaces what we computed.
 */
export function withExtra(extra: Record<string, unknown> | undefined, ours: Record<string, unknown>, fields: readonly string[] = OUTPUT_FIELDS): Record<string, unknown> {
  if (!extra) return ours;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(extra)) out[fields.includes(k) ? `input.${k}` : k] = v;
  return { ...ours, ...out };
}

export interface Labelling {
  labels: string[] | undefined;
  activation: Activation;
}

export function labelling(config: GPT2Config, activation: Activation | undefined): Labelling {
  return { labels: shownLabels(config), activation: activation ?? defaultActivation(config.num_labels) };
}

/** The output fields of one scored text, in a fixed order: logits, scores, labels, label. */
export function scoreFields(logits: number[], l: Labelling): Record<string, unknown> {
  const scores = activate(logits, l.activation);
  const out: Record<string, unknown> = { logits };
  if (scores) out.scores = scores;
  if (l.labels) out.labels = l.labels;
  if (l.labels && logits.length > 1) out.label = l.labels[argmax(logits)];
  return out;
}

export function argmax(v: number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

export const ACTIVATION_OPTION = {
  type: "string", short: "a", value: "sigmoid|softmax|none", default: "sigmoid for one label, softmax otherwise",
  help: 'the "scores" of each line; none leaves only the logits',
} as const satisfies Option;

export const OUTPUT_HELP = `Output: one JSON line per input record, in input order: "index", "logits" (always), "scores"
(--activation), "labels" and "label" (the top one) when the model has several labels or names
its one, "tokens", "truncated", and the record's other fields; a bad record gets "index",
"line" and "error" instead, and the job goes on.`;

/** A job's record as the JSON line we write. */
export function outputLine(r: OutputRecord, l: Labelling): string {
  const ours = "error" in r
    ? { index: r.index, ...(r.line !== undefined ? { line: r.line } : {}), error: r.error }
    : { index: r.index, ...scoreFields(r.logits, l), tokens: r.tokens, truncated: r.truncated };
  return JSON.stringify(withExtra(r.extra, ours));
}
