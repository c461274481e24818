/**
 * `score`: one JSON line per input line, in input order, from TEXT arguments, an --input file
 * or standard input, to stdout or an --output file that a killed job can --resume.
 */
import { parsePoolingRule } from "../model/pooling.js";
import { DEFAULT_MAX_LENGTH, RewardModel } from "../model/reward-model.js";
import { defineCommand, positiveInt, UsageError } from "./args.js";
import { INPUT_OPTION, inputFileLines, LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg } from "./common.js";
import { runScoreJob, type OutputRecord } from "./job.js";
import type { Line } from "./lines.js";
import { fileSink, stdoutSink } from "./output.js";

export const score = defineCommand({
  name: "score",
  summary: "Score texts with a reward model: one JSON line per input line, in input order.",
  usage: "--model MODEL [options] [TEXT...]",
  options: {
    model: MODEL_OPTION,
    input: INPUT_OPTION,
    output: { type: "string", short: "o", value: "FILE", default: "standard output", help: 'write the JSON lines to FILE ("-" for standard output)' },
    resume: { type: "boolean", help: "continue a job whose --output file holds the first lines already" },
    "batch-size": { type: "string", short: "b", value: "N", default: "8", help: "texts per forward pass" },
    "max-length": MAX_LENGTH_OPTION,
    pooling: { type: "string", value: "RULE", default: "last-non-pad", help: "which token the score head reads: last-non-pad, before-first-pad or non-pad-count" },
    ...LOAD_OPTIONS,
  },
  details: `${MODEL_HELP}

Input lines are {"text": "..."} or {"ids": [...]}; without --input and TEXT, standard input is read.
Output: one JSON line per input line, in input order.`,
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
    if (texts.length > 0 && values.input !== undefined) throw new UsageError("give either --input or TEXT arguments, not both");
    // Ctrl-C: stop reading, score and write the lines already read, exit 130. A second Ctrl-C quits at once.
    const interrupt = new AbortController();
    const onSigint = () => {
      if (interrupt.signal.aborted) process.exit(130);
      process.stderr.write("gpt2-reward: interrupted, finishing the lines in progress (Ctrl-C again to quit now)\n");
      interrupt.abort();
    };
    process.on("SIGINT", onSigint);
    const lines = texts.length > 0 ? textLines(texts) : inputFileLines(values.input, interrupt.signal);
    const load = loadOptions(values);
    // A download stops at the first Ctrl-C too (its part is kept for the next run to resume).
    const model = await RewardModel.fromPretrained(spec, { ...load, hub: { ...load.hub, signal: interrupt.signal } });
    const toFile = values.output !== undefined && values.output !== "-";
    const { sink, startIndex } = toFile ? fileSink(values.output!, values.resume ?? false) : { sink: stdoutSink(), startIndex: 0 };
    try {
      const onProgress = progress();
      const job = await runScoreJob(model, lines, (r: OutputRecord) => sink.write(JSON.stringify(r)), {
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

async function* textLines(texts: string[]): AsyncIterable<Line> {
  for (const text of texts) yield { text: JSON.stringify({ text }) };
}

function progress(): ((done: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const t0 = Date.now();
  return (done) => process.stderr.write(`\r${done} lines, ${((done * 1000) / Math.max(1, Date.now() - t0)).toFixed(1)} lines/s `);
}
