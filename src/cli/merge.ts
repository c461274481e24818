/**
 * `merge`: the outputs of `score --shard I/N` (one per shard) → the one file a single run would
 * have written, byte for byte. Each input is streamed (memory stays flat), its lines must be in
 * increasing index order, and every index from 0 up must appear exactly once across them.
 *
 * When the shards have sidecars (`<file>.job.json`, written by `score --output`), they must all
 * be of one job (same model, options and input), cover shards 0..N−1 once each, and say the shard
 * finished; the merged file then gets the sidecar of the unsharded job, so `score --resume` and
 * another `merge` treat it like a single run's output.
 */
import { closeSync, existsSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Gpt2RewardError } from "../errors.js";
import { defineCommand, UsageError } from "./args.js";
import { describeMismatch, type JobIdentity } from "./identity.js";
import { describeErrno, openInput } from "./lines.js";
import { sidecarPath } from "./output.js";

export const merge = defineCommand({
  name: "merge",
  summary: "Merge the outputs of score --shard I/N into the file one unsharded run would write.",
  usage: "[--output FILE] SHARD_OUTPUT...",
  options: {
    output: { type: "string", short: "o", value: "FILE", default: "standard output", help: 'the merged JSON lines ("-" for standard output); an existing FILE is refused' },
  },
  details: `Every index from 0 up must appear exactly once across the inputs, each input in increasing
index order ("-" reads one of them from standard input). With sidecars (FILE.job.json, written by
score --output), the inputs must be the N finished shards of one job; the merged FILE gets the
sidecar of the unsharded job.`,
  examples: ["gpt2-reward merge -o scores.jsonl scores-0-of-4.jsonl scores-1-of-4.jsonl scores-2-of-4.jsonl scores-3-of-4.jsonl"],
  async run(values, files) {
    if (files.length === 0) throw new UsageError("merge needs the shard outputs to merge");
    const identity = checkSidecars(files);
    const toFile = values.output !== undefined && values.output !== "-";
    if (toFile && existsSync(values.output!)) throw new Gpt2RewardError(`${values.output}: already exists; merge never overwrites (remove it first)`);
    const write = toFile ? tempFile(values.output!) : stdoutWriter();
    try {
      const lines = await mergeByIndex(files, write.write);
      if (identity && identity.done !== undefined && lines !== identity.done.input_lines) {
        throw new Gpt2RewardError(`the shards hold ${lines} lines, but their input has ${identity.done.input_lines}`);
      }
      await write.finish();
      if (toFile && identity) writeJson(sidecarPath(values.output!), { ...identity.identity, shard: null, done: identity.done });
      process.stderr.write(`merged ${lines} lines from ${files.length} file(s)${toFile ? ` into ${values.output}` : ""}\n`);
      return 0;
    } finally {
      write.abandon();
    }
  },
});

type Record_ = { index: number; bytes: Buffer };

/** A shard output as messages name it ("-" is standard input). */
const shown = (file: string) => (file === "-" ? "standard input" : file);

/** Reads one file's lines as {index, bytes}; bytes are the line as written, "\n" included. */
async function* records(file: string): AsyncGenerator<Record_> {
  let carry: Buffer = Buffer.alloc(0);
  let lineNo = 0;
  const parse = (bytes: Buffer): Record_ => {
    lineNo++;
    let index: unknown;
    try {
      index = (JSON.parse(bytes.toString("utf8")) as { index?: unknown }).index;
    } catch {
      index = undefined;
    }
    if (!Number.isSafeInteger(index) || (index as number) < 0) throw new Gpt2RewardError(`${shown(file)}: line ${lineNo} is not an output line of score (no "index")`);
    return { index: index as number, bytes };
  };
  for await (const chunk of (file === "-" ? process.stdin : openInput(file)) as AsyncIterable<Buffer>) {
    let data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
      yield parse(data.subarray(start, nl + 1));
      start = nl + 1;
    }
    data = data.subarray(start);
    if (data.length > 64 << 20) throw new Gpt2RewardError(`${shown(file)}: line ${lineNo + 1} is longer than any output line of score`);
    carry = Buffer.from(data);
  }
  if (carry.length > 0) throw new Gpt2RewardError(`${shown(file)}: the last line is cut short (no newline): the job did not finish writing it; run it again with --resume`);
}

/** A k-way merge by index: expects 0, 1, 2, ... and names the file at fault otherwise. */
async function mergeByIndex(files: string[], write: (b: Buffer) => void | Promise<void>): Promise<number> {
  const its = files.map((f) => records(f));
  const heads: (Record_ | undefined)[] = await Promise.all(its.map(async (it) => (await it.next()).value ?? undefined));
  const advance = async (k: number) => {
    const prev = heads[k]!.index;
    heads[k] = (await its[k].next()).value ?? undefined;
    if (heads[k] && heads[k]!.index <= prev) throw new Gpt2RewardError(`${shown(files[k])}: index ${heads[k]!.index} comes after ${prev}; a score output is in increasing index order`);
  };
  let next = 0;
  for (;;) {
    let at = -1;
    for (let k = 0; k < heads.length; k++) {
      const h = heads[k];
      if (!h || h.index !== next) continue;
      if (at >= 0) throw new Gpt2RewardError(`index ${next} appears twice: in ${shown(files[at])} and in ${shown(files[k])}`);
      at = k;
    }
    if (at < 0) {
      let k = -1;
      heads.forEach((h, i) => (k = h && (k < 0 || h.index < heads[k]!.index) ? i : k));
      if (k < 0) return next;
      throw new Gpt2RewardError(`index ${next} is in none of the files (the next one, ${heads[k]!.index}, is in ${shown(files[k])}): a shard is missing or unfinished`);
    }
    await write(heads[at]!.bytes);
    next++;
    await advance(at);
  }
}

/** The shards' common identity, or null when none has a sidecar. */
function checkSidecars(files: string[]): { identity: JobIdentity; done?: { input_lines: number } } | null {
  const sides = files.map((f) => {
    const p = sidecarPath(f);
    if (f === "-" || !existsSync(p)) return undefined; // standard input has no sidecar
    try {
      return JSON.parse(readFileSync(p, "utf8")) as JobIdentity & { done?: { input_lines: number } };
    } catch {
      throw new Gpt2RewardError(`${p}: not valid JSON`);
    }
  });
  if (sides.every((s) => s === undefined)) return null;
  const missing = sides.findIndex((s) => s === undefined);
  if (missing >= 0) throw new Gpt2RewardError(`${shown(files[missing])}: has no sidecar${files[missing] === "-" ? "" : ` ${basename(sidecarPath(files[missing]))}`} while the others do; cannot tell it is of the same job`);
  const first = sides[0]!;
  const count = first.shard?.count ?? 1;
  const seen = new Map<number, string>();
  sides.forEach((s, k) => {
    const difference = describeMismatch(s, { ...first, shard: s!.shard });
    if (difference) throw new Gpt2RewardError(`${shown(files[k])}: not of the same job as ${shown(files[0])}: ${difference}`);
    const shard = s!.shard ?? { index: 0, count: 1 };
    if (shard.count !== count) throw new Gpt2RewardError(`${shown(files[k])}: is shard ${shard.index}/${shard.count}, ${shown(files[0])} is of ${count} shards`);
    if (seen.has(shard.index)) throw new Gpt2RewardError(`${shown(files[k])} and ${seen.get(shard.index)} are both shard ${shard.index}/${count}`);
    seen.set(shard.index, shown(files[k]));
    if (!s!.done) throw new Gpt2RewardError(`${shown(files[k])}: shard ${shard.index}/${count} has not finished (its sidecar has no "done"); run it again with --resume`);
  });
  for (let i = 0; i < count; i++) if (!seen.has(i)) throw new Gpt2RewardError(`shard ${i}/${count} is missing: give all ${count} shard outputs`);
  const totals = new Set(sides.map((s) => s!.done!.input_lines));
  if (totals.size > 1) throw new Gpt2RewardError(`the shards saw inputs of different lengths (${[...totals].join(", ")} lines)`);
  return { identity: first, done: first.done };
}

/** A temporary file beside `out`, created exclusively, renamed onto `out` when complete. */
function tempFile(out: string) {
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.merge.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx");
  } catch (e) {
    throw new Gpt2RewardError(`${out}: ${describeErrno(e, "cannot write")}`);
  }
  let done = false;
  return {
    write: (b: Buffer) => {
      try {
        for (let off = 0; off < b.length; ) off += writeSync(fd, b, off);
      } catch (e) {
        throw new Gpt2RewardError(`${out}: ${describeErrno(e, "cannot write")}`);
      }
    },
    finish: async () => {
      closeSync(fd);
      // Linked, not renamed: link(2) fails if `out` was created meanwhile, which is never replaced.
      try {
        linkSync(tmp, out);
      } catch (e) {
        throw new Gpt2RewardError(`${out}: ${(e as NodeJS.ErrnoException).code === "EEXIST" ? "appeared while merging; merge never overwrites" : describeErrno(e, "cannot write")}`);
      }
      rmSync(tmp, { force: true });
      done = true;
    },
    abandon: () => {
      if (done) return;
      try {
        closeSync(fd);
      } catch {
        // closed already
      }
      rmSync(tmp, { force: true });
    },
  };
}

function stdoutWriter() {
  return {
    // Waits while the pipe is full, so memory stays flat however slow the reader is.
    write: (b: Buffer) => (process.stdout.write(b) ? undefined : new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()))),
    finish: async () => {},
    abandon: () => {},
  };
}

function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, "wx");
    writeSync(fd, JSON.stringify(value, null, 2) + "\n");
    closeSync(fd);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Gpt2RewardError(`${file}: ${describeErrno(e, "cannot write")}`);
  }
}
