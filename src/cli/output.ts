/**
 * Where a scoring job's JSON lines go: a regular file, or a stream, and nothing in between.
 *
 * - A stream (`-`, /dev/stdout, a pipe or FIFO, a socket, a terminal, /dev/null) is written as
 *   it comes, with no check and no resume: there is nothing to read back.
 * - A regular file is a job's record. It is locked (`<file>.lock`, created exclusively) so a
 *   second job on it is refused; it must be empty unless `--resume`; each line goes out in one
 *   write at a known offset, so a job killed at any moment (even SIGKILL) leaves whole lines, and
 *   a write that fails (ENOSPC, EFBIG, EIO) is cut back to the last whole line before the error
 *   is reported. `--resume` reads the file back as a stream of bytes (never as one string: a job of
 *   tens of millions of lines resumes too), checks every line's index, and cuts a partial last
 *   line by bytes. The sidecar `<file>.job.json` says which job the lines belong to (identity.ts).
 * - Anything else (a directory, /dev/full, /dev/zero, a disk) is refused by name.
 */
import {
  closeSync, createWriteStream, fstatSync, ftruncateSync, openSync, readFileSync, readSync, realpathSync, renameSync,
  rmSync, statSync, unlinkSync, writeFileSync, writeSync, constants as fsc, type Stats,
} from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { isatty } from "node:tty";
import { Gpt2RewardError } from "../errors.js";
import { describeErrno } from "./lines.js";
import { describeMismatch, type InputIdentity, type JobIdentity } from "./identity.js";

export interface Sink {
  /** Writes one line (without its "\n"). Rejects or throws a Gpt2RewardError if it cannot. */
  write(line: string): void | Promise<void>;
  /** Flushes and releases the output (the lock of a file). Safe to call twice. */
  close(): Promise<void>;
}

/** The reader of a stream went away (`| head`): a normal way to stop, not an error. */
export class ReaderGone extends Gpt2RewardError {}

export interface OpenOutput {
  sink: Sink;
  /** What the output already holds (after --resume): its lines, and how many are errors. */
  kept: number;
  keptFailed: number;
  /** "file" can be resumed; "stream" cannot. */
  kind: "file" | "stream";
  /** Completes the sidecar once a piped input's identity is known (nothing for a stream output). */
  recordInput(input: InputIdentity): void;
  /** Marks the sidecar: the job read its whole input, which had `inputLines` lines (for merge). */
  recordDone(inputLines: number): void;
}

export interface OutputOptions {
  resume: boolean;
  /**
   * Written to the sidecar of a file output; --resume requires the same. Asked for a file output
   * only; `resuming` when the file holds lines to continue.
   */
  identity: (resuming: boolean) => Promise<JobIdentity>;
  /** The input index of the k-th line this job writes (k, or I + k·N for shard I/N). */
  indexOf: (k: number) => number;
}

/** The sidecar beside a file output. */
export const sidecarPath = (file: string) => `${file}.job.json`;
export const lockPath = (file: string) => `${file}.lock`;

/** Opens `--output` (undefined or "-": standard output). */
export async function openOutput(path: string | undefined, opts: OutputOptions): Promise<OpenOutput> {
  const kind = path === undefined || path === "-" ? "stdout" : classify(path);
  if (kind !== "file" && opts.resume) {
    throw new Gpt2RewardError(`${path ?? "-"}: --resume needs a regular file as --output, not a stream (there is nothing to read back)`);
  }
  if (kind === "stdout") return { sink: streamSink(process.stdout, "stdout", false), kept: 0, keptFailed: 0, kind: "stream", recordInput: () => {}, recordDone: () => {} };
  if (kind === "stream") {
    // A FIFO's open waits for its reader: the stream opens it off the main thread.
    return { sink: streamSink(createWriteStream(path!, { flags: "a" }), path!, true), kept: 0, keptFailed: 0, kind: "stream", recordInput: () => {}, recordDone: () => {} };
  }
  return fileOutput(path!, opts.resume, opts.indexOf, opts.identity);
}

/** What `path` is as an output: a file (or none yet), a stream, standard output; refused otherwise. */
function classify(path: string): "file" | "stream" | "stdout" {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "file";
    throw new Gpt2RewardError(`${path}: ${describeErrno(e, "cannot write")}`);
  }
  // /dev/stdout, /proc/self/fd/1: our own standard output, whatever it is.
  const out = safeFstat(1);
  if (out && out.dev === st.dev && out.ino === st.ino && !st.isFile()) return "stdout";
  if (st.isFile()) return "file";
  if (st.isDirectory()) throw new Gpt2RewardError(`${path}: is a directory; --output takes a file name`);
  if (st.isFIFO() || st.isSocket()) return "stream";
  if (st.isCharacterDevice() && (isTerminal(path) || realpathOrSelf(path) === "/dev/null")) return "stream";
  throw new Gpt2RewardError(`${path}: is a device, not a file or a pipe; --output takes a file, a pipe or - (standard output)`);
}

function safeFstat(fd: number): Stats | undefined {
  try {
    return fstatSync(fd);
  } catch {
    return undefined;
  }
}

function realpathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function isTerminal(path: string): boolean {
  let fd = -1;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_NOCTTY | fsc.O_NONBLOCK);
    return isatty(fd);
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * A stream sink waits when the stream is full, so memory stays flat however slow the reader is.
 * A write error ends the job with one line; EPIPE (the reader is gone) ends it quietly.
 */
function streamSink(stream: Writable, name: string, own: boolean): Sink {
  let failure: Gpt2RewardError | undefined;
  const fail = (e: NodeJS.ErrnoException) =>
    e.code === "EPIPE" ? new ReaderGone(`${name}: the reader closed the pipe`) : new Gpt2RewardError(`${name}: ${describeErrno(e, "cannot write")}`);
  stream.on("error", (e: NodeJS.ErrnoException) => (failure ??= fail(e)));
  return {
    write: (line) => {
      if (failure) throw failure;
      if (stream.write(line + "\n")) return;
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          stream.off("drain", done);
          stream.off("error", done);
          stream.off("close", done);
          if (failure) reject(failure);
          else resolve();
        };
        stream.on("drain", done).on("error", done).on("close", done);
      });
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (!own) {
          // stdout stays open for the process; wait only for what is queued.
          if (failure) return reject(failure);
          if (stream.writableLength === 0) return resolve();
          stream.once("drain", () => (failure ? reject(failure) : resolve()));
          stream.once("error", () => reject(failure));
          return;
        }
        if (stream.writableFinished || stream.destroyed) return failure ? reject(failure) : resolve();
        stream.end(() => (failure ? reject(failure) : resolve()));
        stream.once("error", () => reject(failure));
      }),
  };
}

// ---------------------------------------------------------------------------- a file

async function fileOutput(file: string, resume: boolean, indexOf: (k: number) => number, identify: (resuming: boolean) => Promise<JobIdentity>): Promise<OpenOutput> {
  const lock = acquireLock(file);
  let fd = -1;
  try {
    try {
      fd = openSync(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOCTTY, 0o644);
    } catch (e) {
      throw new Gpt2RewardError(`${file}: ${describeErrno(e, "cannot write")}`);
    }
    // Checked again on the open file: the path may have changed since classify().
    if (!fstatSync(fd).isFile()) throw new Gpt2RewardError(`${file}: is not a regular file`);
    const size = fstatSync(fd).size;
    let kept = 0;
    let keptFailed = 0;
    let end = 0;
    if (size > 0) {
      if (!resume) throw new Gpt2RewardError(`${file}: already holds results; use --resume to continue that job, or remove the file`);
    }
    const identity = await identify(size > 0);
    if (size > 0) {
      checkSidecar(file, identity);
      ({ kept, keptFailed, end } = scanOutput(fd, file, indexOf));
      if (end < size) ftruncateSync(fd, end); // a partial last line, cut by bytes
    }
    writeSidecar(file, identity);
    const sink = fileSink(fd, file, end, kept, indexOf, lock);
    let current = identity;
    const recordInput = (input: InputIdentity) => writeSidecar(file, (current = { ...current, input }));
    const recordDone = (inputLines: number) => writeSidecar(file, { ...current, done: { input_lines: inputLines } });
    return { sink, kept, keptFailed, kind: "file", recordInput, recordDone };
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    lock.release();
    throw e;
  }
}

function fileSink(fd: number, file: string, start: number, kept: number, indexOf: (k: number) => number, lock: Lock): Sink {
  let end = start; // bytes of whole lines written
  let lines = kept;
  let open = true;
  return {
    write: (line) => {
      const bytes = Buffer.from(line + "\n", "utf8");
      try {
        // One write(2) for the line; a short write (a disk filling up) is continued, then reported.
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, end + done);
      } catch (e) {
        try {
          ftruncateSync(fd, end); // the partial line goes: the file ends with whole lines
        } catch {
          // the error below says what happened; --resume also cuts a partial line
        }
        const last = lines > 0 ? `index ${indexOf(lines - 1)}` : "no line yet";
        throw new Gpt2RewardError(`${file}: ${describeErrno(e, "cannot write")}; the file ends with its last whole line (${last}); free space and run again with --resume`);
      }
      end += bytes.length;
      lines++;
    },
    close: async () => {
      if (!open) return;
      open = false;
      closeSync(fd);
      lock.release();
    },
  };
}

/**
 * Reads the output back a MiB at a time: every whole line must be the JSON line of the next index
 * this job writes. Returns the lines kept, how many are errors, and where the whole lines end.
 */
function scanOutput(fd: number, file: string, indexOf: (k: number) => number): { kept: number; keptFailed: number; end: number } {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const buf = Buffer.alloc(1 << 20);
  let carry: Buffer = Buffer.alloc(0);
  let pos = 0;
  let kept = 0;
  let keptFailed = 0;
  const refuse = (why: string) => {
    throw new Gpt2RewardError(`${file}: line ${kept + 1} ${why}; it is not the output of this job (the sidecar ${basename(sidecarPath(file))} says it is: was the file edited?)`);
  };
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    pos += n;
    let data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
    let start = 0;
    for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
      let record: { index?: unknown; error?: unknown };
      try {
        record = JSON.parse(decoder.decode(data.subarray(start, nl)));
      } catch {
        return refuse("is not a JSON line");
      }
      if (typeof record !== "object" || record === null || record.index !== indexOf(kept)) {
        refuse(`should be the result of input ${indexOf(kept)}`);
      }
      if (typeof record.error === "string") keptFailed++;
      kept++;
      start = nl + 1;
    }
    data = data.subarray(start);
    // A line of over 64 MiB was never written by a job: stop before holding more of it.
    if (data.length > 64 << 20) refuse("is longer than any output line");
    carry = Buffer.from(data);
  }
  return { kept, keptFailed, end: pos - carry.length };
}

// ---------------------------------------------------------------------------- the sidecar

function checkSidecar(file: string, identity: JobIdentity): void {
  const side = sidecarPath(file);
  let text: string;
  try {
    const st = statSync(side);
    if (!st.isFile() || st.size > 1 << 20) throw new Error("not a small regular file");
    text = readFileSync(side, "utf8");
  } catch {
    throw new Gpt2RewardError(`${file}: cannot resume: no readable ${basename(side)} beside it says which job wrote it (a file from an older version or another program?); remove it to start over`);
  }
  let recorded: unknown;
  try {
    recorded = JSON.parse(text);
  } catch {
    throw new Gpt2RewardError(`${side}: not valid JSON; cannot tell which job wrote ${basename(file)}`);
  }
  const difference = describeMismatch(recorded, identity);
  if (difference) throw new Gpt2RewardError(`${file}: cannot resume: ${difference}`);
}

/** Written whole to a temporary file, then renamed: never half a sidecar. */
function writeSidecar(file: string, identity: JobIdentity & { done?: { input_lines: number } }): void {
  const side = sidecarPath(file);
  const tmp = join(dirname(side), `.${basename(side)}.${process.pid}.tmp`);
  try {
    rmSync(tmp, { force: true });
    writeFileSync(tmp, JSON.stringify(identity, null, 2) + "\n", { flag: "wx" });
    renameSync(tmp, side);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Gpt2RewardError(`${side}: ${describeErrno(e, "cannot write")}`);
  }
}

// ---------------------------------------------------------------------------- the lock

interface Lock {
  release(): void;
}

/**
 * `<file>.lock`, created with O_EXCL (atomic on local file systems and NFSv3+), holding
 * {pid, host, since}; removed when the job ends, also on Ctrl-C and on a failure. A lock left by a
 * job that was killed (SIGKILL, a crash, a reboot) is stale when it names this host and a process
 * that no longer exists (or this very process: a container restarted with the same pid); it is then
 * removed and taken. A lock from another host is never judged stale here: remove it by hand once
 * you know that job is gone.
 */
function acquireLock(file: string): Lock {
  const path = lockPath(file);
  const body = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }) + "\n";
  for (let attempt = 0; ; attempt++) {
    try {
      createLockFile(path, body);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new Gpt2RewardError(`${path}: ${describeErrno(e, "cannot create the lock")}`);
    }
    const holder = readLock(path);
    if (attempt === 0 && holder && holder.host === hostname() && (holder.pid === process.pid || !alive(holder.pid))) {
      rmSync(path, { force: true });
      continue;
    }
    const who = holder ? `process ${holder.pid} on ${holder.host}, since ${holder.since}` : "a lock we cannot read";
    throw new Gpt2RewardError(`${file}: another job is writing it (${who}; lock file ${path}); if that job is gone, remove the lock file`);
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off("exit", release);
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.on("exit", release); // process.exit() (a second Ctrl-C, a closed pipe) skips finally blocks
  return { release };
}

/**
 * Creates the lock exclusively and writes its holder. A lock that cannot be written whole (the
 * disk is full, a file size limit) is removed again: an empty lock would refuse every later job.
 */
function createLockFile(path: string, body: string): void {
  const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  try {
    const bytes = Buffer.from(body, "utf8");
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, done);
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw e;
  }
  closeSync(fd);
}

function readLock(path: string): { pid: number; host: string; since: string } | undefined {
  try {
    // Non-blocking: a FIFO planted as the lock must not hang the job waiting for a writer.
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
    try {
      if (!fstatSync(fd).isFile()) return undefined;
      const buf = Buffer.alloc(4096);
      const n = readSync(fd, buf, 0, buf.length, 0);
      const v = JSON.parse(buf.subarray(0, n).toString("utf8")) as { pid?: unknown; host?: unknown; since?: unknown };
      if (!Number.isInteger(v.pid) || typeof v.host !== "string") return undefined;
      return { pid: v.pid as number, host: v.host, since: String(v.since) };
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}
