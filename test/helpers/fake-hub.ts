/**
 * A fake Hugging Face Hub on 127.0.0.1 that answers the file endpoints like the real one:
 *
 *   HEAD/GET /<owner>/<name>/resolve/<revision>/<file>
 *     small file: 200, ETag "<git blob sha1>", X-Repo-Commit, Content-Length, Range support
 *     LFS file (>= lfsThreshold bytes): 302 to an absolute CDN URL, X-Linked-Etag "<sha256>",
 *       X-Linked-Size, X-Repo-Commit
 *     404 + X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound (with X-Repo-Commit)
 *     401 + X-Error-Code GatedRepo when the repo wants a token and the request lacks it
 *     307 to the new name for a renamed repo (a relative Location, as the Hub sends)
 *   HEAD/GET /<owner>/<name>/raw/<revision>/<file>      (what @huggingface/hub's fileExists asks)
 *   HEAD/GET /lfs-cdn/<sha256>?sig=...                  the "CDN": no token needed, Range support
 *
 * Every request is logged (host, method, path, Range, whether a token came, status, body bytes
 * sent). The next GET of a given file can misbehave as a hostile or broken server would: be cut
 * mid-body (a dropped connection), trickle, send more than it announced, or redirect elsewhere.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

export interface FakeRepo {
  files: Record<string, Uint8Array>;
  /** If set, resolve/raw requests need `Authorization: Bearer <token>` (else 401 GatedRepo). */
  token?: string;
}

export interface FakeHubOptions {
  repos: Record<string, FakeRepo>;
  /**
   * Old repo id -> new repo id: answered with a relative 307, like a renamed repo on the Hub; or
   * -> "//host:port/owner/name", a protocol-relative 307 to another origin.
   */
  renamed?: Record<string, string>;
  /** Files of at least this many bytes are "LFS" files served by redirect. Default 1024. */
  lfsThreshold?: number;
}

export interface LoggedRequest {
  /** host:port the request was sent to: the Hub's or the second server's (another origin). */
  host: string;
  method: string;
  path: string;
  range?: string;
  authorized: boolean;
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

interface Commit {
  sha: string;
  files: Record<string, Uint8Array>;
}

interface RepoState {
  token?: string;
  commits: Commit[];
  refs: Record<string, string>;
}

export const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
export const gitBlobSha1 = (b: Uint8Array): string =>
  createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

let commitCounter = 0;
function newCommitSha(files: Record<string, Uint8Array>): string {
  const h = createHash("sha1").update(String(++commitCounter));
  for (const [name, bytes] of Object.entries(files).sort()) h.update(name).update(sha256Hex(bytes));
  return h.digest("hex");
}

export class FakeHub {
  readonly requests: LoggedRequest[] = [];
  private readonly repos = new Map<string, RepoState>();
  private readonly cdn = new Map<string, { bytes: Uint8Array; file: string }>();
  private readonly cuts = new Map<string, number>();
  private readonly trickles = new Map<string, { bytes: number; everyMs: number; times: number }>();
  private readonly paddings = new Map<string, number>();
  private readonly getRedirects = new Map<string, string>();
  private readonly silences = new Set<string>();
  private readonly lfsThreshold: number;
  readonly renamed: Record<string, string>;
  url = "";
  /** The CDN is a second server: another origin, as the real CDN is, so a token sent there would show. */
  cdnUrl = "";

  constructor(private readonly server: Server, private readonly cdnServer: Server, opts: FakeHubOptions) {
    this.lfsThreshold = opts.lfsThreshold ?? 1024;
    this.renamed = opts.renamed ?? {};
    for (const [id, repo] of Object.entries(opts.repos)) {
      this.repos.set(id, { token: repo.token, commits: [], refs: {} });
      this.push(id, repo.files);
    }
  }

  /** Makes a new commit on `main` holding exactly `files`; returns its sha. */
  push(repoId: string, files: Record<string, Uint8Array>): string {
    const repo = this.repos.get(repoId);
    if (!repo) throw new Error(`fake hub: no repo ${repoId}`);
    const sha = newCommitSha(files);
    repo.commits.push({ sha, files });
    repo.refs.main = sha;
    for (const [file, bytes] of Object.entries(files)) this.cdn.set(sha256Hex(bytes), { bytes, file });
    return sha;
  }

  head(repoId: string): string {
    return this.repos.get(repoId)!.refs.main;
  }

  /** The next GET that serves `file`'s body stops after `afterBytes` bytes and drops the connection. */
  cutNextDownload(file: string, afterBytes: number): void {
    this.cuts.set(file, afterBytes);
  }

  /** The next `times` GETs of `file` send `bytes` bytes every `everyMs` ms (a server that stalls without stopping). */
  trickleNextDownload(file: string, bytes: number, everyMs: number, times = 1): void {
    this.trickles.set(file, { bytes, everyMs, times });
  }

  /** The next GET of `file` sends `extra` zero bytes after the file, with no Content-Length (HEAD still says the true size). */
  padNextDownload(file: string, extra: number): void {
    this.paddings.set(file, extra);
  }

  /** The next request for `file` (HEAD or GET, resolve/ or raw/) is never answered: not even its headers. */
  silenceNext(file: string): void {
    this.silences.add(file);
  }

  /** The next GET of `file` (not the HEAD) is answered 302 with this Location, e.g. `//127.0.0.1:<port>/...`. */
  redirectNextDownload(file: string, location: string): void {
    this.getRedirects.set(file, location);
  }

  count(method: string, pathPart = ""): number {
    return this.requests.filter((r) => r.method === method && r.path.includes(pathPart)).length;
  }

  bytesServed(pathPart = ""): number {
    return this.requests.filter((r) => r.path.includes(pathPart)).reduce((n, r) => n + r.bytes, 0);
  }

  /** A fetch that refuses any address but this server's, so no test can reach the real Hub. */
  readonly fetch: typeof fetch = (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (!url.startsWith(this.url + "/") && !url.startsWith(this.cdnUrl + "/")) return Promise.reject(new Error(`fake hub: refused request to ${url}`));
    return fetch(input, init);
  };

  async close(): Promise<void> {
    for (const server of [this.server, this.cdnServer]) {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const log: LoggedRequest = {
      host: req.headers.host ?? "",
      method: req.method ?? "GET",
      path: req.url ?? "",
      range: req.headers.range,
      authorized: req.headers.authorization !== undefined,
      status: 0,
      bytes: 0,
    };
    this.requests.push(log);
    const write = res.write.bind(res);
    res.write = ((chunk: Uint8Array, ...rest: never[]) => {
      log.bytes += chunk.length;
      return write(chunk, ...rest);
    }) as typeof res.write;
    res.on("close", () => (log.status = res.statusCode));

    // CORS as the real Hub and CDN send it, so a web page (test/web) can fetch from here too.
    res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Access-Control-Expose-Headers", "*");
    if (req.method === "OPTIONS") {
      res.writeHead(204, { "Access-Control-Allow-Methods": "GET, HEAD", "Access-Control-Allow-Headers": "Authorization, Range" });
      return void res.end();
    }
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const cdn = /^\/lfs-cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      const blob = this.cdn.get(cdn[1]);
      if (!blob) return this.fail(res, 404, "EntryNotFound");
      return this.serve(req, res, blob.bytes, blob.file, { ETag: `"${cdn[1]}"` });
    }
    const m = /^\/([^/]+\/[^/]+)\/(resolve|raw)\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return this.fail(res, 404, undefined);
    const [, repoId, endpoint, rawRevision, rawFile] = m;
    const newId = this.renamed[repoId];
    if (newId) {
      // "//host:port/owner/name" moves the repo to another origin with a protocol-relative Location.
      const location = newId.startsWith("//") ? newId + path.slice(repoId.length + 1) : path.replace(`/${repoId}/`, `/${newId}/`);
      res.writeHead(307, { Location: location });
      return void res.end();
    }
    const repo = this.repos.get(repoId);
    if (!repo) return this.fail(res, 404, "RepoNotFound");
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return this.fail(res, 401, "GatedRepo", `Access to model ${repoId} is restricted.`);
    }
    const revision = decodeURIComponent(rawRevision);
    const sha = repo.refs[revision] ?? repo.commits.find((c) => c.sha === revision)?.sha;
    const commit = repo.commits.find((c) => c.sha === sha);
    if (!commit) return this.fail(res, 404, "RevisionNotFound");
    const file = rawFile.split("/").map(decodeURIComponent).join("/");
    if (this.silences.delete(file)) return; // the socket stays open; close() ends it
    const bytes = commit.files[file];
    if (!bytes) return this.fail(res, 404, "EntryNotFound", undefined, { "X-Repo-Commit": commit.sha });
    const common = { "X-Repo-Commit": commit.sha };
    const redirect = req.method === "GET" ? this.getRedirects.get(file) : undefined;
    if (redirect !== undefined) {
      this.getRedirects.delete(file);
      res.writeHead(302, { Location: redirect });
      return void res.end();
    }
    if (endpoint === "resolve" && bytes.length >= this.lfsThreshold) {
      const sha = sha256Hex(bytes);
      res.writeHead(302, {
        ...common,
        Location: `${this.cdnUrl}/lfs-cdn/${sha}?sig=signed`,
        "X-Linked-Etag": `"${sha}"`,
        "X-Linked-Size": String(bytes.length),
        ETag: `"${gitBlobSha1(new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\n`))}"`,
      });
      return void res.end();
    }
    this.serve(req, res, bytes, file, { ...common, ETag: `"${gitBlobSha1(bytes)}"` });
  }

  private fail(res: ServerResponse, status: number, code?: string, message?: string, extra: Record<string, string> = {}): void {
    res.writeHead(status, {
      ...extra,
      ...(code ? { "X-Error-Code": code } : {}),
      ...(message ? { "X-Error-Message": message } : {}),
    });
    res.end();
  }

  private serve(req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, file: string, headers: Record<string, string>): void {
    const total = bytes.length;
    let start = 0;
    let end = total - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      end = Math.min(range[2] ? Number(range[2]) : total - 1, total - 1);
      if (start > end) {
        res.writeHead(416, { "Content-Range": `bytes */${total}` });
        return void res.end();
      }
      status = 206;
      headers = { ...headers, "Content-Range": `bytes ${start}-${end}/${total}` };
    }
    const padding = req.method === "GET" ? this.paddings.get(file) : undefined;
    if (padding !== undefined) {
      this.paddings.delete(file);
      res.writeHead(status, { ...headers, "Accept-Ranges": "bytes" }); // chunked: no length to hold it to
      res.write(bytes.subarray(start, end + 1));
      const zeros = new Uint8Array(64 * 1024);
      let left = padding;
      const more = (): void => {
        while (left > 0 && !res.destroyed) {
          const n = Math.min(left, zeros.length);
          left -= n;
          if (!res.write(zeros.subarray(0, n))) return void res.once("drain", more);
        }
        res.end();
      };
      return more();
    }
    res.writeHead(status, { ...headers, "Accept-Ranges": "bytes", "Content-Length": String(end - start + 1) });
    if (req.method === "HEAD") return void res.end();
    const body = bytes.subarray(start, end + 1);
    const cut = status === 200 ? this.cuts.get(file) : undefined;
    if (cut !== undefined) {
      this.cuts.delete(file);
      // Let the bytes reach the client before the connection drops, as a real cut would.
      res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 100));
      return;
    }
    const trickle = this.trickles.get(file);
    if (trickle !== undefined) {
      if (--trickle.times === 0) this.trickles.delete(file);
      res.flushHeaders(); // the headers go now, as a real server's would; the body stalls
      let at = 0;
      const tick = setInterval(() => {
        if (res.destroyed || at >= body.length) {
          clearInterval(tick);
          return void res.end();
        }
        res.write(body.subarray(at, at + trickle.bytes));
        at += trickle.bytes;
      }, trickle.everyMs);
      res.on("close", () => clearInterval(tick));
      return;
    }
    res.write(body);
    res.end();
  }
}

export async function startFakeHub(opts: FakeHubOptions): Promise<FakeHub> {
  let hub: FakeHub | undefined;
  const server = createServer((req, res) => hub!.handle(req, res));
  const cdnServer = createServer((req, res) => hub!.handle(req, res));
  hub = new FakeHub(server, cdnServer, opts);
  const listen = async (s: Server) => {
    await new Promise<void>((ready) => s.listen(0, "127.0.0.1", ready));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  hub.url = await listen(server);
  hub.cdnUrl = await listen(cdnServer);
  return hub;
}

/** Every file under `dir`, keyed by its path relative to `dir` with '/' separators. */
export function filesFromFolder(dir: string, prefix = ""): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) Object.assign(out, filesFromFolder(path, `${prefix}${name}/`));
    else out[prefix + name] = new Uint8Array(readFileSync(path));
  }
  return out;
}

/** A small valid safetensors file of F32 tensors filled with a deterministic ramp. */
export function makeSafetensors(tensors: Record<string, number[]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const n = shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  for (let i = 0; i < offset / 4; i++) view.setFloat32(8 + json.length + 4 * i, (i % 97) / 97, true);
  return out;
}
