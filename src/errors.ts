/**
 * Errors a user can cause (a bad file, a bad option, a bad input line) are `Gpt2RewardError`s:
 * the CLI prints their message as one line and exits non-zero, never with a stack trace.
 * Anything else that escapes is a bug in this package.
 */
export class Gpt2RewardError extends Error {
  override name = "Gpt2RewardError";
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
