/**
 * Where a scoring job's JSON lines go. A file is written one whole line per write(2) call, so a
 * job killed at any moment (even with SIGKILL) leaves a file of complete lines, and `--resume`
 * can continue it from the first index it does not hold.
 */
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { Gpt2RewardError } from "../errors.js";

export interface Sink {
  write(line: string): void | Promise<void>;
  close(): void;
}

/** stdout, waiting when the pipe is full so memory stays flat however slow the reader is. */
export function stdoutSink(): Sink {
  return {
    write: (line) => {
      if (!process.stdout.write(line + "\n")) return new Promise<void>((r) => process.stdout.once("drain", r));
    },
    close: () => {},
  };
}

/**
 * Opens `file` for a job. Without `resume` the file must not hold earlier results (we never
 * overwrite finished work); with `resume`, its complete lines are checked to be indices 0..k−1
 * in order, a trailing partial line (from a crash mid-write on another system) is cut off, and
 * k is returned as the index to start from.
 */
export function fileSink(file: string, resume: boolean): { sink: Sink; startIndex: number } {
  let startIndex = 0;
  let fd: number;
  try {
    if (existsSync(file) && resume) {
      const text = readFileSync(file, "utf8");
      const complete = text.lastIndexOf("\n") + 1;
      const lines = text.slice(0, complete).split("\n").slice(0, -1);
      lines.forEach((line, i) => {
        let index: unknown;
        try {
          index = (JSON.parse(line) as { index?: unknown }).index;
        } catch {
          index = undefined;
        }
        if (index !== i) throw new Gpt2RewardError(`${file}: line ${i + 1} is not the output line of input ${i}; is this the output of another job?`);
      });
      startIndex = lines.length;
      fd = openSync(file, "r+");
      ftruncateSync(fd, Buffer.byteLength(text.slice(0, complete)));
      fd = reopenAppend(fd, file);
    } else {
      if (existsSync(file) && readFileSync(file).length > 0) {
        throw new Gpt2RewardError(`${file}: already holds results; use --resume to continue that job, or remove the file`);
      }
      fd = openSync(file, "a");
    }
  } catch (e) {
    if (e instanceof Gpt2RewardError) throw e;
    throw new Gpt2RewardError(`${file}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return {
    startIndex,
    sink: {
      write: (line) => {
        const bytes = Buffer.from(line + "\n", "utf8");
        const n = writeSync(fd, bytes);
        if (n !== bytes.length) throw new Gpt2RewardError(`${file}: short write (disk full?)`);
      },
      close: () => closeSync(fd),
    },
  };
}

function reopenAppend(fd: number, file: string): number {
  closeSync(fd);
  return openSync(file, "a");
}
