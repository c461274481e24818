/**
 * The Node implementation of the platform seams (src/platform/platform.ts), installed when this
 * module is imported: every Node entry point (src/index.ts, the CLI, worker scripts) imports it first.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, fstatSync, openSync, readSync, statSync, type Stats } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { MessageChannel, Worker, isMainThread, parentPort, workerData, type MessagePort } from "node:worker_threads";
import { wasmRelaxedSimdSupported } from "../../kernels/wasm/wasm-kernels.js";
import { FormatError } from "../errors.js";
import { positionalSource, readSmallText, type FileBytes, type FileSystem } from "./bytes.js";
import { setPlatform, type ParentPort, type Platform, type Thread, type ThreadScript, type Threads } from "./platform.js";

const errorCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/**
 * Opening never blocks (O_NONBLOCK: opening a FIFO for reading would wait for a writer forever),
 * and what was opened must be a regular file: a FIFO, a device (a link to /dev/zero), a socket or
 * a directory is refused by name before a byte is read.
 */
function openRegularFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = errorCode(e);
    throw new FormatError(file, code === "EISDIR" ? "is a directory, not a file" : `cannot open: ${code}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FormatError(file, `is ${kindOf(st)}, not a file`);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/** Positional reads on a regular file's descriptor, opened again after `close()` if read again. */
export function fileSource(file: string): FileBytes {
  const opened = openRegularFile(file);
  let fd: number | null = opened.fd;
  const size = opened.size;
  const open = (): number => openRegularFile(file).fd;
  return positionalSource(
    size,
    (dst, position) => readSync((fd ??= open()), dst, 0, dst.length, position),
    () => {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
    (at) => new FormatError(file, `unexpected end of file at byte ${at} (the file changed while being read?)`),
  );
}

const nodeFiles: FileSystem = {
  kind(path) {
    try {
      return statSync(path).isDirectory() ? "dir" : "file";
    } catch {
      return undefined;
    }
  },
  open: fileSource,
  readText: (path, maxBytes) => readSmallText(fileSource, path, maxBytes),
  join,
  dirname,
  basename,
};

/**
 * The worker scripts are entry points (src/entries/: this platform, then the thread's code), so
 * they are found by path, never imported from here. From dist/src/platform/ they are in
 * dist/src/entries/; when this module runs from TypeScript source (vitest), the build's copies
 * (npm test compiles first: a worker thread cannot load .ts on Node 20). When this module was
 * bundled into an app (esbuild --platform=node), there is nothing beside it: the scripts are the
 * installed package's, found as Node resolves "gpt2-reward" from where the bundle lies.
 */
const SCRIPTS: Record<ThreadScript, string> = { pool: "node-pool-worker.js", model: "node-model-worker.js" };

function workerScript(script: ThreadScript): URL {
  const name = SCRIPTS[script];
  const candidates = [new URL(`../entries/${name}`, import.meta.url), new URL(`../../dist/src/entries/${name}`, import.meta.url)];
  try {
    candidates.push(new URL(`./entries/${name}`, pathToFileURL(createRequire(import.meta.url).resolve("gpt2-reward"))));
  } catch {
    // not installed where this module lies
  }
  const found = candidates.find((url) => existsSync(fileURLToPath(url)));
  if (found) return found;
  throw new Error(
    `worker script ${name} not found beside ${fileURLToPath(new URL(".", import.meta.url))} nor in a gpt2-reward package installed there: ` +
      "an app bundled with gpt2-reward inside needs the package in node_modules beside it (or leave it out of the bundle: esbuild --external:gpt2-reward); in a checkout, run `npm run build`",
  );
}

/**
 * How a thread's end reaches a starter blocked in Atomics.wait (Thread.signalEnd): each thread
 * holds one port of a MessageChannel, its "lifeline", for as long as it lives; Node closes every
 * port of a thread when the thread ends (it exited, threw, ran out of memory or was terminated),
 * and the other port's 'close' event then fires in whatever thread holds it. That is this small
 * watcher thread, one per starting thread, which never blocks: on 'close' it writes the shared
 * word and wakes the waiters. (Tried: all four endings are seen within a few milliseconds.) Not
 * seen: a thread that ends in its first milliseconds, before it has read its workerData while its
 * starter is blocked (the lifeline is then still in a message its starter frees); the pool's start
 * deadline covers that.
 */
const WATCHER = `
const { parentPort } = require("node:worker_threads");
parentPort.on("message", ({ port, cell, index, value, wake }) => {
  port.on("close", () => {
    Atomics.store(cell, index, value);
    for (const i of wake) Atomics.notify(cell, i);
  });
});`;
let watcher: Worker | null = null;

/** Inside a worker: its lifeline, referenced here so that it lives exactly as long as the thread. */
let lifeline: MessagePort | null = null;

/**
 * A worker running the module at `url` (one of SCRIPTS; a test may start its own), which reads
 * `data` with parent().data.
 */
export function startThread(url: URL, data: unknown): Thread {
  const { port1, port2: watched } = new MessageChannel();
  // No node options for workers: `node -e <script>` would make each worker run the script again.
  // V8 flags (e.g. --experimental-wasm-relaxed-simd) are process-wide and reach workers anyway,
  // so every thread compiles the same wasm.
  const w = new Worker(url, { workerData: { data, lifeline: port1 }, transferList: [port1], execArgv: [] });
  return {
    postMessage: (m, transfer) => w.postMessage(m, transfer as never),
    onMessage: (l) => void w.on("message", l),
    onError: (l) => void w.on("error", l),
    onExit: (l) => void w.on("exit", l),
    signalEnd(cell, index, value, wake) {
      if (watcher === null) {
        watcher = new Worker(WATCHER, { eval: true, execArgv: [] });
        watcher.unref();
      }
      watcher.postMessage({ port: watched, cell, index, value, wake }, [watched]);
    },
    unref: () => w.unref(),
    ref: () => w.ref(),
    terminate: async () => void (await w.terminate()),
  };
}

const nodeThreads: Threads = {
  available: () => availableParallelism(),
  canShareMemory: () => true,
  start: (script, data) => startThread(workerScript(script), data),
  async parent(): Promise<ParentPort> {
    if (isMainThread || parentPort === null) throw new Error("internal: parent() called outside a worker thread");
    const port = parentPort;
    lifeline = (workerData as { lifeline: MessagePort }).lifeline;
    lifeline.unref(); // it only marks the thread as alive, never keeps it so
    return {
      data: (workerData as { data: unknown }).data,
      postMessage: (m, transfer) => port.postMessage(m, transfer as never),
      onMessage: (l) => void port.on("message", l),
      report: (message) => void process.stderr.write(`gpt2-reward: ${message}\n`),
    };
  },
};

export const nodePlatform: Platform = {
  name: "node",
  files: nodeFiles,
  sha256: async (bytes) => createHash("sha256").update(bytes).digest("hex"),
  threads: nodeThreads,
  /**
   * WebAssembly relaxed SIMD on Node 20. Its f32x4.relaxed_madd is a fused multiply-add on FMA
   * hardware, which makes our wasm matmul ~30% faster (measured here: 31 → 41 GFLOPS at the qkv
   * shape). It is a finished standard, on by default from V8 11.4 (Chrome 114, Node 22); Node 20's
   * V8 11.3 has the same implementation behind --experimental-wasm-relaxed-simd. So before compiling
   * the kernels we turn that flag on, once, if the engine does not already validate relaxed SIMD.
   * The flag only makes more modules valid; it changes nothing for modules that were valid before.
   */
  relaxedSimd() {
    if (process.env.GPT2_REWARD_RELAXED_SIMD === "0") return wasmRelaxedSimdSupported();
    if (!wasmRelaxedSimdSupported()) setFlagsFromString("--experimental-wasm-relaxed-simd");
    return wasmRelaxedSimdSupported();
  },
};

setPlatform(nodePlatform);

/** Node's relaxed-SIMD switch, for tests and benches that compile kernels without loading a model. */
export const enableRelaxedSimd = (): boolean => nodePlatform.relaxedSimd();
