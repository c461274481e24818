/**
 * `score`: one JSON line per input line, in input order, from TEXT arguments, an --input file
 * or standard input, to stdout or an --output file that a killed job can --resume.
 */
import { statSync } from "node:fs";
import { parsePoolingRule } from "../model/pooling.js";
import { RewardModel } from "../model/async-model.js";
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH } from "../model/options.js";
import { defineCommand, oneOf, positiveInt, UsageError } from "./args.js";
import {
  INPUT_FORMAT_HELP, INPUT_FORMAT_OPTIONS, BATCH_SIZE_OPTION, INPUT_OPTION, inputRecords, LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg,
} from "./common.js";
import { runScoreJob, type OutputRecord } from "./job.js";
import { fileSink, stdoutSink } from "./output.js";
import { JobReport } from "./progress.js";
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
    resume: { type: "boolean", help: "continue a job whose --output file holds the first lines already" },
    "batch-size": BATCH_SIZE_OPTION,
    "max-length": MAX_LENGTH_OPTION,
    activation: ACTIVATION_OPTION,
    progress: { type: "boolean", help: "progress lines on stderr even when it is not a terminal (on a terminal they are always shown)" },
    "progress-every": { type: "string", value: "S", default: "5", help: "seconds between --progress lines" },
    quiet: { type: "boolean", short: "q", help: "no progress and no summary on stderr (errors still)" },
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
    const { model: spec, rest: texts } = modelArg("score", values.model, positionals, false);
    if (values.resume && (values.output === undefined || values.output === "-")) throw new UsageError("--resume needs --output FILE");
    const pooling = parsePoolingRule(values.pooling ?? "last-non-pad");
    if (!pooling) throw new UsageError(`--pooling must be last-non-pad, before-first-pad or non-pad-count, got "${values.pooling}"`);
    const batchSize = positiveInt("batch-size", values["batch-size"], DEFAULT_BATCH_SIZE);
    const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
    const activation = values.activation === undefined ? undefined : oneOf("activation", values.activation, ACTIVATIONS, "none");
    // Ctrl-C: stop reading, score and write the lines already read, exit 130. A second Ctrl-C quits at once.
    const interrupt = new AbortController();
    const onSigint = () => {
      if (interrupt.signal.aborted) process.exit(130);
      process.stderr.write("gpt2-reward: interrupted, finishing the lines in progress (Ctrl-C again to quit now)\n");
      interrupt.abort();
    };
    process.on("SIGINT", onSigint);
    const every = values["progress-every"] === undefined ? 5 : Number(values["progress-every"]);
    if (!(every > 0)) throw new UsageError(`--progress-every must be a positive number of seconds, got "${values["progress-every"]}"`);
    const report = new JobReport({
      progress: process.stderr.isTTY ? "tty" : values.progress ? "lines" : "none",
      quiet: values.quiet ?? false,
      totalBytes: inputSize(texts.length > 0 ? undefined : values.input),
      intervalMs: process.stderr.isTTY ? undefined : every * 1000,
    });
    const lines = inputRecords(texts, values, interrupt.signal, (n) => (report.bytesRead += n));
    const load = loadOptions(values);
    // A download stops at the first Ctrl-C too (its part is kept for the next run to resume).
    const model = await RewardModel.fromPretrained(spec, { ...load, hub: { ...load.hub, signal: interrupt.signal } });
    const toFile = values.output !== undefined && values.output !== "-";
    const { sink, startIndex } = toFile ? fileSink(values.output!, values.resume ?? false) : { sink: stdoutSink(), startIndex: 0 };
    const fields = labelling(model.config, activation);
    try {
      const emit = (r: OutputRecord) => {
        report.record(r);
        return sink.write(outputLine(r, fields));
      };
      report.start();
      const job = await runScoreJob(model, lines, emit, {
        batchSize, maxLength, pooling, onProgress: report.onProgress, startIndex, signal: interrupt.signal,
      });
      report.finish(job.interrupted);
      if (job.interrupted) return 130;
      return job.failed > 0 ? 1 : 0;
    } finally {
      sink.close();
      process.off("SIGINT", onSigint);
      await model.close();
    }
  },
});

/** The size of an --input that is a regular file (for the progress total), else undefined. */
function inputSize(input: string | undefined): number | undefined {
  if (input === undefined || input === "-") return undefined;
  try {
    const st = statSync(input);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}
