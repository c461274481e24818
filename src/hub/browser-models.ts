/**
 * Where a model's files come from in a browser: a folder URL, a Hugging Face repo id, or Files the
 * user picked or dropped. On the page's thread `browserSource` turns what the user gave into a
 * message for the model's worker; there `mountBrowserSource` fetches or mounts it. Each ends as Blobs mounted in the
 * browser platform's file table (src/platform/browser.ts), so the model loads through the same
 * readers as in Node: config.json, then the weights found in transformers' order
 * (src/formats/checkpoint.ts).
 *
 * Downloads go to Cache Storage (cache "gpt2-reward", keyed by URL) and are read back as the
 * cached Response's Blob: the browser keeps a large body on disk, so a 500 MB checkpoint is not
 * held in memory twice, and a second visit loads offline. A safetensors header is fetched first
 * (two small Range requests) and checked before the body is downloaded.
 */
import { Gpt2RewardError, FormatError } from "../errors.js";
import { WEIGHT_FILES, parseIndex } from "../formats/checkpoint.js";
import { parseSafetensorsHeader, MAX_HEADER_BYTES } from "../formats/safetensors.js";
import { mountFiles } from "../platform/browser.js";
import { platform } from "../platform/platform.js";

export interface FetchOptions {
  /** Hub (or mirror) base URL, default https://huggingface.co. */
  endpoint?: string;
  /** Branch, tag or commit for a repo id without `@revision`; default "main". */
  revision?: string;
  /** Sent as `Authorization: Bearer` to the endpoint (gated or private repos). */
  token?: string;
  /** Keep downloads in Cache Storage (default true). */
  cache?: boolean;
}

export interface Progress {
  file: string;
  loaded: number;
  total: number;
  /** True when the bytes came from Cache Storage, not the network. */
  cached: boolean;
}

/** A picked or dropped file, as it crosses to the worker (a File is a Blob with a name). */
export type NamedBlob = { name: string; blob: Blob };

/** What a model is loaded from in a browser: a folder URL, a Hub repo id, or picked Files. */
export type ModelSource = string | URL | ArrayLike<File> | Iterable<File>;

/** A ModelSource as it crosses to the model's worker: a folder URL (absolute), a Hub repo id, or named Blobs. */
export type BrowserSource = { url: string; fetch: FetchOptions } | { repo: string; fetch: FetchOptions } | { files: NamedBlob[] };

/**
 * On the page's thread: a string is a URL when it has a scheme, starts with "/", "./" or "../",
 * or ends with "/"; otherwise "owner/name[@revision]" is a Hub repo id. Relative URLs resolve
 * against the page.
 */
export function browserSource(source: ModelSource, fetch: FetchOptions): BrowserSource {
  if (source instanceof URL) return { url: source.href, fetch };
  if (typeof source === "string") {
    const isUrl = /^[a-z][a-z0-9+.-]*:/i.test(source) || /^\.{0,2}\//.test(source) || source.endsWith("/");
    if (!isUrl && looksLikeRepoId(source)) return { repo: source, fetch };
    if (!isUrl) throw new Gpt2RewardError(`${JSON.stringify(source)} is neither a Hub repo id (owner/name) nor a folder URL (ending in "/")`);
    return { url: new URL(source, globalThis.document?.baseURI ?? globalThis.location?.href).href, fetch };
  }
  const files = Array.from(source as ArrayLike<File>);
  if (!files.every((f) => f instanceof Blob && typeof f.name === "string")) throw new Gpt2RewardError("expected a folder URL, a Hub repo id, or a list of Files");
  return { files: files.map((f) => ({ name: f.name, blob: f })) };
}

/** In the model's worker: fetches (or finds in Cache Storage) or mounts the source's files; returns the path to load. */
export async function mountBrowserSource(source: BrowserSource, onProgress: (p: Progress) => void, onWarning: (warning: string) => void): Promise<string> {
  if ("files" in source) return mountPicked(source.files);
  if ("repo" in source) return mountRemote(hubBase(source.repo, source.fetch), source.fetch, onProgress, onWarning);
  return mountRemote(source.url.endsWith("/") ? source.url : `${source.url}/`, source.fetch, onProgress, onWarning);
}

const CACHE_NAME = "gpt2-reward";
const REPO_ID = /^[\w][\w.-]*\/[\w][\w.-]*(@[\w./-]+)?$/;

/** True for `owner/name` or `owner/name@revision` (what the Hub's resolve URLs take). */
export function looksLikeRepoId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes("..");
}

/** Mounts picked files (config.json + weights, shards and index too) as a folder; returns its path. */
export function mountPicked(files: NamedBlob[]): string {
  if (files.length === 0) throw new Gpt2RewardError("no files chosen: pick config.json and the weights (model.safetensors or pytorch_model.bin)");
  const names = new Set(files.map((f) => f.name));
  if (!names.has("config.json")) throw new Gpt2RewardError(`config.json is missing among the chosen files (${[...names].join(", ")})`);
  if (!WEIGHT_FILES.some((w) => names.has(w))) {
    throw new Gpt2RewardError(`no weights among the chosen files (${[...names].join(", ")}): expected one of ${WEIGHT_FILES.join(", ")}`);
  }
  // Named so that a message about a file reads "chosen files/model.safetensors: ..." (one model per worker).
  return mountFiles("chosen files", files.map((f) => [f.name, f.blob]));
}

/**
 * Downloads (or finds in the cache) a model folder at `base` (a URL ending in "/"): config.json,
 * then the first weights file transformers would use, with an index's shards. Returns the mounted path.
 */
export async function mountRemote(base: string, opts: FetchOptions, onProgress: (p: Progress) => void, onWarning: (warning: string) => void): Promise<string> {
  // Cache Storage exists only in a secure context (https, or http from localhost / 127.0.0.1).
  const canCache = typeof caches !== "undefined";
  if (opts.cache !== false && !canCache) {
    onWarning("this page has no Cache Storage (it is not a secure context: https, or http from localhost): the model's files are downloaded again on every visit");
  }
  const store = opts.cache === false || !canCache ? undefined : await caches.open(CACHE_NAME);
  const headers: Record<string, string> = opts.token ? { Authorization: `Bearer ${opts.token}` } : {};
  const fetched: [string, Blob][] = [];
  const get = (name: string) => download(base + name, name, store, headers, onProgress);

  fetched.push(["config.json", await get("config.json").then((b) => required(b, base, "config.json"))]);
  // Which weights file: one already cached wins (a second visit may be offline); else the first the server has.
  let weights: string | undefined;
  for (const name of WEIGHT_FILES) if (store && (await store.match(base + name))) { weights = name; break; }
  for (const name of WEIGHT_FILES) {
    if (weights) break;
    if (await exists(base + name, headers)) weights = name;
  }
  if (!weights) throw new Gpt2RewardError(`${base}: no weights found (looked for ${WEIGHT_FILES.join(", ")})`);

  if (weights.endsWith(".index.json")) {
    const index = required(await get(weights), base, weights);
    fetched.push([weights, index]);
    for (const shard of parseIndex(base + weights, await index.text()).keys()) {
      fetched.push([shard, await weightsFile(base, shard, store, headers, onProgress)]);
    }
  } else {
    fetched.push([weights, await weightsFile(base, weights, store, headers, onProgress)]);
  }
  // Mounted at the URL, so a message about a file names where it came from.
  return mountFiles(base.replace(/\/+$/, ""), fetched);
}

/** The folder URL a repo id's files resolve under. */
export function hubBase(spec: string, opts: FetchOptions): string {
  const at = spec.indexOf("@");
  const repo = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? (opts.revision ?? "main") : spec.slice(at + 1);
  const endpoint = (opts.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/`;
}

function required(blob: Blob | undefined, base: string, name: string): Blob {
  if (!blob) throw new Gpt2RewardError(`${base}${name}: not found (404)`);
  return blob;
}

async function exists(url: string, headers: Record<string, string>): Promise<boolean> {
  const res = await request(url, { method: "HEAD", headers });
  return res.ok;
}

async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    // Past the HTTP cache: Cache Storage is ours, and a cached range makes the browser validate it with extra requests.
    return await fetch(url, { ...init, cache: "no-store" });
  } catch (e) {
    throw new Gpt2RewardError(`${url}: cannot fetch (${(e as Error).message}); offline, or the server does not allow this page (CORS)`);
  }
}

/** A weights file: for safetensors, its header is fetched and checked before the body. */
async function weightsFile(base: string, name: string, store: Cache | undefined, headers: Record<string, string>, onProgress: (p: Progress) => void): Promise<Blob> {
  const url = base + name;
  if (name.endsWith(".safetensors") && !(store && (await store.match(url)))) await checkSafetensorsHeader(url, headers);
  return required(await download(url, name, store, headers, onProgress), base, name);
}

async function checkSafetensorsHeader(url: string, headers: Record<string, string>): Promise<void> {
  const range = async (start: number, end: number) => {
    const res = await request(url, { headers: { ...headers, Range: `bytes=${start}-${end}` } });
    if (res.status !== 206) return undefined; // no Range support: the whole file is checked when loaded
    const total = Number(/\/(\d+)$/.exec(res.headers.get("Content-Range") ?? "")?.[1]);
    return { bytes: new Uint8Array(await res.arrayBuffer()), total };
  };
  const len = await range(0, 7);
  if (!len || !Number.isFinite(len.total)) return;
  if (len.bytes.length < 8) throw new FormatError(url, `not a safetensors file: ${len.total} bytes is shorter than the 8-byte header length`);
  const n = Number(new DataView(len.bytes.buffer).getBigUint64(0, true));
  if (n > MAX_HEADER_BYTES || 8 + n > len.total) {
    parseSafetensorsHeader(url, len.bytes, len.total); // throws its message for this case
  }
  const head = await range(0, 8 + n - 1);
  if (head) parseSafetensorsHeader(url, head.bytes, len.total);
}

/**
 * The body of `url` as a Blob: from the cache, or fetched (and put in the cache, then read back
 * from it, so the Blob is the browser's on-disk copy). Undefined for a 404.
 */
async function download(url: string, name: string, store: Cache | undefined, headers: Record<string, string>, onProgress: (p: Progress) => void): Promise<Blob | undefined> {
  const hit = await store?.match(url);
  if (hit) {
    const blob = await hit.blob();
    onProgress({ file: name, loaded: blob.size, total: blob.size, cached: true });
    return blob;
  }
  const res = await request(url, { headers });
  if (res.status === 404) return undefined;
  if (!res.ok || !res.body) throw new Gpt2RewardError(`${url}: HTTP ${res.status}${res.status === 401 || res.status === 403 ? " (gated or private: pass a token)" : ""}`);
  const total = Number(res.headers.get("Content-Length") ?? NaN);
  const etag = (res.headers.get("X-Linked-Etag") ?? res.headers.get("ETag") ?? "").replace(/^W\//, "").replace(/"/g, "");
  let loaded = 0;
  const counted = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        loaded += chunk.length;
        onProgress({ file: name, loaded, total: Number.isFinite(total) ? total : loaded, cached: false });
        controller.enqueue(chunk);
      },
    }),
  );
  const body = new Response(counted, { headers: { "Content-Type": "application/octet-stream" } });
  let blob: Blob;
  if (store) {
    try {
      await store.put(url, body);
    } catch (e) {
      throw new Gpt2RewardError(`cannot keep ${name} (${Number.isFinite(total) ? `${(total / 1e6).toFixed(0)} MB` : "its size unknown"}) in this browser's Cache Storage: ${(e as Error).message} (storage full, or a private window's small quota? load with { cache: false })`);
    }
    blob = await (await store.match(url))!.blob();
  } else {
    blob = await body.blob();
  }
  const fail = async (why: string): Promise<never> => {
    await store?.delete(url);
    throw new Gpt2RewardError(`download of ${name} from ${url} failed: ${why}; nothing was kept, load again to retry`);
  };
  if (Number.isFinite(total) && blob.size !== total) await fail(`received ${blob.size} of ${total} bytes`);
  // An LFS file's ETag is its sha256 (as the Hub sends it): check what we keep.
  if (/^[0-9a-f]{64}$/.test(etag) && (await platform().sha256(new Uint8Array(await blob.arrayBuffer()))) !== etag) {
    await fail("its sha256 does not match the server's ETag");
  }
  return blob;
}
