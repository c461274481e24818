/**
 * `score`: one JSON line per input line, in input order, from TEXT arguments, an --input file
 * or standard input, to stdout or an --output file that a killed job can --resume.
 */
import { parsePoolingRule } from "../model/pooling.js";
import { DEFAULT_MAX_LENGTH, RewardModel } from "../model/reward-model.js";
import { defineCommand, oneOf, positiveInt, UsageError } from "./args.js";
import {
  INPUT_FORMAT_HELP, INPUT_FORMAT_OPTIONS, INPUT_OPTION, inputRecords, LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg,
} from "./common.js";
import { runScoreJob, type OutputRecord } from "./job.js";
import { fileSink, stdoutSink } from "./output.js";
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
    "batch-size": { type: "string", short: "b", value: "N", default: "8", help: "texts per forward pass" },
    "max-length": MAX_LENGTH_OPTION,
    activation: ACTIVATION_OPTION,
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
    const batchSize = positiveInt("batch-size", values["batch-size"], 8);
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
    const lines = inputRecords(texts, values, interrupt.signal);
    const load = loadOptions(values);
    // A download stops at the first Ctrl-C too (its part is kept for the next run to resume).
    const model = await RewardModel.fromPretrained(spec, { ...load, hub: { ...load.hub, signal: interrupt.signal } });
    const toFile = values.output !== undefined && values.output !== "-";
    const { sink, startIndex } = toFile ? fileSink(values.output!, values.resume ?? false) : { sink: stdoutSink(), startIndex: 0 };
    const fields = labelling(model.config, activation);
    try {
      const onProgress = progress();
      const job = await runScoreJob(model, lines, (r: OutputRecord) => sink.write(outputLine(r, fields)), {
        batchSize, maxLength, pooling, onProgress, startIndex, signal: interrupt.signal,
      });
      if (onProgress) process.stderr.write("\n");
      if (job.interrupted) return 130;
      return job.failed > 0 ? 1 : 0;
    } finally {
      sink.close();
      process.off("SIGINT", onSigint);
      await model.close();
    }
  },
});

function progress(): ((done: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const t0 = Date.now();
  return (done) => process.stderr.write(`\r${done} lines, ${((done * 1000) / Math.max(1, Date.now() - t0)).toFixed(1)} lines/s `);
}
