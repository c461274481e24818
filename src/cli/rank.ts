/**
 * `rank`: best-of-N, the job a reward model exists for. Each reply is scored as the text
 * context + reply (exactly the string `score` would get: put the separator, e.g. "\nBot: ", in
 * the context or the replies), then the replies are ordered best first.
 *
 * For a one-label model, `--pairwise` adds P(a preferred over b) = σ(r_a − r_b): the
 * Bradley–Terry model these reward models are trained with (TRL's RewardTrainer loss is
 * −log σ(r_chosen − r_rejected)).
 */
import { Gpt2RewardError, InputError, quote } from "../errors.js";
import { parsePoolingRule } from "../model/pooling.js";
import { RewardModel } from "../model/async-model.js";
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH } from "../model/options.js";
import { defineCommand, positiveInt, UsageError } from "./args.js";
import { BATCH_SIZE_OPTION, countBytes, INPUT_OPTION, inputFileLines, LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg, writeLine } from "./common.js";
import { rankKey } from "../model/rank.js";
import { jobReport, PROGRESS_OPTIONS } from "./progress.js";
import { withExtra } from "./record.js";
import { checkBatchFits } from "./job.js";

/** The fields of rank's lines (an input field named like one is copied as "input.<name>"). */
const RANK_FIELDS = ["index", "line", "error", "by", "scores", "order", "best", "logits", "tokens", "truncated", "pairwise"];

export const rank = defineCommand({
  name: "rank",
  summary: "Best-of-N: score each reply as context + reply and order the replies best first.",
  usage: "--model MODEL (--context TEXT REPLY... | --input FILE) [options]",
  options: {
    model: MODEL_OPTION,
    context: { type: "string", short: "c", value: "TEXT", help: "the conversation so far; the replies are TEXT arguments" },
    input: INPUT_OPTION,
    pairwise: { type: "boolean", short: "p", help: "add P(reply i preferred over reply j) = sigmoid(r_i - r_j) (one-label models)" },
    "rank-by": { type: "string", value: "LABEL", default: "the reward; the last label for several", help: "for a model with several labels, the label whose probability ranks" },
    "batch-size": BATCH_SIZE_OPTION,
    "max-length": MAX_LENGTH_OPTION,
    pooling: { type: "string", value: "RULE", default: "last-non-pad", help: "which token the score head reads (as score)" },
    ...PROGRESS_OPTIONS,
    ...LOAD_OPTIONS,
  },
  details: `${MODEL_HELP}

Input lines are {"context": "...", "replies": ["...", ...]} (other fields, e.g. "id", are copied to the
output); blank lines are skipped and do not count. Output, one JSON line per input line:
  "index", "by" ("reward", or "P(label)"), "scores" (one per reply: the reward, or P(label)), "order" (reply
  indices best first), "best" (the best reply's index), "logits" (per reply), "tokens",
  "truncated", and with --pairwise "pairwise" (row i, column j: P(i preferred over j)).
A bad line gets {"index", "line", "error"} and the others go on (exit status 1). With --input, stderr
shows progress (as score) and ends with one summary line: lines ranked, failed (the first one's line
and reason), truncated (a reply's text lost its beginning to --max-length), time.`,
  examples: [
    `gpt2-reward rank -m ./reward-model -c $'User: hi, how are you?\\nBot:' " Great, and you?" " no." --pairwise`,
    "gpt2-reward rank -m ./reward-model -i candidates.jsonl",
  ],
  async run(values, positionals) {
    const { model: spec, rest: replies } = modelArg("rank", values.model, positionals, false);
    if (values.context !== undefined && values.input !== undefined) throw new UsageError("give either --context with REPLY arguments or --input, not both");
    if (values.context === undefined && replies.length > 0) throw new UsageError("REPLY arguments need --context TEXT");
    if (values.context !== undefined && replies.length === 0) throw new UsageError("--context needs at least one REPLY argument");
    const pooling = parsePoolingRule(values.pooling ?? "last-non-pad");
    if (!pooling) throw new UsageError(`--pooling must be last-non-pad, before-first-pad or non-pad-count, got "${values.pooling}"`);
    const opts = { batchSize: positiveInt("batch-size", values["batch-size"], DEFAULT_BATCH_SIZE), maxLength: positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH), pooling };
    const report = values.context === undefined ? jobReport(values, values.input) : undefined;
    const lines = values.context === undefined ? countBytes(inputFileLines(values.input), (n) => (report!.bytesRead += n)) : undefined;
    const model = await RewardModel.fromPretrained(spec, loadOptions(values));
    try {
      // As score does: a --batch-size no memory could hold is refused before any line is read.
      checkBatchFits(model.config, opts.batchSize, opts.maxLength);
      rankKey(model.labels, values["rank-by"], "--rank-by");
      if (values.pairwise && model.config.num_labels !== 1) {
        throw new Gpt2RewardError(`--pairwise needs a one-label reward model (sigmoid(r_a - r_b)); this one has ${model.config.num_labels} labels`);
      }
      const rankOne = async (context: string, replies: string[]) => {
        const r = await model.rank(context, replies, { ...opts, label: values["rank-by"], pairwise: values.pairwise });
        return {
          by: r.by, scores: r.scores, order: r.order, best: r.best,
          logits: r.results.map((x) => x.logits), tokens: r.results.map((x) => x.tokens), truncated: r.results.map((x) => x.truncated),
          ...(r.preferences ? { pairwise: r.preferences } : {}),
        };
      };
      if (!lines) {
        await writeLine(JSON.stringify({ index: 0, ...(await rankOne(values.context!, replies)) }));
        return 0;
      }
      let index = 0;
      let lineNo = 0;
      let failed = 0;
      report!.start();
      for await (const line of lines) {
        lineNo++;
        if ("text" in line && line.text.trim() === "") continue;
        const i = index++;
        const parsed = "error" in line ? { error: line.error } : parseRankLine(line.text);
        let record: Record<string, unknown>;
        if ("error" in parsed) record = { index: i, line: lineNo, error: parsed.error };
        else {
          try {
            record = withExtra(parsed.extra, { index: i, ...(await rankOne(parsed.context, parsed.replies)) }, RANK_FIELDS);
          } catch (e) {
            if (!(e instanceof InputError)) throw e;
            record = withExtra(parsed.extra, { index: i, line: lineNo, error: e.message.replace(/^text (\d+):/, "reply $1:") }, RANK_FIELDS);
          }
        }
        if ("error" in record) failed++;
        report!.record("error" in record
          ? { index: i, line: lineNo, error: String(record.error) }
          : { index: i, logits: [], tokens: 0, truncated: (record.truncated as boolean[]).some(Boolean) });
        await writeLine(JSON.stringify(record));
        report!.onProgress(index);
      }
      report!.finish();
      return failed > 0 ? 1 : 0;
    } finally {
      await model.close();
    }
  },
});

/** {"context": string, "replies": [string, ...]} and the other fields, or what is wrong. */
export function parseRankLine(text: string): { context: string; replies: string[]; extra: Record<string, unknown> } | { error: string } {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return { error: `invalid JSON: ${(e as Error).message}` };
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) return { error: `expected {"context": "...", "replies": [...]}, got ${quote(o)}` };
  const { context, replies, ...extra } = o as Record<string, unknown>;
  if (typeof context !== "string") return { error: `"context" must be a string, got ${quote(context)}` };
  if (!Array.isArray(replies) || replies.length === 0) return { error: `"replies" must be a non-empty array of strings, got ${quote(replies)}` };
  const bad = replies.findIndex((r) => typeof r !== "string");
  if (bad >= 0) return { error: `reply ${bad} must be a string, got ${quote(replies[bad])}` };
  return { context, replies: replies as string[], extra };
}
