/**
 * Models on the Hugging Face Hub: `owner/name[@revision]` -> a snapshot folder in the standard
 * hub cache (layout in hub-cache.ts), holding config.json and the weights, which the loader then
 * reads like any local folder. Files Python's huggingface_hub already downloaded are reused, and
 * ours are reused by Python.
 *
 * Requests (all to `<endpoint>/<owner>/<name>/resolve/<revision>/<file>`, the endpoint Python uses):
 * - revision is a commit hash and the snapshot has the files: none at all.
 * - revision is a branch or tag (`main`): one HEAD of config.json, whose X-Repo-Commit says which
 *   commit the branch points at now. Every other file is then asked for at that commit, so a
 *   snapshot never mixes two commits, and files already in that snapshot cost no request. (Python
 *   sends one HEAD per file instead; the result on disk is the same.)
 * - a file not in the snapshot: a HEAD (ETag / X-Linked-Etag name the blob, X-Linked-Size or
 *   Content-Length give its size, an absolute redirect is the CDN copy of an LFS file), then a
 *   GET only if no blob of that name is cached yet.
 * - a weights file the Hub says is absent (404 EntryNotFound) is remembered in .no_exist/, as
 *   Python does, so the preference order below is walked without requests next time.
 * No network (a failed fetch, a timeout, a 5xx) or offline mode (HF_HUB_OFFLINE=1): the cache
 * alone answers, through refs/<revision>, and an error names the file it looked for.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, constants as fsc } from "node:fs";
import { lstat, mkdir, open, readFile, realpath, rename, rm, stat, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { parseSafetensorsMetadata, SafetensorParseError } from "@huggingface/hub";
import { FormatError, Gpt2RewardError, Interrupted } from "../errors.js";
import { platform } from "../platform/platform.js";
import { MAX_JSON_BYTES, parseIndex, WEIGHT_FILES } from "../formats/checkpoint.js";
import { readSafetensorsHeader } from "../formats/safetensors.js";
import {
  blobPath, COMMIT_HASH, hubCacheRoot, incompletePath, isFile, isKnownMissing, linkSnapshotFile,
  markMissing, readRef, refPath, repoCacheDir, snapshotDir, snapshotPath, writeRef,
} from "./cache.js";

export interface HubOptions {
  /** Cache root. Default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Use the cache only. Default: $HF_HUB_OFFLINE (or $TRANSFORMERS_OFFLINE) is 1/true/yes/on. */
  offline?: boolean;
  /**
   * Sent as `Authorization: Bearer`. Default, as huggingface_hub finds it: $HF_TOKEN, else
   * $HUGGING_FACE_HUB_TOKEN, else the file `hf auth login` writes ($HF_TOKEN_PATH, else
   * $HF_HOME/token, else ~/.cache/huggingface/token); none if $HF_HUB_DISABLE_IMPLICIT_TOKEN is set.
   */
  token?: string;
  /** Default: $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  fetch?: typeof fetch;
  /** Called as bytes of a download arrive (not for files reused from the cache). */
  progress?: (file: string, done: number, total?: number) => void;
  /** Stops a download (Ctrl-C): the part already received is kept, and the next run resumes it. */
  signal?: AbortSignal;
  /** Limits on a slow or stalled server; see DownloadLimits. */
  limits?: Partial<DownloadLimits>;
}

/**
 * How long a download may stall. A server that stops sending is dropped after `idleMs` without a
 * byte (Python's HF_HUB_DOWNLOAD_TIMEOUT, 10 s by default); one that trickles (a byte every few
 * seconds keeps any idle timer happy) is dropped when a window of `windowMs` brings fewer than
 * `minBytesPerWindow` bytes (or fewer than the rest of the file). Both also bound the wait for
 * the answer's headers.
 */
export interface DownloadLimits {
  idleMs: number;
  windowMs: number;
  minBytesPerWindow: number;
}

const DEFAULT_LIMITS: DownloadLimits = { idleMs: 10_000, windowMs: 30_000, minBytesPerWindow: 32 * 1024 };

export interface HubModel {
  /** The snapshot folder: config.json and the weights, as a local model folder. */
  dir: string;
  repo: string;
  revision: string;
  commit?: string;
  /** Paths inside `dir`: config.json, then the weights (an index comes before its shards). */
  files: string[];
}

export interface HubTensorInfo {
  dtype: string;
  shape: number[];
}

export interface HubInspection {
  repo: string;
  revision: string;
  /** The safetensors files the header came from: model.safetensors, or the index and its shards. */
  files: string[];
  tensors: Record<string, HubTensorInfo>;
  parameterCount: number;
}

const DEFAULT_ENDPOINT = "https://huggingface.co";
/** Python's default HEAD timeout (HF_HUB_ETAG_TIMEOUT): a dead network falls back to the cache quickly. */
const DEFAULT_HEAD_TIMEOUT_S = 10;
const MAX_RELATIVE_REDIRECTS = 10;
/** A token is some 40 characters; the file `hf auth login` writes is read only if it is small (not a FIFO, not /dev/zero). */
const MAX_TOKEN_FILE_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------- repo ids

/** owner and name: word characters, '.', '-'; starting and ending with a word character (the Hub's rule). */
const REPO_PART = /^\w(?:[\w.-]{0,94}\w)?$/;

function parseSpec(spec: string): { repo: string; revision: string } | undefined {
  const at = spec.indexOf("@");
  const id = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? "main" : spec.slice(at + 1);
  const parts = id.split("/");
  if (parts.length !== 2) return undefined;
  // "--" would be ambiguous in the cache folder name models--owner--name.
  if (parts.some((p) => !REPO_PART.test(p) || p.includes("--") || p.includes(".."))) return undefined;
  if (!isSafeRelativePath(revision)) return undefined; // refs/pr/1 is a revision, and a path under refs/
  return { repo: id, revision };
}

/** `owner/name` or `owner/name@revision`, and not a path that exists here (a local folder wins). */
export function isHubRepoId(s: string): boolean {
  return parseSpec(s) !== undefined && !existsSync(s);
}

/** A relative path that stays inside its folder: no '..', no root, no drive, no backslash. */
function isSafeRelativePath(p: string): boolean {
  if (p === "" || p.startsWith("/") || /[\\:\s\u0000-\u001f]/.test(p)) return false;
  return p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

// ---------------------------------------------------------------------------- settings

interface Hub {
  repo: string;
  revision: string;
  endpoint: string;
  token?: string;
  /** Where the token came from, for error messages ("HF_TOKEN", a file...). */
  tokenFrom: string;
  offline: boolean;
  /** Said first when the cache alone has to answer and cannot. */
  offlineReason: string;
  fetch: typeof fetch;
  progress?: HubOptions["progress"];
  signal?: AbortSignal;
  limits: DownloadLimits;
  /** The cache root, resolved; nothing is ever written outside it. */
  cacheRoot: string;
  repoDir: string;
  headTimeoutMs: number;
}

function envFlag(name: string): boolean {
  return ["1", "ON", "YES", "TRUE"].includes((process.env[name] ?? "").trim().toUpperCase());
}

/** The token and where it came from, in huggingface_hub's order (see HubOptions.token). */
function findToken(explicit: string | undefined): { token?: string; tokenFrom: string } {
  const env = process.env;
  const clean = (t: string | undefined) => t?.trim() || undefined;
  if (explicit !== undefined) return { token: clean(explicit), tokenFrom: "the token given" };
  if (envFlag("HF_HUB_DISABLE_IMPLICIT_TOKEN")) return { tokenFrom: "HF_TOKEN (HF_HUB_DISABLE_IMPLICIT_TOKEN is set)" };
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
    const token = clean(env[name]);
    if (token) return { token, tokenFrom: name };
  }
  const home = env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "huggingface");
  const file = env.HF_TOKEN_PATH || join(home, "token");
  try {
    return { token: clean(platform().files.readText(file, MAX_TOKEN_FILE_BYTES)), tokenFrom: `the token in ${file}` };
  } catch {
    return { tokenFrom: "HF_TOKEN" }; // no file (or unreadable): no token, as huggingface_hub does
  }
}

function openHub(spec: string, opts: HubOptions): Hub {
  const parsed = parseSpec(spec);
  if (!parsed) {
    throw new Gpt2RewardError(`"${spec}" is not a Hugging Face repo id: expected owner/name or owner/name@revision`);
  }
  const env = process.env;
  const endpoint = (opts.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]/.test(endpoint)) {
    throw new Gpt2RewardError(`Hub endpoint "${endpoint}" (HF_ENDPOINT) is not an http(s) URL`);
  }
  const { token, tokenFrom } = findToken(opts.token);
  const envOffline = envFlag("HF_HUB_OFFLINE") || envFlag("TRANSFORMERS_OFFLINE");
  const timeout = Number(env.HF_HUB_ETAG_TIMEOUT);
  const downloadTimeout = Number(env.HF_HUB_DOWNLOAD_TIMEOUT);
  const cacheRoot = resolve(hubCacheRoot(opts.cacheDir));
  return {
    ...parsed,
    endpoint,
    token,
    tokenFrom,
    offline: opts.offline ?? envOffline,
    offlineReason: opts.offline === undefined ? "HF_HUB_OFFLINE is set" : "offline mode is on",
    fetch: opts.fetch ?? fetch,
    progress: opts.progress,
    signal: opts.signal,
    limits: { ...DEFAULT_LIMITS, ...(downloadTimeout > 0 ? { idleMs: 1000 * downloadTimeout } : {}), ...opts.limits },
    cacheRoot,
    repoDir: repoCacheDir(cacheRoot, parsed.repo),
    headTimeoutMs: 1000 * (timeout > 0 ? timeout : DEFAULT_HEAD_TIMEOUT_S),
  };
}

// ---------------------------------------------------------------------------- HTTP

/** The Hub could not be asked (no network, timeout, 5xx): the cache may still answer. */
class HubUnreachable extends Gpt2RewardError {
  override name = "HubUnreachable";
}

function describeFailure(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "timed out";
  const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
  const text = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
  return text.replace(/\s+/g, " ");
}

async function send(hub: Hub, url: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await hub.fetch(url, init);
  } catch (err) {
    if (hub.signal?.aborted) throw new Interrupted(`interrupted while asking ${hub.endpoint}`);
    throw new HubUnreachable(`cannot reach ${hub.endpoint} (${describeFailure(err)})`);
  }
  if (res.status >= 500) {
    await res.body?.cancel();
    throw new HubUnreachable(`${hub.endpoint} answered HTTP ${res.status}`);
  }
  return res;
}

/**
 * The headers of a request to `url`. The token goes to the endpoint's exact origin (scheme, host
 * and port) and nowhere else: not to the CDN an LFS file redirects to, not to a protocol-relative
 * `//other-host/...` redirect, whatever the hop.
 */
function requestHeaders(hub: Hub, url: string, extra: Record<string, string> = {}): Record<string, string> {
  // identity: a compressed body would not match the size the Hub announces.
  const headers: Record<string, string> = { "accept-encoding": "identity", ...extra };
  if (hub.token && new URL(url).origin === new URL(hub.endpoint).origin) headers.authorization = `Bearer ${hub.token}`;
  return headers;
}

/** A 3xx answer's target, resolved against the URL asked (so `//host/x` and `/x` are absolute too). */
function redirectTarget(res: Response, url: string): string | undefined {
  const location = res.headers.get("location");
  return res.status >= 300 && res.status < 400 && location !== null ? new URL(location, url).href : undefined;
}

/** A GET whose redirects are followed by hand, so that each hop decides on the token afresh. */
async function get(hub: Hub, url: string, extra: Record<string, string>, signal: AbortSignal): Promise<Response> {
  for (let hop = 0; hop <= MAX_RELATIVE_REDIRECTS; hop++) {
    const res = await send(hub, url, { redirect: "manual", headers: requestHeaders(hub, url, extra), signal });
    const next = redirectTarget(res, url);
    if (next === undefined) return res;
    await res.body?.cancel();
    url = next;
  }
  throw new Gpt2RewardError(`${hub.repo}: too many redirects on ${hub.endpoint}`);
}

function resolveUrl(hub: Hub, revision: string, file: string): string {
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${hub.endpoint}/${hub.repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

/** A failed answer from the Hub as a one-line error; the Hub explains itself in X-Error-Code. */
function httpError(hub: Hub, status: number, headers: Headers, file: string): Gpt2RewardError {
  const code = headers.get("x-error-code");
  const where = `${hub.repo}@${hub.revision}`;
  if (status === 401 || status === 403) {
    if (headers.get("x-error-message") === "Invalid credentials in Authorization header") {
      return new Gpt2RewardError(`${hub.endpoint} rejected the token (HTTP ${status}): check ${hub.tokenFrom}`);
    }
    const what = code === "GatedRepo" ? "is a gated repo" : "is a private or gated repo, or does not exist";
    const fix = hub.token
      ? `the token sent (${hub.tokenFrom}) has no access to it; request access on its page or use another token`
      : "set HF_TOKEN to a token that can read it";
    return new Gpt2RewardError(`${hub.repo} ${what} (HTTP ${status} for ${file}): ${fix}`);
  }
  if (status === 404 && code === "RevisionNotFound") {
    return new Gpt2RewardError(`${hub.repo}: revision "${hub.revision}" not found on ${hub.endpoint}`);
  }
  if (status === 404 && code === "RepoNotFound") {
    return new Gpt2RewardError(`${hub.repo}: repository not found on ${hub.endpoint}`);
  }
  if (status === 404) return notFound(hub, file);
  if (status === 429) {
    return new Gpt2RewardError(`${hub.endpoint} is rate-limiting requests (HTTP 429 for ${where} ${file}); retry later`);
  }
  return new Gpt2RewardError(`${where}: unexpected HTTP ${status} for ${file} from ${hub.endpoint}`);
}

function notFound(hub: Hub, file: string): Gpt2RewardError {
  return new Gpt2RewardError(`${file} not found in ${hub.repo}@${hub.revision} on ${hub.endpoint}`);
}

/** What a HEAD says about a file: the blob to store it as, its size, and where to GET it. */
interface RemoteFile {
  commit: string;
  etag: string;
  size: number;
  location: string;
}

type HeadAnswer = ({ found: true } & RemoteFile) | { found: false; commit?: string };

/** `W/"abc"` or `"abc"` -> `abc`; it names a file in blobs/, so it must be a plain name. */
function blobName(etag: string | null): string | undefined {
  const name = etag?.replace(/^W\//, "").replace(/^"|"$/g, "");
  return name && /^[\w.-]+$/.test(name) && !/^\.+$/.test(name) ? name : undefined;
}

async function headFile(hub: Hub, revision: string, file: string): Promise<HeadAnswer> {
  let url = resolveUrl(hub, revision, file);
  for (let hop = 0; hop <= MAX_RELATIVE_REDIRECTS; hop++) {
    const timeout = AbortSignal.timeout(hub.headTimeoutMs);
    const res = await send(hub, url, {
      method: "HEAD",
      redirect: "manual",
      headers: requestHeaders(hub, url),
      signal: hub.signal ? AbortSignal.any([timeout, hub.signal]) : timeout,
    });
    const h = res.headers;
    const location = redirectTarget(res, url);
    const redirected = location !== undefined;
    // A redirect within the Hub's origin is the Hub itself (a renamed repo): follow it. One to
    // another origin points at the CDN copy of an LFS file, and this response's X-Linked-*
    // headers describe that file.
    if (location !== undefined && new URL(location).origin === new URL(hub.endpoint).origin) {
      url = location;
      continue;
    }
    const code = h.get("x-error-code");
    if (res.status === 404 && code !== "RepoNotFound" && code !== "RevisionNotFound") {
      return { found: false, commit: h.get("x-repo-commit") ?? undefined };
    }
    if (!res.ok && !redirected) throw httpError(hub, res.status, h, file);
    const commit = h.get("x-repo-commit") ?? "";
    const etag = blobName(h.get("x-linked-etag") ?? h.get("etag"));
    const sizeHeader = h.get("x-linked-size") ?? (redirected ? null : h.get("content-length"));
    const size = sizeHeader === null ? NaN : Number(sizeHeader);
    if (!COMMIT_HASH.test(commit) || etag === undefined || !Number.isSafeInteger(size) || size < 0) {
      const missing = !COMMIT_HASH.test(commit) ? "X-Repo-Commit" : etag === undefined ? "ETag" : "size";
      throw new Gpt2RewardError(
        `${hub.endpoint} does not answer like the Hugging Face Hub (no valid ${missing} for ${hub.repo} ${file}); check HF_ENDPOINT`,
      );
    }
    return { found: true, commit, etag, size, location: redirected ? location : url };
  }
  throw new Gpt2RewardError(`${hub.repo}: too many redirects for ${file} on ${hub.endpoint}`);
}

/**
 * Streams a file into `blobs/<etag>.incomplete` and renames it to the blob only once it has
 * exactly the announced size (and, for an LFS file, whose ETag is its sha256, that digest), so a
 * cut download never sits where a complete one is expected. The `.incomplete` name is the same
 * for every run (as huggingface_hub's), so a download cut by the network, a stall or Ctrl-C is
 * resumed with a Range request next time; a lock file beside it keeps two processes from writing
 * it at once. Bytes that cannot be right (more than announced, a wrong digest) are removed.
 */
async function downloadBlob(hub: Hub, file: string, remote: RemoteFile): Promise<void> {
  const blob = blobPath(hub.repoDir, remote.etag);
  if (await isFile(blob)) return;
  await ensureInsideCache(hub, dirname(blob));
  await mkdir(dirname(blob), { recursive: true });
  const tmp = incompletePath(hub.repoDir, remote.etag);
  const unlock = await lockDownload(hub, `${tmp}.lock`, file);
  let done = 0;
  try {
    if (await isFile(blob)) return; // another process finished it while we waited
    done = await resumableBytes(tmp, remote.size);
    // O_NOFOLLOW: a link planted under the name since resumableBytes looked is refused, not followed.
    const out = await open(tmp, (done > 0 ? fsc.O_RDWR : fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC) | fsc.O_NOFOLLOW, 0o644);
    let digest: string | undefined;
    try {
      ({ done, digest } = await receive(hub, file, remote, out, tmp, done));
    } finally {
      await out.close();
    }
    if (done !== remote.size) throw new Error(`received ${done} of ${remote.size} bytes`);
    if (digest !== undefined && digest !== remote.etag) throw new WrongBytes("sha256 does not match the Hub's ETag");
    await rename(tmp, blob);
  } catch (err) {
    done = await resumableBytes(tmp, remote.size); // what reached the disk
    const why = err instanceof Gpt2RewardError ? err.message : describeFailure(err);
    const cut = `${file} from ${hub.repo}`;
    if (err instanceof WrongBytes || done === 0) {
      await rm(tmp, { force: true });
      throw new Gpt2RewardError(`download of ${cut} failed after ${done} of ${remote.size} bytes (${why}); nothing was kept, run again to retry`);
    }
    if (err instanceof Interrupted) throw new Interrupted(`download of ${cut} interrupted after ${done} of ${remote.size} bytes (${why}); the part is kept in ${tmp} and the next run resumes it`);
    throw new Gpt2RewardError(`download of ${cut} failed after ${done} of ${remote.size} bytes (${why}); the part is kept in ${tmp} and the next run resumes it`);
  } finally {
    await unlock();
  }
}

/** The downloaded bytes are wrong (not just too few): they are removed, never resumed. */
class WrongBytes extends Gpt2RewardError {
  override name = "WrongBytes";
}

/**
 * How many bytes of an earlier `.incomplete` can be kept (none if it is longer than the file).
 * Anything but a regular file under that name (a symlink, which would make us write where it
 * points; a FIFO, whose open would wait forever) was not left by a download: it is removed.
 */
async function resumableBytes(tmp: string, size: number): Promise<number> {
  try {
    const st = await lstat(tmp);
    if (!st.isFile()) {
      await rm(tmp, { force: true, recursive: st.isDirectory() });
      return 0;
    }
    return st.size <= size ? st.size : 0;
  } catch {
    return 0;
  }
}

/**
 * The two rules every body from the Hub is held to (DownloadLimits): no byte for idleMs, or
 * fewer than minBytesPerWindow in a window (a window need not bring more than `left()`, what is
 * left of the body). `fail(why)` is called when one is broken; the caller reports each chunk with
 * `bytes(n)` and calls `stop()` when the body ends. Unref'd: an abandoned body keeps no process alive.
 */
function watchBody(limits: DownloadLimits, left: () => number, fail: (why: string) => void): { bytes(n: number): void; stop(): void } {
  const { idleMs, windowMs, minBytesPerWindow } = limits;
  let windowBytes = 0;
  const trip = (why: string) => {
    stop();
    fail(why);
  };
  const arm = () => setTimeout(() => trip(`no data for ${idleMs / 1000} s`), idleMs).unref();
  let idle = arm();
  const window = setInterval(() => {
    if (windowBytes < Math.min(minBytesPerWindow, left())) trip(`only ${windowBytes} bytes in ${windowMs / 1000} s, slower than the ${minBytesPerWindow} bytes per ${windowMs / 1000} s a download must keep up`);
    windowBytes = 0;
  }, windowMs).unref();
  function stop() {
    clearTimeout(idle);
    clearInterval(window);
  }
  return {
    bytes(n) {
      clearTimeout(idle);
      idle = arm();
      windowBytes += n;
    },
    stop,
  };
}

/**
 * GETs the file from byte `from` on (a Range request when resuming) and writes it to `out`
 * (`tmp`), holding the server to DownloadLimits and to the announced size. Returns the bytes now
 * in `out` and, for an LFS file (whose ETag is its sha256), the digest of all of them.
 */
async function receive(hub: Hub, file: string, remote: RemoteFile, out: FileHandle, tmp: string, from: number): Promise<{ done: number; digest?: string }> {
  const lfs = /^[0-9a-f]{64}$/.test(remote.etag);
  let sha256 = lfs ? createHash("sha256") : undefined;
  if (sha256 && from > 0) for await (const chunk of createReadStream(tmp, { start: 0, end: from - 1 })) sha256.update(chunk as Buffer);
  const stop = new AbortController();
  let why: Gpt2RewardError | undefined;
  const fail = (e: Gpt2RewardError) => {
    why ??= e;
    stop.abort(e);
  };
  let done = from;
  const watch = watchBody(hub.limits, () => remote.size - done, (why) => fail(new Gpt2RewardError(why)));
  const onInterrupt = () => fail(new Interrupted("interrupted"));
  hub.signal?.addEventListener("abort", onInterrupt);
  if (hub.signal?.aborted) onInterrupt();
  try {
    const res = await get(hub, remote.location, from > 0 ? { range: `bytes=${from}-` } : {}, stop.signal);
    const resumed = from > 0 && res.status === 206 && res.headers.get("content-range")?.startsWith(`bytes ${from}-`) === true;
    // A server that ignores the Range answers 200 with the whole file: start again from byte 0.
    if (from > 0 && res.status === 200) {
      done = 0;
      sha256 = lfs ? createHash("sha256") : undefined;
    }
    if (!(res.status === 200 || resumed) || !res.body) throw httpError(hub, res.status, res.headers, file);
    hub.progress?.(file, done, remote.size);
    const reader = res.body.getReader();
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      watch.bytes(value.length);
      if (done + value.length > remote.size) {
        fail(new WrongBytes(`the server sent more than the ${remote.size} bytes it announced`));
        break;
      }
      for (let off = 0; off < value.length; ) off += (await out.write(value, off, value.length - off, done + off)).bytesWritten;
      sha256?.update(value);
      done += value.length;
      hub.progress?.(file, done, remote.size);
    }
    if (why) throw why;
    await out.truncate(done);
    return { done, digest: sha256?.digest("hex") };
  } catch (err) {
    throw why ?? err;
  } finally {
    watch.stop();
    hub.signal?.removeEventListener("abort", onInterrupt);
    stop.abort();
  }
}

/**
 * Takes `<blob>.incomplete.lock` (created exclusively, holding "host pid"); waits while another
 * live process holds it and keeps it fresh, and takes over a lock whose holder died. Returns the
 * release.
 */
async function lockDownload(hub: Hub, lock: string, file: string): Promise<() => Promise<void>> {
  const me = `${hostname()} ${process.pid}`;
  const staleMs = 2 * Math.max(hub.limits.idleMs, hub.limits.windowMs);
  for (;;) {
    try {
      await writeFile(lock, me, { flag: "wx" });
      const fresh = setInterval(() => void utimes(lock, new Date(), new Date()).catch(() => undefined), staleMs / 4);
      return async () => {
        clearInterval(fresh);
        await rm(lock, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (await isStaleLock(lock, staleMs)) {
      await rm(lock, { force: true, recursive: true }); // recursive: a folder planted under the name
      continue;
    }
    if (hub.signal?.aborted) throw new Interrupted(`interrupted while another process was downloading ${file} (${lock})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function isStaleLock(lock: string, staleMs: number): Promise<boolean> {
  try {
    // Only a regular file is a lock a download wrote; reading a FIFO would wait forever.
    if (!(await lstat(lock)).isFile()) return true;
    const [host, pid] = (await readFile(lock, "utf8")).split(" ");
    if (host === hostname() && !isAlive(Number(pid))) return true;
    return Date.now() - (await stat(lock)).mtimeMs > staleMs;
  } catch {
    return false; // gone already (or half-written): try again
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Refuses to create anything at `path` unless it resolves inside the cache root: a snapshot or
 * blobs folder that is a symlink to elsewhere must not make us write there.
 */
async function ensureInsideCache(hub: Hub, path: string): Promise<void> {
  await mkdir(hub.cacheRoot, { recursive: true });
  const root = await realpath(hub.cacheRoot);
  let existing = path;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const real = await realpath(existing);
  const inside = real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
  if (!inside) {
    throw new Gpt2RewardError(`${existing} resolves to ${real}, outside the Hub cache ${root}; refusing to write there`);
  }
}

// ---------------------------------------------------------------------------- resolve

/** Makes snapshots/<commit>/<file> present: already there, or linked to a cached blob, or downloaded. */
async function ensureFile(hub: Hub, commit: string, file: string, known?: RemoteFile): Promise<void> {
  if (await isFile(snapshotPath(hub.repoDir, commit, file))) return;
  let remote = known;
  if (!remote) {
    const answer = await headFile(hub, commit, file);
    if (!answer.found) throw notFound(hub, file);
    remote = answer;
  }
  // config.json and an index are read whole: the same cap as reading them from disk, before a byte is fetched.
  if (file.endsWith(".json") && remote.size > MAX_JSON_BYTES) {
    throw new Gpt2RewardError(`${hub.repo}@${hub.revision}: ${file} is ${remote.size} bytes on ${hub.endpoint}, more than the ${MAX_JSON_BYTES} a JSON file of a model may have; refusing to download it`);
  }
  await ensureInsideCache(hub, snapshotPath(hub.repoDir, commit, file));
  await downloadBlob(hub, file, remote);
  await linkSnapshotFile(hub.repoDir, commit, file, remote.etag);
}

/** The shard files an index names, sorted (plain file names beside it: parseIndex refuses anything else). */
async function readShardList(path: string, name: string): Promise<string[]> {
  return [...parseIndex(name, platform().files.readText(path, MAX_JSON_BYTES)).keys()].sort();
}

/** Walks WEIGHT_FILES at `commit`: cached -> use, known absent -> skip, else ask the Hub. */
async function ensureWeights(hub: Hub, commit: string): Promise<string[]> {
  for (const candidate of WEIGHT_FILES) {
    let remote: RemoteFile | undefined;
    if (!(await isFile(snapshotPath(hub.repoDir, commit, candidate)))) {
      if (await isKnownMissing(hub.repoDir, commit, candidate)) continue;
      const answer = await headFile(hub, commit, candidate);
      if (!answer.found) {
        await ensureInsideCache(hub, join(hub.repoDir, ".no_exist", commit, candidate));
        await markMissing(hub.repoDir, commit, candidate);
        continue;
      }
      remote = answer;
    }
    await ensureFile(hub, commit, candidate, remote);
    if (!candidate.endsWith(".index.json")) return [candidate];
    const shards = await readShardList(snapshotPath(hub.repoDir, commit, candidate), candidate);
    for (const shard of shards) await ensureFile(hub, commit, shard);
    return [candidate, ...shards];
  }
  throw new Gpt2RewardError(
    `${hub.repo}@${hub.revision} has no weights on ${hub.endpoint}: none of ${WEIGHT_FILES.join(", ")}`,
  );
}

async function resolveOnline(hub: Hub): Promise<HubModel> {
  let commit = COMMIT_HASH.test(hub.revision) ? hub.revision : undefined;
  let config: RemoteFile | undefined;
  if (!commit) {
    const answer = await headFile(hub, hub.revision, "config.json");
    if (!answer.found) throw notFound(hub, "config.json");
    commit = answer.commit;
    config = answer;
    await ensureInsideCache(hub, refPath(hub.repoDir, hub.revision));
    await writeRef(hub.repoDir, hub.revision, commit);
  }
  await ensureFile(hub, commit, "config.json", config);
  const weights = await ensureWeights(hub, commit);
  return { dir: snapshotDir(hub.repoDir, commit), repo: hub.repo, revision: hub.revision, commit, files: ["config.json", ...weights] };
}

/** The commit the cache knows for the revision, or an error naming the ref file it looked for. */
async function cachedCommit(hub: Hub, why: string): Promise<string> {
  const commit = await readRef(hub.repoDir, hub.revision);
  if (!commit) {
    throw new Gpt2RewardError(
      `${why} and ${hub.repo}@${hub.revision} is not in the cache (looked for ${refPath(hub.repoDir, hub.revision)})`,
    );
  }
  return commit;
}

async function requireCached(hub: Hub, commit: string, file: string, why: string): Promise<void> {
  const path = snapshotPath(hub.repoDir, commit, file);
  if (!(await isFile(path))) {
    throw new Gpt2RewardError(`${why} and ${file} of ${hub.repo}@${hub.revision} is not in the cache (looked for ${path})`);
  }
}

/** The first of `candidates` the snapshot has, with its shards if it is an index (all of which must be cached). */
async function cachedWeights(hub: Hub, commit: string, candidates: readonly string[], why: string): Promise<string[]> {
  for (const candidate of candidates) {
    const path = snapshotPath(hub.repoDir, commit, candidate);
    if (!(await isFile(path))) continue;
    if (!candidate.endsWith(".index.json")) return [candidate];
    const shards = await readShardList(path, candidate);
    for (const shard of shards) await requireCached(hub, commit, shard, why);
    return [candidate, ...shards];
  }
  throw new Gpt2RewardError(
    `${why} and no weights of ${hub.repo}@${hub.revision} are in the cache ` +
      `(looked for ${candidates.join(", ")} in ${snapshotDir(hub.repoDir, commit)})`,
  );
}

async function resolveFromCache(hub: Hub, why: string): Promise<HubModel> {
  const commit = await cachedCommit(hub, why);
  await requireCached(hub, commit, "config.json", why);
  const weights = await cachedWeights(hub, commit, WEIGHT_FILES, why);
  return { dir: snapshotDir(hub.repoDir, commit), repo: hub.repo, revision: hub.revision, commit, files: ["config.json", ...weights] };
}

/**
 * `owner/name[@revision]` -> the snapshot folder holding config.json and the weights, downloading
 * what the cache lacks. See the file comment for which requests are made when.
 */
export async function resolveHubModel(spec: string, opts: HubOptions = {}): Promise<HubModel> {
  const hub = openHub(spec, opts);
  if (hub.offline) return resolveFromCache(hub, hub.offlineReason);
  try {
    return await resolveOnline(hub);
  } catch (err) {
    if (!(err instanceof HubUnreachable)) throw err;
    return resolveFromCache(hub, err.message);
  }
}

// ---------------------------------------------------------------------------- inspect

/**
 * A fetch for the library's header reads held to the limits of a download: the answer's headers
 * within the HEAD timeout (a HEAD) or idleMs (a GET), then its body to DownloadLimits (no byte for idleMs, or fewer than
 * minBytesPerWindow in a window), so a server that never answers or trickles cannot keep
 * `inspect` forever. A failure is HubUnreachable: the cache may answer instead.
 */
async function limitedFetch(hub: Hub, input: Parameters<typeof fetch>[0], init: RequestInit, onFail: (err: HubUnreachable) => void): Promise<Response> {
  const stop = new AbortController();
  const unreachable = (why: string) => {
    const err = new HubUnreachable(`cannot reach ${hub.endpoint} (${why})`);
    onFail(err);
    return err;
  };
  const signals = [stop.signal, ...(init.signal ? [init.signal] : []), ...(hub.signal ? [hub.signal] : [])];
  // A HEAD waits as long as resolve's HEADs do; a GET's headers, as long as a download's first byte.
  const headersDue = setTimeout(() => stop.abort(unreachable("timed out")), init.method === "HEAD" ? hub.headTimeoutMs : hub.limits.idleMs);
  let res: Response;
  try {
    res = await hub.fetch(input, { ...init, signal: AbortSignal.any(signals) });
  } catch (err) {
    throw stop.signal.reason instanceof HubUnreachable ? stop.signal.reason : unreachable(describeFailure(err));
  } finally {
    clearTimeout(headersDue);
  }
  if (!res.body) return res;
  const reader = res.body.getReader();
  let received = 0;
  // As for a download: a window need not bring more than what is left of the body.
  const length = Number(res.headers.get("content-length") ?? NaN);
  const left = () => (Number.isSafeInteger(length) ? length - received : Infinity);
  let watch!: ReturnType<typeof watchBody>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      watch = watchBody(hub.limits, left, (why) => {
        const err = unreachable(why);
        controller.error(err);
        stop.abort(err);
      });
    },
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          watch.stop();
          return controller.close();
        }
        watch.bytes(value.length);
        received += value.length;
        controller.enqueue(value);
      } catch (err) {
        watch.stop();
        // Our own abort has already errored the stream with its reason.
        if (!(stop.signal.reason instanceof HubUnreachable)) controller.error(unreachable(describeFailure(err)));
      }
    },
    cancel(reason) {
      watch.stop();
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** One safetensors file's tensors, as a header lists them. */
type HeaderTensors = Iterable<[string, { dtype: string; shape: number[] }]>;

function summarize(hub: Hub, files: string[], headers: HeaderTensors[]): HubInspection {
  const tensors: Record<string, HubTensorInfo> = {};
  let parameterCount = 0;
  for (const header of headers) {
    for (const [name, { dtype, shape }] of header) {
      tensors[name] = { dtype, shape: [...shape] };
      parameterCount += shape.reduce((n, d) => n * d, 1);
    }
  }
  return { repo: hub.repo, revision: hub.revision, files, tensors, parameterCount };
}

async function inspectFromCache(hub: Hub, why: string): Promise<HubInspection> {
  const commit = await cachedCommit(hub, why);
  const files = await cachedWeights(hub, commit, WEIGHT_FILES.slice(0, 2), why);
  const tensorFiles = files.length === 1 ? files : files.slice(1);
  const headers = tensorFiles.map((f) => readSafetensorsHeader(snapshotPath(hub.repoDir, commit, f)).entries);
  return summarize(hub, files, headers);
}

/**
 * The tensor names, dtypes and shapes of a safetensors checkpoint, read from its header with Range
 * requests (via @huggingface/hub's parseSafetensorsMetadata) without downloading the weights.
 * From the cache when offline, unreachable, or the revision is a commit hash already cached.
 */
export async function inspectHubModel(spec: string, opts: HubOptions = {}): Promise<HubInspection> {
  const hub = openHub(spec, opts);
  if (hub.offline) return inspectFromCache(hub, hub.offlineReason);
  if (COMMIT_HASH.test(hub.revision)) {
    const cached = await inspectFromCache(hub, "").catch(() => undefined);
    if (cached) return cached;
  }
  // The library takes a fetch: ours adds the token for the Hub's origin only (any token shape, not
  // just hf_…, so mirrors work) and keeps failed answers, whose X-Error-Code the library drops.
  const origin = new URL(hub.endpoint).origin;
  const failures: Response[] = [];
  // The first request the limits cut: the library may report the bytes it lacked as a bad header.
  let cut: HubUnreachable | undefined;
  const hubFetch: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const headers = new Headers(init?.headers);
    if (hub.token && new URL(url).origin === origin) headers.set("authorization", `Bearer ${hub.token}`);
    const res = await limitedFetch(hub, input, { ...init, headers }, (err) => (cut ??= err));
    if (!res.ok) failures.push(res);
    return res;
  };
  try {
    const parsed = await parseSafetensorsMetadata({
      repo: { type: "model", name: hub.repo },
      revision: hub.revision,
      hubUrl: hub.endpoint,
      fetch: hubFetch,
    });
    // The library has validated each entry (dtype, shape, offsets within the file).
    const headers = (parsed.sharded ? Object.values(parsed.headers) : [parsed.header]).map((header) =>
      Object.entries(header).filter(([name]) => name !== "__metadata__") as HeaderTensors,
    );
    return summarize(hub, parsed.filepaths, headers);
  } catch (err) {
    if (err instanceof HubUnreachable || cut) return inspectFromCache(hub, (cut ?? (err as HubUnreachable)).message);
    if (err instanceof Gpt2RewardError) throw err;
    const denied = failures.find(
      (r) => r.status === 401 || r.status === 403 || /^(Repo|Revision)NotFound$/.test(r.headers.get("x-error-code") ?? ""),
    );
    if (denied) throw httpError(hub, denied.status, denied.headers, "model.safetensors");
    const down = failures.find((r) => r.status >= 500);
    if (down) return inspectFromCache(hub, `${hub.endpoint} answered HTTP ${down.status}`);
    const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ");
    if (err instanceof SafetensorParseError) throw new FormatError(`${hub.repo}@${hub.revision}`, message);
    if (message.includes("does not seem to contain safetensors")) {
      throw new Gpt2RewardError(
        `${hub.repo}@${hub.revision} has no model.safetensors or model.safetensors.index.json on ${hub.endpoint}: ` +
          "only safetensors headers can be read without downloading",
      );
    }
    throw new Gpt2RewardError(`${hub.repo}@${hub.revision}: reading the safetensors header failed: ${message}`);
  }
}
