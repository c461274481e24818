/**
 * The one argument layer every subcommand uses: a command declares its options once (name,
 * short flag, value name, default, one line of help) and gets `--help`/`-h`, `--version` and
 * one-line usage errors that point to `--help`. Node's parseArgs does the parsing underneath.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Gpt2RewardError } from "../errors.js";

/** The package root, found from this file (dist/src/cli/args.js or src/cli/args.ts). */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

/** A mistake in the command line: exit status 2, and main() adds the pointer to the command's `--help`. */
export class UsageError extends Gpt2RewardError {
  override name = "UsageError";
}

export interface Option {
  type: "string" | "boolean";
  /** One letter, used as `-x`. */
  short?: string;
  /** The value's name in the help, e.g. FILE or N (string options). */
  value?: string;
  /** The default as the help shows it (applied by the command, which knows its type). */
  default?: string;
  help: string;
}

export type Options = Record<string, Option>;

/** What parseArgs returns for these options: strings, booleans, or nothing when not given. */
export type Values<O extends Options> = { [K in keyof O]?: O[K] extends { type: "boolean" } ? boolean : string };

export interface Command<O extends Options = Options> {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The synopsis after `gpt2-reward <name>`, e.g. "[options] [TEXT...]". */
  usage: string;
  options: O;
  /** Paragraphs printed after the options (input formats, rules). */
  details?: string;
  examples: string[];
  run(values: Values<O>, positionals: string[]): Promise<number>;
}

/** Lets TypeScript infer a command's option types from its declaration. */
export function defineCommand<O extends Options>(c: Command<O>): Command<O> {
  return c;
}

export function version(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** What the command line asks for: run the command, or print its help or the version. */
export type Parsed<O extends Options> = { kind: "run"; values: Values<O>; positionals: string[] } | { kind: "help" } | { kind: "version" };

export function parseCommand<O extends Options>(cmd: Command<O>, args: string[]): Parsed<O> {
  // --help and --version win wherever they stand (before a lone "--"), even beside a mistake.
  const flags = args.indexOf("--") < 0 ? args : args.slice(0, args.indexOf("--"));
  if (flags.includes("--help") || flags.includes("-h")) return { kind: "help" };
  if (flags.includes("--version")) return { kind: "version" };
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, o] of Object.entries(cmd.options)) options[name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { kind: "run", values: values as Values<O>, positionals };
  } catch (e) {
    throw new UsageError(`${cmd.name}: ${parseArgsProblem(e as Error & { code?: string })}`);
  }
}

/** parseArgs' message, cut to its first sentence ("Unknown option '--x'. To specify ..." is three). */
function parseArgsProblem(e: Error & { code?: string }): string {
  const m = /'([^']*)'/.exec(e.message);
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && m) return `unknown option ${m[1]}`;
  if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && m && /argument missing/.test(e.message)) return `${m[1].replace(/ <value>$/, "")} needs a value`;
  if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && m && /ambiguous/.test(e.message)) {
    return `${m[1]} needs a value (to give one that starts with "-", write ${m[1]}=-...)`;
  }
  const first = e.message.split(/\.(\s|$)/)[0];
  return first.charAt(0).toLowerCase() + first.slice(1);
}

export function helpText(cmd: Command): string {
  const rows = Object.entries(cmd.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    return { flag, help: o.help + (o.default !== undefined ? ` (default: ${o.default})` : "") };
  });
  rows.push({ flag: "-h, --help", help: "show this help" }, { flag: "    --version", help: "print the version" });
  const width = Math.max(...rows.map((r) => r.flag.length));
  const out = [`usage: gpt2-reward ${cmd.name} ${cmd.usage}`, "", cmd.summary, "", "options:"];
  for (const r of rows) out.push(`  ${r.flag.padEnd(width)}  ${r.help}`);
  if (cmd.details) out.push("", cmd.details);
  out.push("", cmd.examples.length > 1 ? "examples:" : "example:", ...cmd.examples.map((e) => `  ${e}`));
  return out.join("\n");
}

/** A positive integer option, or its default. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** One of a fixed set of words, or its default. */
export function oneOf<T extends string>(name: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`--${name} must be ${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}, got "${value}"`);
  return value as T;
}
