/**
 * The browser implementation of the platform seams (src/platform/platform.ts), installed when this
 * module is imported (by src/index.browser.ts and the browser worker scripts).
 *
 * Files: a model's files are Blobs (a picked or dropped File, a Response from Cache Storage or a
 * fetch) mounted under a path with `mountFiles`; the readers above ask for ranges synchronously,
 * as in Node, which a worker can answer with FileReaderSync on a slice: the file is never copied
 * whole, and the same format code serves both platforms. (So models load in the model's worker;
 * the page's thread only posts messages.)
 *
 * (Inflating a deflated zip record is no longer a seam: formats/zip.ts uses fflate's streaming
 * inflate on both platforms, so it can stop at the bytes a tensor needs.)
 */
import { FormatError } from "../errors.js";
import { posixPath, positionalSource, readSmallText, type FileBytes, type FileSystem } from "./bytes.js";
import { setPlatform, type ParentPort, type Platform, type Thread, type ThreadScript, type Threads } from "./platform.js";
import { wasmRelaxedSimdSupported } from "../../kernels/wasm/wasm-kernels.js";

const mounted = new Map<string, Blob>();

/** Makes `files` readable as `${dir}/${name}` (a folder the loader can look into); returns the folder. */
export function mountFiles(dir: string, files: Iterable<[name: string, blob: Blob]>): string {
  for (const [name, blob] of files) mounted.set(posixPath.join(dir, name), blob);
  return dir;
}

/** Forgets every file under `dir` (their Blobs may then be collected). */
export function unmountFiles(dir: string): void {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  for (const path of [...mounted.keys()]) if (path.startsWith(prefix)) mounted.delete(path);
}

const notFound = (path: string): Error => Object.assign(new Error(`${path}: no such file`), { code: "ENOENT" });

/** Workers only (not in the DOM library's types). */
type FileReaderSyncClass = new () => { readAsArrayBuffer(blob: Blob): ArrayBuffer };

function blobSource(path: string, blob: Blob): FileBytes {
  const FileReaderSync = (globalThis as { FileReaderSync?: FileReaderSyncClass }).FileReaderSync;
  if (FileReaderSync === undefined) {
    throw new FormatError(path, "cannot open: files are read in the model's worker (FileReaderSync), not on the page's thread");
  }
  const reader = new FileReaderSync();
  return positionalSource(
    blob.size,
    (dst, position) => {
      const end = Math.min(blob.size, position + dst.length);
      if (end <= position) return 0;
      const got = new Uint8Array(reader.readAsArrayBuffer(blob.slice(position, end)));
      dst.set(got);
      return got.length;
    },
    () => {},
    (at) => new FormatError(path, `unexpected end of file at byte ${at} (the file changed while being read?)`),
  );
}

const browserFiles: FileSystem = {
  kind(path) {
    const p = path.replace(/\/+$/, "");
    if (mounted.has(p)) return "file";
    for (const key of mounted.keys()) if (key.startsWith(`${p}/`)) return "dir";
    return undefined;
  },
  open(path) {
    const blob = mounted.get(path);
    if (blob === undefined) throw new FormatError(path, "cannot open: ENOENT");
    return blobSource(path, blob);
  },
  readText(path, maxBytes) {
    const blob = mounted.get(path);
    if (blob === undefined) throw notFound(path);
    return readSmallText(() => blobSource(path, blob), path, maxBytes);
  },
  ...posixPath,
};

/**
 * How each worker script is started, registered by the entry point that starts it: the page's
 * entry (src/index.browser.ts) starts model-worker.js, the model worker's entry starts
 * pool-worker.js. Each writes the literal `new Worker(new URL("./x.js", import.meta.url), { type:
 * "module" })`, the form bundlers such as Vite recognise as a worker and bundle with what it imports;
 * here, in code every script shares, the two literals would make each worker seem to start the
 * other (a cycle Vite refuses). esbuild leaves the literal as it is: its users serve dist/browser/
 * beside their bundle, where the worker scripts sit beside the chunk that names them.
 */
const starters: Partial<Record<ThreadScript, () => Worker>> = {};

export function registerWorker(script: ThreadScript, start: () => Worker): void {
  starters[script] = start;
}

function startWorker(script: ThreadScript): Worker {
  const start = starters[script];
  if (!start) throw new Error(`no ${script} worker registered on this thread (a bug, please report it)`);
  return start();
}

/** Shared memory needs a cross-origin isolated page (COOP same-origin + COEP require-corp). */
const canShareMemory = (): boolean => globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === "function";

const browserThreads: Threads = {
  available: () => (canShareMemory() ? Math.max(1, navigator.hardwareConcurrency || 1) : 1),
  canShareMemory,
  start(script, data): Thread {
    const w = startWorker(script);
    // The worker reads `data` as its first message (a browser worker has no workerData).
    w.postMessage(data);
    return {
      postMessage: (m, transfer) => w.postMessage(m, transfer ?? []),
      onMessage: (l) => w.addEventListener("message", (e) => l(e.data)),
      onError: (l) =>
        w.addEventListener("error", (e) => {
          e.preventDefault();
          // An error event without a message is a script that did not load (a 404, say, when a
          // bundler left the worker files behind).
          const message = e.message
            ? `${e.message}${e.filename ? ` (${e.filename}:${e.lineno})` : ""}`
            : `the ${script} worker's script (${script}-worker.js) did not load: serve the .js files of gpt2-reward's dist/browser/ together, beside the script that imports gpt2-reward`;
          const error = new Error(message);
          error.stack = message; // this Error's own stack would show the page's listener, not the worker's code
          l(error);
        }),
      onExit: () => {},
      signalEnd: () => {},
      unref: () => {},
      ref: () => {},
      terminate: async () => w.terminate(),
    };
  },
  parent(): Promise<ParentPort> {
    // Messages that arrive after the first are queued until someone listens, so none is lost
    // between the data message and the caller's onMessage.
    return new Promise((resolve) => {
      const queue: unknown[] = [];
      let listener: ((m: unknown) => void) | undefined;
      let data: { value: unknown } | undefined;
      self.addEventListener("message", (e: MessageEvent) => {
        if (data === undefined) {
          data = { value: e.data };
          resolve({
            data: e.data,
            postMessage: (m, transfer) => (self as unknown as Worker).postMessage(m, transfer ?? []),
            onMessage: (l) => {
              listener = l;
              for (const m of queue.splice(0)) l(m);
            },
            report: (message) => console.error(`gpt2-reward: ${message}`),
          });
        } else if (listener) listener(e.data);
        else queue.push(e.data);
      });
    });
  },
};

export const browserPlatform: Platform = {
  name: "browser",
  files: browserFiles,
  async sha256(bytes) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  },
  threads: browserThreads,
  // Chromium ships relaxed SIMD on (since 114): there is nothing to turn on, only to test.
  relaxedSimd: () => wasmRelaxedSimdSupported(),
};

setPlatform(browserPlatform);
