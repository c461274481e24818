/**
 * Errors a user can cause (a bad file, a bad option, a bad input line) are `Gpt2RewardError`s:
 * the CLI prints their message as one line and exits non-zero, never with a stack trace.
 * Anything else that escapes is a bug in this package.
 */
export class Gpt2RewardError extends Error {
  override name = "Gpt2RewardError";
  constructor(message: string) {
    super(oneLine(message));
  }
}

/** Messages longer than this keep their start (the file) and end (the problem), joined by "…". */
const MAX_MESSAGE = 2000;

/**
 * Messages quote names read from untrusted files (tensor names, zip record names, pickle
 * globals), which may hold newlines or terminal escape sequences, or be megabytes long. The CLI
 * promises one line per error, so control characters are escaped as in JSON and a very long
 * message is cut in the middle.
 */
function oneLine(message: string): string {
  const s = escapeUnprintable(message);
  return s.length <= MAX_MESSAGE ? s : `${s.slice(0, MAX_MESSAGE - 500)} … ${s.slice(s.length - 480)}`;
}

/** Control characters, line separators and bidi overrides: they add lines, drive a terminal or reorder text. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every unprintable character escaped as in JSON (\n, \u001b, ...). */
function escapeUnprintable(s: string): string {
  return s.replace(UNPRINTABLE, (c) =>
    c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Longest name printed whole; a longer one keeps its start and end around "…". */
const MAX_NAME = 200;

/**
 * A name read from an untrusted file (a tensor, a zip record), for a warning or a listing, which
 * do not pass through an error's one-line rule: unprintable characters escaped, at most MAX_NAME
 * characters. One helper for every message that prints such a name.
 */
export function printable(name: string): string {
  const s = escapeUnprintable(name);
  return s.length <= MAX_NAME ? s : `${s.slice(0, MAX_NAME - 40)}…${s.slice(s.length - 39)}`;
}

/**
 * JSON text of `value` for a terminal or a log: JSON.stringify escapes C0 controls but leaves C1
 * controls (\u009b starts a terminal escape too), line separators and bidi overrides raw; these
 * become \u escapes, which JSON reads back as the same string.
 */
export function printableJson(value: unknown): string {
  return JSON.stringify(value).replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * A value read from an untrusted file (JSON or pickle), quoted for an error message: short, one
 * line, and never recursive. JSON.stringify and String() recurse into arrays, so a value nested
 * 10,000 deep overflows the stack (a RangeError instead of our error), and a pickle's shared
 * sub-lists ([a, a] nested 60 times) would take 2^60 steps to print.
 */
export function quote(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}…` : v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return "an object";
}

/** A file we were asked to read is malformed; the message always starts with the file name. */
export class FormatError extends Gpt2RewardError {
  override name = "FormatError";
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
  }
}

/** A file is refused on purpose: a pickle naming a global outside the allowlist, a compressed record. */
export class UnsafeFileError extends FormatError {
  override name = "UnsafeFileError";
}

/** config.json asks for something we do not compute, or is inconsistent. */
export class ConfigError extends FormatError {
  override name = "ConfigError";
}

/** One input (a text or a list of ids) cannot be scored: empty, id out of vocabulary, bad JSON. */
export class InputError extends Gpt2RewardError {
  override name = "InputError";
}

/**
 * The caller stopped the work (Ctrl-C, an aborted signal) before it finished: not a failure of the
 * network or the files, so no fallback answers instead; the CLI exits 130, as a shell does for SIGINT.
 */
export class Interrupted extends Gpt2RewardError {
  override name = "Interrupted";
}

/**
 * The model can compute no more: one of its threads ended (it crashed, ran out of memory or was
 * stopped). Every later call fails the same way; load the model again.
 */
export class ModelBrokenError extends Gpt2RewardError {
  override name = "ModelBrokenError";
}
