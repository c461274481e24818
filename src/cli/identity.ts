/**
 * What produced a job's output, written beside it as `<output>.job.json` and compared by
 * `--resume`, so that lines from another model, other options or another input are never mixed
 * into one file.
 *
 *   model    where it came from (a Hub repo at its commit, or the real path of the local folder
 *            or file), the sha256 of its config.json, and the name, size and sha256 of each
 *            weights file (a checkpoint saved again in place, as a trainer does each epoch, has
 *            the same path and size; hashing costs ~1.5 s per GB once per job on a loaded 2-core machine)
 *   options  every option that changes an output line (--max-length, --pooling, --dtype,
 *            --kernels, --activation, the input format options), under its flag's name; not
 *            --threads or --batch-size, which never do
 *   input    a regular file: its size and the sha256 of its first MiB (content, not path or
 *            mtime: a copied or touched input still resumes, a grown or edited one does not);
 *            a pipe: the sha256 of its first MiB (or all of it, if shorter); TEXT arguments: their sha256
 *   shard    {index, count} of `--shard I/N`, or null
 */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, readSync, realpathSync, statSync } from "node:fs";
import { basename, sep } from "node:path";
import type { Readable } from "node:stream";

export interface JobIdentity {
  job: "gpt2-reward score";
  model: { source: string; config_sha256: string; weights: { file: string; bytes: number; sha256: string }[] };
  options: Record<string, string | number | boolean | null>;
  input: InputIdentity;
  shard: { index: number; count: number } | null;
}

export type InputIdentity =
  | { kind: "file"; path: string; bytes: number; first_mib_sha256: string; first_bytes: number }
  | { kind: "stream"; first_mib_sha256: string | null; first_bytes: number | null }
  | { kind: "arguments"; count: number; sha256: string };

const MIB = 1 << 20;
const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/**
 * The model as loaded from `files` (config.json first, then the weights). A file in a Hugging
 * Face cache snapshot (…/models--owner--name/snapshots/<commit>/…) is named owner/name@commit.
 */
export function modelIdentity(files: string[]): JobIdentity["model"] {
  const [config, ...weights] = files;
  const hub = new RegExp(`models--([^${sep}]+)--([^${sep}]+)\\${sep}snapshots\\${sep}([0-9a-f]{40})\\${sep}`).exec(config);
  const source = hub ? `${hub[1]}/${hub[2]}@${hub[3]}` : realpathSync(config).replace(/[\\/]config\.json$/, "");
  return {
    source,
    config_sha256: sha256(readFileSync(config)),
    weights: weights.map((f) => ({ file: basename(f), bytes: statSync(f).size, sha256: fileSha256(f) })),
  };
}

/** The sha256 of a whole file, read 4 MiB at a time. */
function fileSha256(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const chunk = Buffer.alloc(4 * MIB);
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
    return hash.digest("hex");
  } finally {
    closeSync(fd);
  }
}

/** A regular file, read by offset: the position of a shared descriptor (stdin) is left alone. */
export function fileIdentity(path: string, fd?: number): InputIdentity {
  const own = fd === undefined;
  const f = own ? openSync(path, "r") : fd;
  try {
    const bytes = fstatSync(f).size;
    const head = Buffer.alloc(Math.min(MIB, bytes));
    let got = 0;
    while (got < head.length) {
      const n = readSync(f, head, got, head.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return { kind: "file", path: path === "-" ? "-" : realpathSync(path), bytes, first_mib_sha256: sha256(head.subarray(0, got)), first_bytes: got };
  } finally {
    if (own) closeSync(f);
  }
}

export function argumentsIdentity(texts: string[]): InputIdentity {
  return { kind: "arguments", count: texts.length, sha256: sha256(JSON.stringify(texts)) };
}

/**
 * A pipe's identity: the sha256 of its first MiB (or of all of it, if shorter). A fresh job learns
 * it as the bytes pass by (`onKnown`, which completes the sidecar) and never waits for it, so
 * lines typed or trickled in are answered at once; a resumed job reads that much ahead (`ahead`)
 * to compare it before it writes anything.
 */
export class StreamIdentity {
  private readonly hash = createHash("sha256");
  private seen = 0;
  private known: InputIdentity | undefined;
  private readonly readAhead: Buffer[] = [];
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;
  /** Called once, when the first MiB (or the end) has passed. */
  onKnown?: (identity: InputIdentity) => void;

  constructor(private readonly stream: Readable) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** Reads ahead until the identity is known; the bytes are still handed on by `chunks`. */
  async ahead(): Promise<InputIdentity> {
    while (!this.known) {
      const r = await this.it.next();
      if (r.done) this.end();
      else {
        this.readAhead.push(r.value);
        this.observe(r.value);
      }
    }
    return this.known;
  }

  /** The stream's bytes, each once, in order: what was read ahead, then the rest. */
  chunks(): AsyncIterable<Buffer> & { destroy(): void } {
    const self = this;
    const gen = (async function* () {
      while (self.readAhead.length > 0) yield self.readAhead.shift()!;
      if (self.ended) return;
      for (let r = await self.it.next(); !r.done; r = await self.it.next()) {
        self.observe(r.value);
        yield r.value;
      }
      self.end();
    })();
    return Object.assign(gen, { destroy: () => void this.stream.destroy() });
  }

  private observe(chunk: Buffer): void {
    if (this.known) return;
    const take = Math.min(MIB - this.seen, chunk.length);
    this.hash.update(chunk.subarray(0, take));
    this.seen += take;
    if (this.seen === MIB) this.finish();
  }

  private end(): void {
    this.ended = true;
    if (!this.known) this.finish();
  }

  private finish(): void {
    this.known = { kind: "stream", first_mib_sha256: this.hash.digest("hex"), first_bytes: this.seen };
    this.onKnown?.(this.known);
  }
}

/** A stream's identity in a sidecar before its first MiB has passed. */
export const UNKNOWN_STREAM: InputIdentity = { kind: "stream", first_mib_sha256: null, first_bytes: null };

/** The first difference between a recorded identity and this job's, in words; null if none. */
export function describeMismatch(recorded: unknown, current: JobIdentity): string | null {
  const r = recorded as Partial<JobIdentity> | null;
  if (typeof r !== "object" || r === null || r.job !== current.job) return "the sidecar is not a gpt2-reward score job record";
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const m = r.model;
  if (!m || m.source !== current.model.source) return `it was written with the model ${m?.source ?? "(unknown)"}, not ${current.model.source}`;
  if (m.config_sha256 !== current.model.config_sha256) return `the model's config.json has changed since it was written (sha256 ${short(m.config_sha256)}, now ${short(current.model.config_sha256)})`;
  if (!same(m.weights, current.model.weights)) return `the model's weights files have changed since it was written (${weightsText(m.weights)}, now ${weightsText(current.model.weights)})`;
  const keys = new Set([...Object.keys(r.options ?? {}), ...Object.keys(current.options)]);
  for (const k of keys) {
    const was = r.options?.[k];
    const now = current.options[k];
    if (same(was, now)) continue;
    const written = was === undefined ? `with ${k} not recorded` : was === null ? `without ${k}` : `with ${k} ${JSON.stringify(was)}`;
    return `it was written ${written}, this job has ${now === undefined || now === null ? `no ${k}` : JSON.stringify(now)}`;
  }
  if (!sameInput(r.input, current.input)) return `the input differs: it was written for ${inputText(r.input)}, this job reads ${inputText(current.input)}`;
  if (!same(r.shard ?? null, current.shard)) return `it was written for ${shardText(r.shard ?? null)}, this job is ${shardText(current.shard)}`;
  return null;
}

/**
 * Inputs are compared by content, never by path or mtime (a moved or copied input is the same
 * input): the first MiB always, the size too when both are files. So a job on a file may be
 * resumed from the same bytes through a pipe (`zcat in.jsonl.gz |`), and the other way round.
 */
function sameInput(a: InputIdentity | undefined, b: InputIdentity): boolean {
  if (!a || typeof a !== "object") return false;
  if (a.kind === "arguments" || b.kind === "arguments") return a.kind === b.kind && JSON.stringify(a) === JSON.stringify(b);
  if (a.first_mib_sha256 === null || a.first_mib_sha256 !== b.first_mib_sha256 || a.first_bytes !== b.first_bytes) return false;
  return a.kind !== "file" || b.kind !== "file" || a.bytes === b.bytes;
}

const short = (h: unknown) => (typeof h === "string" ? `${h.slice(0, 12)}…` : "unknown");
const weightsText = (w: unknown) =>
  Array.isArray(w) ? w.map((x: { file?: unknown; bytes?: unknown; sha256?: unknown }) => `${x?.file}: ${x?.bytes} bytes, sha256 ${short(x?.sha256)}`).join("; ") : "unknown";
const shardText = (s: JobIdentity["shard"]) => (s ? `shard ${s.index}/${s.count}` : "a whole (unsharded) job");

function inputText(i: InputIdentity | undefined): string {
  if (!i) return "an unknown input";
  switch (i.kind) {
    case "file":
      return `a file of ${i.bytes} bytes whose first MiB has sha256 ${short(i.first_mib_sha256)}`;
    case "stream":
      if (i.first_bytes === null) return "a stream not yet identified (the job stopped before its first MiB of input)";
      return `a stream whose first ${i.first_bytes} bytes have sha256 ${short(i.first_mib_sha256)}`;
    case "arguments":
      return `${i.count} TEXT argument(s) with sha256 ${short(i.sha256)}`;
    default:
      return "an unknown input";
  }
}
