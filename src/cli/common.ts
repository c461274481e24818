/**
 * What several commands share: the options that load a model, where input comes from, and how
 * lines reach stdout. Each command file declares only what is its own.
 */
import type { HubOptions } from "../hub/hub.js";
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, type LoadOptions } from "../model/sync-model.js";
import { DTYPE_HELP, parseDType } from "../model/resolve.js";
import { oneOf, positiveInt, UsageError, type Option } from "./args.js";
import { openJobInput, type Line } from "./lines.js";
import { DEFAULT_CHAT_TEMPLATE, formatOfFile, INPUT_FORMATS, inputItems, textItems, type InputItem, type InputSpec } from "./input.js";

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

/** How input records are read (input.ts): format, text field, chat rendering. */
export const INPUT_FORMAT_OPTIONS = {
  format: { type: "string", short: "f", value: "jsonl|csv|tsv|text", default: "from the file extension, else jsonl", help: "input format" },
  "text-field": { type: "string", value: "PATH", default: "text (or messages, ids)", help: "the field holding the text: a dotted path in JSON, a column in CSV/TSV" },
  "chat-template": { type: "string", value: "T", default: JSON.stringify(DEFAULT_CHAT_TEMPLATE), help: "how one chat message is written: {role}, {Role} (capitalized), {content}; messages are joined by newlines" },
  roles: { type: "string", value: "R=NAME,...", help: 'rename chat roles, e.g. "assistant=Bot,user=User"' },
} as const satisfies Record<string, Option>;

export const INPUT_FORMAT_HELP = `Input formats (--format, else the --input extension: .jsonl/.ndjson/.json, .csv, .tsv, .txt):
  jsonl  {"text": "..."}, {"ids": [...]} or {"messages": [{"role", "content"}, ...]} a line,
         or the field --text-field names (a dotted path; a string or chat messages)
  csv    a header line, then records; --text-field names the text column (default "text")
  tsv    the same with tabs
  text   one text a line, as it is
Chat messages become one "{Role}: {content}" line each (as Chai's conversations read), joined by
newlines. Blank lines are skipped and do not count: index N is the (N+1)-th record. Other fields
of a record (e.g. "id") are copied to its output line.`;

export function inputSpec(values: { format?: string; "text-field"?: string; "chat-template"?: string; roles?: string }, input: string | undefined): InputSpec {
  const fromFile = input !== undefined && input !== "-" ? formatOfFile(input) : null;
  const format = oneOf("format", values.format, INPUT_FORMATS, fromFile ?? "jsonl");
  if (values["text-field"] === "") throw new UsageError("--text-field must not be empty");
  const roles: Record<string, string> = {};
  for (const pair of values.roles ? values.roles.split(",") : []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--roles takes role=Name pairs separated by commas, got "${pair}"`);
    roles[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return { format, textField: values["text-field"], chatTemplate: values["chat-template"], roles };
}

/** The records to score: TEXT arguments (each one text), or the --input file's / stdin's records. */
export function inputRecords(
  texts: string[], values: Parameters<typeof inputSpec>[0] & { input?: string }, signal?: AbortSignal, onBytes?: (n: number) => void,
): AsyncIterable<InputItem> {
  const spec = inputSpec(values, values.input); // checked even when TEXT arguments leave it unused
  if (texts.length > 0) {
    if (values.input !== undefined) throw new UsageError("give either --input or TEXT arguments, not both");
    return textItems(texts);
  }
  const lines = inputFileLines(values.input, signal);
  return inputItems(onBytes ? countBytes(lines, onBytes) : lines, spec);
}

/** The lines, telling `onBytes` how many input bytes each took (for progress against the file size). */
export async function* countBytes(lines: AsyncIterable<Line>, onBytes: (n: number) => void): AsyncGenerator<Line> {
  for await (const line of lines) {
    onBytes("text" in line ? Buffer.byteLength(line.text) + 1 : 1);
    yield line;
  }
}

export const BATCH_SIZE_OPTION = {
  type: "string", short: "b", value: "N", default: String(DEFAULT_BATCH_SIZE), help: "texts per forward pass",
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
  throw new UsageError(`${command} needs --model MODEL`);
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
  const threads = values.threads === undefined ? undefined : positiveInt("threads", values.threads, 1);
  const kernels = oneOf("kernels", values.kernels, ["auto", "wasm", "ts", "ref"] as const, "auto");
  // A command-line mistake, said before the model loads (the model says it too, for the API).
  if (kernels === "ref" && threads !== undefined && threads > 1) throw new UsageError(`--kernels ref runs on one thread (the plain reference loops), got --threads ${threads}`);
  return {
    threads,
    kernels,
    dtype: weightDType(values.dtype),
    onWarning: (m) => process.stderr.write(`gpt2-reward: warning: ${m}\n`),
    hub: hubOptions(),
  };
}

/** --dtype by the one dtype parser (so "float16", "half", "bfloat16" work too), as LoadOptions spell it. */
function weightDType(value: string | undefined): "f32" | "f16" | "bf16" {
  if (value === undefined) return "f32";
  const d = parseDType(value);
  if (!d) throw new UsageError(`--dtype must be ${DTYPE_HELP}, got "${value}"`);
  return d.toLowerCase() as "f32" | "f16" | "bf16";
}

/** Raw lines of an --input file, or of standard input for none or "-". */
export function inputFileLines(input: string | undefined, signal?: AbortSignal): AsyncIterable<Line> {
  return openJobInput([], input).lines(signal);
}

/** Writes one line to stdout, waiting when the pipe is full so memory stays flat on long jobs. */
export async function writeLine(s: string): Promise<void> {
  if (!process.stdout.write(s + "\n")) await new Promise<void>((r) => process.stdout.once("drain", r));
}
