#!/usr/bin/env node
/**
 * gpt2-reward: score texts with a GPT-2 reward model from the command line.
 * stdout carries only JSON lines (or a command's table); messages go to stderr. A user mistake
 * prints one line and exits non-zero (2 for a mistake in the command line); a stack trace means
 * a bug in gpt2-reward. Each command lives in its own file and declares its options there.
 */
import { existsSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import "../platform/node.js";
import { Gpt2RewardError, Interrupted } from "../errors.js";
import { helpText, parseCommand, UsageError, version, type Command } from "./args.js";
import { convert } from "./convert.js";
import { demo } from "./demo.js";
import { inspect } from "./inspect.js";
import { merge } from "./merge.js";
import { describeErrno } from "./lines.js";
import { rank } from "./rank.js";
import { score } from "./score.js";
import { serve } from "./serve.js";
import { tokenize } from "./tokenize.js";
import { trace } from "./trace.js";
import { verify } from "./verify.js";

const COMMANDS: Command[] = [score, serve, rank, merge, tokenize, inspect, convert, demo, verify, trace] as Command[];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "usage: gpt2-reward COMMAND [options]",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "`gpt2-reward COMMAND --help` shows a command's options, defaults and an example.",
    "`gpt2-reward --version` prints the version.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    (name === undefined ? process.stderr : process.stdout).write(usage() + "\n");
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(version() + "\n");
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`gpt2-reward: unknown command "${name}"; see gpt2-reward --help\n`);
    return 2;
  }
  try {
    const parsed = parseCommand(command, rest);
    if (parsed.kind === "help") process.stdout.write(helpText(command) + "\n");
    if (parsed.kind === "version") process.stdout.write(version() + "\n");
    if (parsed.kind !== "run") return 0;
    return await command.run(parsed.values, parsed.positionals);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`gpt2-reward: ${e.message}; see gpt2-reward ${command.name} --help\n`);
      return 2;
    }
    if (e instanceof Gpt2RewardError) {
      process.stderr.write(`gpt2-reward: ${e.message}\n`);
      return e instanceof Interrupted ? 130 : 1;
    }
    throw e;
  }
}

// A closed pipe (`gpt2-reward score ... | head`) is a normal way to stop reading, not an error;
// any other failure of stdout (a full disk behind `> file`, EIO) is one line and exit 1.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  process.stderr.write(`gpt2-reward: stdout: ${describeErrno(e, "cannot write")}\n`);
  process.exit(1);
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
