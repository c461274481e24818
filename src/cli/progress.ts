/**
 * What a scoring job says on stderr while it runs and when it ends (stdout carries only results).
 *
 * - progress: on a terminal, one line rewritten in place (count, total, rate, ETA); elsewhere,
 *   with `--progress`, a plain line every few seconds, for logs. The total is known only for an
 *   input file: it is estimated from the bytes read so far against the file's size.
 * - summary: always one line at the end (unless `--quiet`): scored, failed with the first
 *   failure's line and reason, truncated, time. A job whose exit status is 1 says why.
 *
 * The job calls `onProgress(done)`; every output record goes through `record()`.
 */
import { statSync } from "node:fs";
import { UsageError, type Option } from "./args.js";
import type { OutputRecord } from "./job.js";

/** The options of a command that reads a job's input (score, rank). */
export const PROGRESS_OPTIONS = {
  progress: { type: "boolean", help: "progress lines on stderr even when it is not a terminal (on a terminal they are always shown)" },
  "progress-every": { type: "string", value: "S", default: "5", help: "seconds between --progress lines" },
  quiet: { type: "boolean", short: "q", help: "no progress and no summary on stderr (errors still)" },
} as const satisfies Record<string, Option>;

/** The report those options ask for, over `input` (an --input file gives the total and the ETA). */
export function jobReport(values: { progress?: boolean; "progress-every"?: string; quiet?: boolean }, input: string | undefined): JobReport {
  const every = values["progress-every"] === undefined ? 5 : Number(values["progress-every"]);
  if (!(every > 0)) throw new UsageError(`--progress-every must be a positive number of seconds, got "${values["progress-every"]}"`);
  return new JobReport({
    progress: process.stderr.isTTY ? "tty" : values.progress ? "lines" : "none",
    quiet: values.quiet ?? false,
    totalBytes: inputSize(input),
    intervalMs: process.stderr.isTTY ? undefined : every * 1000,
  });
}

/** The size of an --input that is a regular file (for the progress total), else undefined. */
function inputSize(input: string | undefined): number | undefined {
  if (input === undefined || input === "-") return undefined;
  try {
    const st = statSync(input);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

export interface ReportOptions {
  /** "tty": rewrite one line; "lines": a plain line every `intervalMs`; "none". */
  progress: "tty" | "lines" | "none";
  /** No progress, no summary. */
  quiet: boolean;
  /** Size of the input file, when it is one. */
  totalBytes?: number;
  intervalMs?: number;
  /** Where the lines go (default stderr). */
  write?: (s: string) => void;
  /** What was done to a line that did not fail, for the summary (default "scored"). */
  verb?: string;
}

export class JobReport {
  private t0 = Date.now();
  private scored = 0;
  private failed = 0;
  private truncated = 0;
  private firstFailure: string | undefined;
  private lastShown = 0;
  private shownTty = false;
  /** Bytes of input read so far (input.ts counts them), for the total and the ETA. */
  bytesRead = 0;
  /** Lines a resumed job found already written (and did not score again), for the summary. */
  kept = 0;
  private readonly write: (s: string) => void;
  private readonly interval: number;

  constructor(private readonly opts: ReportOptions) {
    this.write = opts.write ?? ((s) => process.stderr.write(s));
    this.interval = opts.intervalMs ?? (opts.progress === "tty" ? 200 : 5000);
  }

  /** The clock starts here (after the model loaded), so rates are the job's own. */
  start(): void {
    this.t0 = Date.now();
  }

  /** Counts one output record. */
  record(r: OutputRecord): void {
    if ("error" in r) {
      this.failed++;
      this.firstFailure ??= `${r.line !== undefined ? `line ${r.line}` : `index ${r.index}`}: ${r.error}`;
    } else {
      this.scored++;
      if (r.truncated) this.truncated++;
    }
  }

  /** Called by the job as lines complete; shows progress at most every interval. */
  onProgress = (done: number): void => {
    if (this.opts.quiet || this.opts.progress === "none") return;
    const now = Date.now();
    if (now - this.lastShown < this.interval) return;
    this.lastShown = now;
    const line = this.progressLine(done, now);
    if (this.opts.progress === "tty") {
      this.write(`\r${line}\x1b[K`);
      this.shownTty = true;
    } else this.write(`gpt2-reward: ${line}\n`);
  };

  progressLine(done: number, now = Date.now()): string {
    const seconds = Math.max(1e-3, (now - this.t0) / 1000);
    const rate = done / seconds;
    let total = "";
    let eta = "";
    const size = this.opts.totalBytes;
    if (size !== undefined && size > 0 && this.bytesRead > 0) {
      const fraction = Math.min(1, this.bytesRead / size);
      total = ` / ~${Math.round(done / fraction).toLocaleString("en-US")} (${(100 * fraction).toFixed(0)}%)`;
      if (fraction > 0 && fraction < 1) eta = `, ETA ${duration((seconds * (1 - fraction)) / fraction)}`;
    }
    return `${done.toLocaleString("en-US")}${total} lines, ${rate.toFixed(1)} lines/s${eta}`;
  }

  summaryLine(interrupted = false): string {
    const seconds = (Date.now() - this.t0) / 1000;
    const n = this.scored + this.failed;
    return (
      `${interrupted ? "interrupted after" : "done:"} ${n.toLocaleString("en-US")} line(s): ${this.scored.toLocaleString("en-US")} ${this.opts.verb ?? "scored"}, ` +
      `${this.failed.toLocaleString("en-US")} failed${this.firstFailure ? ` (first at ${this.firstFailure})` : ""}, ` +
      `${this.truncated.toLocaleString("en-US")} truncated${n > 0 && this.truncated > 0 ? ` (${((100 * this.truncated) / n).toFixed(1)}%: their beginnings were dropped; see --max-length)` : ""}, ` +
      `in ${duration(seconds)}${seconds > 0 && n > 0 ? ` (${(n / seconds).toFixed(1)} lines/s)` : ""}` +
      (this.kept > 0 ? `; ${this.kept.toLocaleString("en-US")} line(s) were already in the output (--resume)` : "")
    );
  }

  /** The summary line, unless quiet; clears a terminal progress line first. */
  finish(interrupted = false): void {
    if (this.shownTty) this.write("\r\x1b[K");
    if (!this.opts.quiet) this.write(`gpt2-reward: ${this.summaryLine(interrupted)}\n`);
  }
}

function duration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
