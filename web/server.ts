/**
 * The demo page's static server (`npm run web`): 127.0.0.1 only, serving the page (web/), the
 * browser build (dist/browser/) and the bundled models (fixtures/models/), with the two headers
 * that make the page cross-origin isolated, so the model's threads can share memory:
 *   Cross-Origin-Opener-Policy: same-origin
 *   Cross-Origin-Embedder-Policy: require-corp
 * GET and HEAD, single byte ranges (the safetensors header is read first), nothing else.
 */
import { createReadStream, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root, from web/ or dist/web/. */
const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(here, here.endsWith(`${sep}dist${sep}web`) ? "../.." : "..");

/** URL prefixes served, and the folders they map to (nothing else of the repository is exposed). */
const MOUNTS: [string, string][] = [
  ["/dist/browser/", "dist/browser"],
  ["/fixtures/models/", "fixtures/models"],
  ["/", "web"],
];

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

export interface WebServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Send COOP/COEP (default true); false shows the page without threads (one thread). */
  isolation?: boolean;
  root?: string;
  /** More folders to serve: URL prefix ("/bench-model/") → absolute folder (bench/web.ts). */
  extraMounts?: [prefix: string, dir: string][];
}

export interface WebServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startWebServer(opts: WebServerOptions = {}): Promise<WebServer> {
  const root = opts.root ?? REPO_ROOT;
  const isolation = opts.isolation ?? true;
  const server = createServer((req, res) => {
    const headers: Record<string, string> = { "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff" };
    if (isolation) {
      headers["Cross-Origin-Opener-Policy"] = "same-origin";
      headers["Cross-Origin-Embedder-Policy"] = "require-corp";
    }
    const fail = (status: number, text: string) => {
      res.writeHead(status, { ...headers, "Content-Type": "text/plain; charset=utf-8" });
      res.end(req.method === "HEAD" ? undefined : `${text}\n`);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return fail(405, "method not allowed");
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      return fail(400, "bad path");
    }
    if (path === "/") path = "/index.html";
    const mount = [...(opts.extraMounts ?? []), ...MOUNTS].find(([prefix]) => path.startsWith(prefix));
    if (!mount || path.includes("\0")) return fail(404, "not found");
    const base = resolve(root, mount[1]); // an absolute folder stays as it is
    const file = resolve(base, `.${path.slice(mount[0].length - 1)}`);
    if (file !== base && !file.startsWith(base + sep)) return fail(404, "not found");
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) return fail(404, "not found");
      size = st.size;
    } catch {
      return fail(404, "not found");
    }
    headers["Content-Type"] = TYPES[extname(file)] ?? "application/octet-stream";
    headers["Accept-Ranges"] = "bytes";
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      end = Math.min(range[2] ? Number(range[2]) : size - 1, size - 1);
      if (start > end) {
        res.writeHead(416, { ...headers, "Content-Range": `bytes */${size}` });
        return res.end();
      }
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
    }
    headers["Content-Length"] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === "HEAD" || size === 0) return res.end();
    createReadStream(file, { start, end }).on("error", () => res.destroy()).pipe(res);
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 0, "127.0.0.1", () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    server,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

// `npm run web` (node dist/web/server.js [--port N] [--no-isolation])
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const portAt = args.indexOf("--port");
  const port = portAt >= 0 ? Number(args[portAt + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`gpt2-reward web: --port must be an integer from 0 to 65535\n`);
    process.exit(2);
  }
  startWebServer({ port, isolation: !args.includes("--no-isolation") }).then(
    (s) => process.stdout.write(`gpt2-reward demo page: ${s.url}  (Ctrl-C to stop)\n`),
    (e: NodeJS.ErrnoException) => {
      process.stderr.write(`gpt2-reward web: cannot listen on 127.0.0.1:${port} (${e.code ?? e.message})\n`);
      process.exit(1);
    },
  );
}
