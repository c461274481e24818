#!/usr/bin/env node
/**
 * gpt2-reward: score texts with a GPT-2 reward model from the command line.
 * stdout carries only JSON lines (or the demo's table); messages go to stderr. A user mistake
 * prints one line and exits non-zero; a stack trace means a bug in gpt2-reward.
 */
import { createReadStream, existsSync, realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Gpt2RewardError } from "../errors.js";
import { runScoreJob, type OutputRecord } from "./job.js";
import { fileSink, stdoutSink } from "./output.js";
import { readLines, type Line } from "./lines.js";
import { DEFAULT_MAX_LENGTH, RewardModel, type LoadOptions } from "../model/reward-model.js";
import { convertModel, parseDType } from "./convert.js";
import { formatInspection, inspectModel } from "./inspect.js";
import { isHubRepoId, resolveHubModel, type HubOptions } from "../hub/hub.js";
import { parsePoolingRule } from "../model/pooling.js";
import { encodeTruncated } from "../model/tokenizer.js";
import { parseInputLine } from "./jsonl.js";
import { runDemo } from "./demo.js";
import { runVerify } from "./verify.js";

const USAGE = `usage:
  gpt2-reward score --model <model> [--input <file.jsonl>|-] [--batch-size N] [--max-length N]
                    [--pooling last-non-pad|before-first-pad|non-pad-count]
                    [--threads N] [--kernels auto|wasm|ts] [--dtype f32|f16|bf16]
                    [--output <file> [--resume]] [TEXT...]
  gpt2-reward tokenize [--input <file.jsonl>|-] [--max-length N] [TEXT...]
  gpt2-reward inspect <model> [--json]
  gpt2-reward convert <model> <out.safetensors> [--dtype f32|f16|bf16]
  gpt2-reward demo [--model <model>]
  gpt2-reward verify --model <model> --golden <golden.json> [--tolerance X] [--threads N] [--kernels K]
                     [--dtype D]

--dtype f16|bf16 keeps the weights of the linear layers 16-bit in memory, as the checkpoint
stores them (half the memory, the same scores); f32, the default, widens them at load.

<model> is a folder (config.json + model.safetensors, shards, or pytorch_model.bin), a weights
file with config.json beside it, or a Hugging Face repo owner/name[@revision] (HF_TOKEN,
HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT are honoured).

Input lines are {"text": "..."} or {"ids": [...]}; without --input and TEXT, standard input is read.
Output: one JSON line per input, in input order.`;

/** The package root, found from this file (dist/src/cli/main.js or src/cli/main.ts). */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

class UsageError extends Gpt2RewardError {}

function parse<T extends ParseArgsConfig["options"]>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** Lines from TEXT arguments (each one text), an --input file, or standard input. */
function inputLines(texts: string[], input: string | undefined, signal?: AbortSignal): AsyncIterable<Line> {
  if (texts.length > 0) {
    if (input !== undefined) throw new UsageError("give either --input or TEXT arguments, not both");
    return (async function* () {
      for (const text of texts) yield { text: JSON.stringify({ text }) };
    })();
  }
  if (input === undefined || input === "-") return readLines(process.stdin, signal);
  if (!existsSync(input)) throw new Gpt2RewardError(`${input}: no such file`);
  return readLines(createReadStream(input), signal);
}

/** Writes one line to stdout, waiting when the pipe is full so memory stays flat on long jobs. */
async function writeLine(s: string): Promise<void> {
  if (!process.stdout.write(s + "\n")) await new Promise<void>((r) => process.stdout.once("drain", r));
}

function progress(): ((done: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const t0 = Date.now();
  return (done) => process.stderr.write(`\r${done} lines, ${((done * 1000) / Math.max(1, Date.now() - t0)).toFixed(1)} lines/s `);
}

/** Download progress for Hub models, on a terminal only. */
function hubOptions(): HubOptions {
  if (!process.stderr.isTTY) return {};
  return {
    progress: (file, done, total) =>
      process.stderr.write(`\rdownloading ${file}: ${(done / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ""} MB ` + (done === total ? "\n" : "")),
  };
}

function loadOptions(values: { threads?: string; kernels?: string; dtype?: string }): LoadOptions {
  const kernels = values.kernels ?? "auto";
  if (kernels !== "auto" && kernels !== "wasm" && kernels !== "ts") throw new UsageError(`--kernels must be auto, wasm or ts, got "${kernels}"`);
  const dtype = values.dtype ?? "f32";
  if (dtype !== "f32" && dtype !== "f16" && dtype !== "bf16") throw new UsageError(`--dtype must be f32, f16 or bf16, got "${dtype}"`);
  return {
    threads: values.threads === undefined ? undefined : positiveInt("threads", values.threads, 1),
    kernels,
    dtype,
    onWarning: (m) => process.stderr.write(`gpt2-reward: warning: ${m}\n`),
    hub: hubOptions(),
  };
}

async function score(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    model: { type: "string" },
    input: { type: "string" },
    "batch-size": { type: "string" },
    "max-length": { type: "string" },
    pooling: { type: "string" },
    threads: { type: "string" },
    kernels: { type: "string" },
    dtype: { type: "string" },
    output: { type: "string" },
    resume: { type: "boolean" },
  });
  if (!values.model) throw new UsageError("score needs --model <folder|file>");
  if (values.resume && !values.output) throw new UsageError("--resume needs --output <file>");
  const pooling = parsePoolingRule(values.pooling ?? "last-non-pad");
  if (!pooling) throw new UsageError(`--pooling must be last-non-pad, before-first-pad or non-pad-count, got "${values.pooling}"`);
  const batchSize = positiveInt("batch-size", values["batch-size"], 8);
  const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
  // Ctrl-C: stop reading, score and write the lines already read, exit 130. A second Ctrl-C quits at once.
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) process.exit(130);
    process.stderr.write("gpt2-reward: interrupted, finishing the lines in progress (Ctrl-C again to quit now)\n");
    interrupt.abort();
  };
  process.on("SIGINT", onSigint);
  const lines = inputLines(positionals, values.input, interrupt.signal);
  const model = await RewardModel.fromPretrained(values.model, loadOptions(values));
  const { sink, startIndex } = values.output ? fileSink(values.output, values.resume ?? false) : { sink: stdoutSink(), startIndex: 0 };
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
}

async function tokenize(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { input: { type: "string" }, "max-length": { type: "string" } });
  const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
  let index = 0;
  let failed = 0;
  for await (const line of inputLines(positionals, values.input)) {
    const i = index++;
    const item = "error" in line ? { kind: "error" as const, error: line.error } : parseInputLine(line.text);
    let record: object;
    if (item.kind === "text") {
      try {
        const { ids, truncated } = encodeTruncated(item.text, maxLength);
        record = { index: i, ids, truncated };
      } catch (e) {
        if (!(e instanceof Gpt2RewardError)) throw e;
        record = { index: i, error: e.message };
      }
    } else if (item.kind === "ids") {
      record = { index: i, error: "tokenize takes texts, not ids" };
    } else record = { index: i, error: item.error };
    if ("error" in record) failed++;
    await writeLine(JSON.stringify(record));
  }
  return failed > 0 ? 1 : 0;
}

async function demo(args: string[]): Promise<number> {
  const { values } = parse(args, { model: { type: "string" } });
  return runDemo(values.model ?? join(PACKAGE_ROOT, "fixtures", "models", "demo"), values.model === undefined);
}

async function verify(args: string[]): Promise<number> {
  const { values } = parse(args, {
    model: { type: "string" }, golden: { type: "string" }, tolerance: { type: "string" }, threads: { type: "string" }, kernels: { type: "string" },
    dtype: { type: "string" },
  });
  if (!values.model || !values.golden) throw new UsageError("verify needs --model and --golden");
  const tolerance = values.tolerance === undefined ? 1e-4 : Number(values.tolerance);
  if (!(tolerance > 0)) throw new UsageError(`--tolerance must be a positive number, got "${values.tolerance}"`);
  return runVerify(resolve(values.model), resolve(values.golden), tolerance, loadOptions(values));
}

async function inspect(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: "boolean" } });
  if (positionals.length !== 1) throw new UsageError("inspect takes one <model>");
  const r = await inspectModel(positionals[0], hubOptions());
  process.stdout.write((values.json ? JSON.stringify(r) : formatInspection(r)) + "\n");
  return 0;
}

async function convert(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { dtype: { type: "string" } });
  if (positionals.length !== 2) throw new UsageError("convert takes <model> <out.safetensors>");
  const dtype = values.dtype === undefined ? null : parseDType(values.dtype);
  if (values.dtype !== undefined && !dtype) throw new UsageError(`--dtype must be f32, f16 or bf16, got "${values.dtype}"`);
  let [model, out] = positionals;
  if (!existsSync(model) && isHubRepoId(model)) model = (await resolveHubModel(model, hubOptions())).dir;
  const r = convertModel(model, out, dtype);
  process.stderr.write(
    `wrote ${out}: ${r.tensors} tensors${dtype ? ` as ${dtype}` : ""}` +
      (r.dropped.length ? `, dropped ${r.dropped.length} attention mask buffer(s)` : "") +
      (r.configWritten ? `; copied config.json to ${r.configWritten}` : "") + "\n",
  );
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { score, tokenize, inspect, convert, demo, verify };

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    (command === undefined ? process.stderr : process.stdout).write(USAGE + "\n");
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`gpt2-reward: unknown command "${command}"\n${USAGE}\n`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof Gpt2RewardError) {
      process.stderr.write(`gpt2-reward: ${e.message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    throw e;
  }
}

// A closed pipe (`gpt2-reward score ... | head`) is a normal way to stop reading, not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

// Run when executed (also through npm's bin symlink), not when imported by tests.
const isMain = process.argv[1] !== undefined && existsSync(process.argv[1]) && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`gpt2-reward: internal error (a bug, please report it): ${(e as Error)?.stack ?? e}\n`);
      process.exitCode = 70;
    },
  );
}
