/**
 * `score`: one JSON line per input line, in input order, from TEXT arguments, an --input file
 * or standard input, to stdout or an --output file that a killed job can --resume.
 */
import { parsePoolingRule } from "../model/pooling.js";
import { RewardModel } from "../model/async-model.js";
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH } from "../model/options.js";
import { defineCommand, oneOf, positiveInt, UsageError } from "./args.js";
import { Gpt2RewardError } from "../errors.js";
import {
  BATCH_SIZE_OPTION, countBytes, INPUT_FORMAT_HELP, INPUT_FORMAT_OPTIONS, INPUT_OPTION, inputSpec, LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg,
} from "./common.js";
import { modelIdentity } from "./identity.js";
import { inputItems, textItems } from "./input.js";
import { runScoreJob, type OutputRecord } from "./job.js";
import { jobReport, PROGRESS_OPTIONS } from "./progress.js";
import { DEFAULT_MAX_LINE_BYTES, openJobInput } from "./lines.js";
import { openOutput, ReaderGone, type OpenOutput } from "./output.js";
import { ACTIVATION_OPTION, ACTIVATIONS, labelling, OUTPUT_HELP, outputLine } from "./record.js";

export const score = defineCommand({
  name: "score",
  summary: "Score texts with a reward model: one JSON line per input line, in input order.",
  usage: "--model MODEL [options] [TEXT...]",
  options: {
    model: MODEL_OPTION,
    input: INPUT_OPTION,
    ...INPUT_FORMAT_OPTIONS,
    output: { type: "string", short: "o", value: "FILE", default: "standard output", help: 'write the JSON lines to FILE ("-" for standard output)' },
    resume: { type: "boolean", help: "continue the job whose lines --output FILE holds (checked against FILE.job.json)" },
    shard: { type: "string", value: "I/N", help: "score only the records whose index is I modulo N, under their global index (merge the N outputs with gpt2-reward merge)" },
    "max-line-bytes": { type: "string", value: "N", default: String(DEFAULT_MAX_LINE_BYTES), help: "a longer input line is skipped as it streams by and gets an error line" },
    "batch-size": BATCH_SIZE_OPTION,
    "max-length": MAX_LENGTH_OPTION,
    activation: ACTIVATION_OPTION,
    ...PROGRESS_OPTIONS,
    pooling: { type: "string", value: "RULE", default: "last-non-pad", help: "which token the score head reads: last-non-pad, before-first-pad or non-pad-count" },
    ...LOAD_OPTIONS,
  },
  details: `${MODEL_HELP}

Without --input and TEXT arguments, standard input is read. ${INPUT_FORMAT_HELP}

${OUTPUT_HELP}`,
  examples: [
    `gpt2-reward score -m ChaiML/gpt2_base_retry_and_continue_5m_reward_model $'User: hi\\nBot: hello!'`,
    "gpt2-reward score -m ./reward-model -i chats.jsonl -o scores.jsonl",
  ],
  async run(values, positionals) {
    const { model: modelSpec, rest: texts } = modelArg("score", values.model, positionals, false);
    if (values.resume && (values.output === undefined || values.output === "-")) throw new UsageError("--resume needs --output FILE");
    const pooling = parsePoolingRule(values.pooling ?? "last-non-pad");
    if (!pooling) throw new UsageError(`--pooling must be last-non-pad, before-first-pad or non-pad-count, got "${values.pooling}"`);
    const batchSize = positiveInt("batch-size", values["batch-size"], DEFAULT_BATCH_SIZE);
    const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
    const activation = values.activation === undefined ? undefined : oneOf("activation", values.activation, ACTIVATIONS, "none");
    const maxLineBytes = positiveInt("max-line-bytes", values["max-line-bytes"], DEFAULT_MAX_LINE_BYTES);
    const shard = values.shard === undefined ? null : parseShard(values.shard);
    const spec = inputSpec(values, values.input); // checked even when TEXT arguments leave it unused
    if (texts.length > 0 && values.input !== undefined) throw new UsageError("give either --input or TEXT arguments, not both");
    const input = openJobInput(texts, values.input, maxLineBytes); // a bad --input is refused before the model loads
    // Ctrl-C: stop reading, score and write the lines already read, exit 130. A second Ctrl-C quits at once.
    const interrupt = new AbortController();
    const onSigint = () => {
      if (interrupt.signal.aborted) process.exit(130);
      process.stderr.write("gpt2-reward: interrupted, finishing the lines in progress (Ctrl-C again to quit now)\n");
      interrupt.abort();
    };
    process.on("SIGINT", onSigint);
    const report = jobReport(values, texts.length > 0 ? undefined : values.input);
    const load = loadOptions(values);
    // A download stops at the first Ctrl-C too (its part is kept for the next run to resume).
    const model = await RewardModel.fromPretrained(modelSpec, { ...load, hub: { ...load.hub, signal: interrupt.signal } });
    const fields = labelling(model.config, activation);
    let out: OpenOutput | undefined;
    try {
      out = await openOutput(values.output, {
        resume: values.resume ?? false,
        indexOf: (k) => (shard ? shard.index + k * shard.count : k),
        // Every option that changes an output line's bytes, under its flag's name; --activation as in
        // effect, so naming the default (sigmoid for one label, softmax for several) resumes too.
        identity: async (resuming) => ({
          job: "gpt2-reward score",
          model: modelIdentity(model.files),
          options: {
            "--max-length": maxLength, "--pooling": pooling, "--dtype": load.dtype ?? "f32", "--kernels": model.kernels,
            "--activation": fields.activation, "--format": spec.format, "--text-field": spec.textField ?? null,
            "--chat-template": spec.chatTemplate ?? null, "--roles": values.roles ?? null,
          },
          input: await input.identity(resuming),
          shard,
        }),
      });
      const { sink, kept, keptFailed } = out;
      report.kept = kept;
      input.onIdentity = (identity) => out!.recordInput(identity);
      const lines = input.lines(interrupt.signal);
      const records = texts.length > 0 ? textItems(texts) : inputItems(countBytes(lines, (n) => (report.bytesRead += n)), spec);
      const emit = (r: OutputRecord) => {
        report.record(r);
        return sink.write(outputLine(r, fields));
      };
      report.start();
      const job = await runScoreJob(model, records, emit, {
        batchSize, maxLength, pooling, onProgress: report.onProgress, skip: kept, shard: shard ?? undefined, signal: interrupt.signal,
      });
      report.finish(job.interrupted);
      if (job.own < kept && !job.interrupted) {
        throw new Gpt2RewardError(`${values.output}: holds ${kept} lines, but this job's input has only ${job.own}; it is not the output of this input`);
      }
      await sink.close();
      if (job.interrupted) return 130;
      out.recordDone(job.lines);
      return job.failed + keptFailed > 0 ? 1 : 0;
    } catch (e) {
      if (e instanceof ReaderGone) return 0; // `| head`: the reader has all it wants
      throw e;
    } finally {
      await out?.sink.close().catch(() => {});
      process.off("SIGINT", onSigint);
      await model.close();
    }
  },
});

/** `--shard I/N`, 0 <= I < N. */
function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!(count >= 1 && index < count && Number.isSafeInteger(count))) throw new UsageError(`--shard must be I/N with 0 <= I < N (e.g. 0/4), got "${s}"`);
  return { index, count };
}
