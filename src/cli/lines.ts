/**
 * Reads a stream line by line as raw bytes and decodes each line as strict UTF-8, so that a line
 * with invalid UTF-8 is reported as such (readline would silently turn it into U+FFFD and score
 * a text nobody wrote). "\r\n" endings are accepted; a final line without "\n" counts.
 *
 * A line longer than `maxLineBytes` is skipped as it streams past (its bytes are counted, never
 * kept) and becomes an error for that line: one endless line (`--input /dev/zero` has none, a
 * 5 GB line on stdin) costs no more memory than a short one.
 */
import { closeSync, createReadStream, fstatSync, openSync, statSync, constants as fsc, type Stats } from "node:fs";
import { isatty } from "node:tty";
import type { Readable } from "node:stream";
import { Gpt2RewardError } from "../errors.js";
import { argumentsIdentity, fileIdentity, StreamIdentity, UNKNOWN_STREAM, type InputIdentity } from "./identity.js";

export type Line = { text: string } | { error: string };

/**
 * The default --max-line-bytes: 64 MiB, far above any conversation (a 50 MB text still scores, at
 * the cost of its last --max-length tokens), and low enough that one line never takes the memory
 * a job needs (the line, its string, its JSON value: about 4× its bytes while it is prepared).
 */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Stops (as at end of input) when `signal` fires, even while waiting for input. */
export async function* readLines(
  stream: Readable | (AsyncIterable<Buffer> & { destroy?(): void }), signal?: AbortSignal, maxLineBytes = DEFAULT_MAX_LINE_BYTES,
): AsyncGenerator<Line> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** Bytes of the current line while it is being skipped (it is over maxLineBytes), else -1. */
  let skipped = -1;
  /** Its last byte so far: a "\r" before the "\n" is not part of the line, in its count either. */
  let lastSkipped = -1;
  const stop = () => void stream.destroy?.();
  signal?.addEventListener("abort", stop, { once: true });
  const tooLong = (bytes: number): Line => {
    const length = lastSkipped === 13 ? bytes - 1 : bytes;
    return { error: `line of ${length} bytes is longer than --max-line-bytes ${maxLineBytes}; skipped` };
  };
  try {
    for await (const chunk of chunks(stream, signal)) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(10, start);
        const end = nl < 0 ? chunk.length : nl;
        if (skipped >= 0 && end > start) lastSkipped = chunk[end - 1];
        if (skipped >= 0) skipped += end - start;
        else if (pendingBytes + end - start > maxLineBytes + 1) {
          // +1: the "\r" of a "\r\n" ending is not part of the line.
          skipped = pendingBytes + end - start;
          lastSkipped = chunk[end - 1];
          pending = [];
          pendingBytes = 0;
        } else if (end > start) {
          pending.push(chunk.subarray(start, end));
          pendingBytes += end - start;
        }
        if (nl < 0) break;
        if (skipped >= 0) yield tooLong(skipped);
        else yield decode(Buffer.concat(pending), maxLineBytes);
        pending = [];
        pendingBytes = 0;
        skipped = -1;
        start = nl + 1;
      }
    }
  } finally {
    signal?.removeEventListener("abort", stop);
  }
  if (signal?.aborted) return;
  if (skipped >= 0) yield tooLong(skipped);
  else if (pendingBytes > 0) yield decode(Buffer.concat(pending), maxLineBytes);
}

/** The stream's chunks; a stream destroyed because `signal` fired just ends. */
async function* chunks(stream: AsyncIterable<Buffer>, signal?: AbortSignal): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) yield chunk;
  } catch (e) {
    if (!signal?.aborted) throw e;
  }
}

function decode(bytes: Buffer, maxLineBytes: number): Line {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
  // Only reachable for a line of exactly maxLineBytes + 1 bytes not ending in "\r".
  if (end > maxLineBytes) return { error: `line of ${end} bytes is longer than --max-line-bytes ${maxLineBytes}; skipped` };
  try {
    return { text: decoder.decode(bytes.subarray(0, end)) };
  } catch {
    return { error: "line is not valid UTF-8" };
  }
}

/**
 * Opens `--input` for reading: a regular file, a pipe (a FIFO, `<(zcat x.gz)`) or a terminal.
 * A directory, a device that never ends (/dev/zero, /dev/urandom) or a file we may not read is
 * refused here, in one line, before the model loads.
 */
export function openInput(path: string): Readable {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Gpt2RewardError(`${path}: ${describeErrno(e, "cannot read")}`);
  }
  if (st.isDirectory()) throw new Gpt2RewardError(`${path}: is a directory, not an input file`);
  // A FIFO's open waits for its writer: leave it to the stream (off the main thread).
  if (st.isFIFO()) return createReadStream(path);
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOCTTY);
  } catch (e) {
    throw new Gpt2RewardError(`${path}: ${describeErrno(e, "cannot read")}`);
  }
  const refused = notAnInput(fd);
  if (refused) {
    closeSync(fd);
    throw new Gpt2RewardError(`${path}: ${refused}`);
  }
  return createReadStream("", { fd });
}

/**
 * Why the open `fd` cannot be read as a job's input, or undefined if it can: a regular file, a
 * pipe or socket, a terminal, or /dev/null (no lines). A directory, or a device that never ends
 * (/dev/zero, /dev/urandom, a disk), is refused: as standard input too (`score < /dev/zero`).
 */
function notAnInput(fd: number): string | undefined {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch {
    return undefined; // a closed standard input: reading it says so
  }
  if (st.isDirectory()) return "is a directory, not an input file";
  if (st.isFile() || st.isFIFO() || st.isSocket() || isatty(fd) || isDevNull(st)) return undefined;
  return "is a device, not an input file or a pipe";
}

function isDevNull(st: Stats): boolean {
  try {
    return st.isCharacterDevice() && st.rdev === statSync("/dev/null").rdev;
  } catch {
    return false;
  }
}

/** A job's input: TEXT arguments, an --input file or pipe, or standard input. */
export interface JobInput {
  /** Its lines; call once. */
  lines(signal?: AbortSignal): AsyncIterable<Line>;
  /**
   * What it is, for the sidecar of a file output. A pipe is identified by its first MiB: when
   * resuming (`resuming`), that is read ahead now; otherwise it is UNKNOWN_STREAM until the
   * bytes have passed, then given to `onIdentity`.
   */
  identity(resuming: boolean): Promise<InputIdentity>;
  onIdentity?: (identity: InputIdentity) => void;
}

/** Opens the input at once, so a bad --input is refused before the model loads. */
export function openJobInput(texts: string[], input: string | undefined, maxLineBytes = DEFAULT_MAX_LINE_BYTES): JobInput {
  if (texts.length > 0) {
    if (input !== undefined) throw new Gpt2RewardError("give either --input or TEXT arguments, not both");
    return {
      lines: () => (async function* () {
        for (const text of texts) yield { text: JSON.stringify({ text }) };
      })(),
      identity: async () => argumentsIdentity(texts),
    };
  }
  const stdin = input === undefined || input === "-";
  const refused = stdin ? notAnInput(0) : undefined;
  if (refused) throw new Gpt2RewardError(`standard input ${refused}`);
  const stream: Readable = stdin ? process.stdin : openInput(input);
  const fd = stdin ? 0 : (stream as Readable & { fd?: number | null }).fd;
  const isFile = typeof fd === "number" && fstatSync(fd).isFile();
  const tap = isFile ? undefined : new StreamIdentity(stream);
  const job: JobInput = {
    lines: (signal) => readLines(tap ? tap.chunks() : stream, signal, maxLineBytes),
    identity: async (resuming) => {
      if (!tap) return fileIdentity(stdin ? "-" : input, fd as number);
      tap.onKnown = (identity) => job.onIdentity?.(identity);
      return resuming ? tap.ahead() : UNKNOWN_STREAM;
    },
  };
  return job;
}

/** "no such file", "permission denied (EACCES)", ...: an errno as a user reads it. */
export function describeErrno(e: unknown, what: string): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  const known: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EISDIR: "is a directory",
    ENOTDIR: "a folder in the path is not a folder",
    ENOSPC: "no space left on the device",
    EDQUOT: "disk quota exceeded",
    EFBIG: "file too large for this file system or limit",
    EIO: "input/output error",
    EROFS: "read-only file system",
    ELOOP: "too many symbolic links",
    ENAMETOOLONG: "name too long",
  };
  if (code && known[code]) return code === "ENOENT" ? known[code] : `${what}: ${known[code]} (${code})`;
  return `${what}: ${code ?? (e as Error)?.message ?? String(e)}`;
}
