/**
 * What several commands share: the options that load a model, where input comes from, and how
 * lines reach stdout. Each command file declares only what is its own.
 */
import { createReadStream, existsSync } from "node:fs";
import { Gpt2RewardError } from "../errors.js";
import type { HubOptions } from "../hub/hub.js";
import { DEFAULT_MAX_LENGTH, type LoadOptions } from "../model/reward-model.js";
import { oneOf, positiveInt, UsageError, type Option } from "./args.js";
import { readLines, type Line } from "./lines.js";

export const MODEL_OPTION = {
  type: "string", short: "m", value: "MODEL",
  help: "a folder (config.json + weights), a weights file with config.json beside it, or a Hub repo owner/name[@revision]",
} as const satisfies Option;

/** How the model runs: threads, kernels, weight dtype in memory. */
export const LOAD_OPTIONS = {
  threads: { type: "string", short: "t", value: "N", default: "all cores", help: "threads computing each forward pass" },
  kernels: { type: "string", value: "auto|wasm|ts|ref", default: "auto", help: "WebAssembly SIMD kernels, pure TypeScript ones, the plain reference loops (one thread), or wasm where available" },
  dtype: {
    type: "string", value: "f32|f16|bf16", default: "f32",
    help: "keep the linear weights 16-bit in memory as the checkpoint stores them (half the memory, the same scores)",
  },
} as const satisfies Record<string, Option>;

export const INPUT_OPTION = {
  type: "string", short: "i", value: "FILE", default: "standard input", help: 'input file ("-" for standard input)',
} as const satisfies Option;

export const MAX_LENGTH_OPTION = {
  type: "string", short: "l", value: "N", default: String(DEFAULT_MAX_LENGTH), help: "tokens kept per text, from the end (left truncation, as the model card)",
} as const satisfies Option;

export const MODEL_HELP = `MODEL is a folder (config.json + model.safetensors, shards, or pytorch_model.bin), a weights
file with config.json beside it, or a Hugging Face repo owner/name[@revision] (HF_TOKEN, HF_HOME,
HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT are honoured).`;

/** The model named by --model or, for commands that always took it so, the first positional. */
export function modelArg(command: string, option: string | undefined, positionals: string[], positional: boolean): { model: string; rest: string[] } {
  if (option !== undefined) return { model: option, rest: positionals };
  if (positional && positionals.length > 0) return { model: positionals[0], rest: positionals.slice(1) };
  throw new UsageError(`${command} needs --model MODEL; see gpt2-reward ${command} --help`);
}

/** Download progress for Hub models, on a terminal only. */
export function hubOptions(): HubOptions {
  if (!process.stderr.isTTY) return {};
  return {
    progress: (file, done, total) =>
      process.stderr.write(`\rdownloading ${file}: ${(done / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ""} MB ` + (done === total ? "\n" : "")),
  };
}

export function loadOptions(values: { threads?: string; kernels?: string; dtype?: string }): LoadOptions {
  return {
    threads: values.threads === undefined ? undefined : positiveInt("threads", values.threads, 1),
    kernels: oneOf("kernels", values.kernels, ["auto", "wasm", "ts", "ref"] as const, "auto"),
    dtype: oneOf("dtype", values.dtype, ["f32", "f16", "bf16"] as const, "f32"),
    onWarning: (m) => process.stderr.write(`gpt2-reward: warning: ${m}\n`),
    hub: hubOptions(),
  };
}

/** Raw lines of an --input file, or of standard input for none or "-". */
export function inputFileLines(input: string | undefined, signal?: AbortSignal): AsyncIterable<Line> {
  if (input === undefined || input === "-") return readLines(process.stdin, signal);
  if (!existsSync(input)) throw new Gpt2RewardError(`${input}: no such file`);
  return readLines(createReadStream(input), signal);
}

/** Writes one line to stdout, waiting when the pipe is full so memory stays flat on long jobs. */
export async function writeLine(s: string): Promise<void> {
  if (!process.stdout.write(s + "\n")) await new Promise<void>((r) => process.stdout.once("drain", r));
}
