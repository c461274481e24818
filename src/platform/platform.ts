/**
 * What differs between Node and a browser, as one small interface per difference: reading a
 * file's bytes, hashing, starting threads and turning on relaxed SIMD.
 * The entry point installs an implementation (src/index.ts: src/platform/node.ts;
 * src/index.browser.ts: src/platform/browser.ts) and everything else asks `platform()`, so the
 * model, the formats and the pool never ask "am I in a browser?" (the way transformers.js keeps
 * file access in utils/hub.js and runtime choices in backends/).
 */
import type { FileSystem } from "./bytes.js";

export interface Platform {
  readonly name: "node" | "browser";
  /** Files by path (in a browser: the Blobs and Files mounted by the model's worker). */
  readonly files: FileSystem;
  /** Lower-case hex SHA-256 of `bytes`. */
  sha256(bytes: Uint8Array): Promise<string>;
  readonly threads: Threads;
  /**
   * Makes relaxed SIMD available to the wasm kernels where the engine can (Node 20 needs a V8 flag,
   * set once before the kernels compile) and says whether it is; GPT2_REWARD_RELAXED_SIMD=0 (Node)
   * keeps it off.
   */
  relaxedSimd(): boolean;
}

/**
 * Worker scripts a platform knows how to start: "pool" runs src/run/pool-worker.ts, "model"
 * src/model/model-worker.ts, each behind its entry point in src/entries/ (which installs the platform).
 */
export type ThreadScript = "pool" | "model";

export interface Threads {
  /** Threads kernels may use by default: the cores; 1 where memory cannot be shared between threads. */
  available(): number;
  /** True if a WebAssembly.Memory can be shared with threads (in a browser: crossOriginIsolated). */
  canShareMemory(): boolean;
  /** Starts a worker running `script`, which reads `data` with `parent().data`. */
  start(script: ThreadScript, data: unknown): Thread;
  /** Inside a worker: what its starter passed, and the way back. */
  parent(): Promise<ParentPort>;
}

/**
 * What a message may hand over instead of copying. Only buffers, named here rather than as the
 * DOM's `Transferable`, so that our published types compile without the DOM lib.
 */
export type Transfer = ArrayBuffer;

export interface Thread {
  postMessage(message: unknown, transfer?: Transfer[]): void;
  onMessage(listener: (message: unknown) => void): void;
  /** An uncaught error in the thread (it is then gone). */
  onError(listener: (error: Error) => void): void;
  /**
   * The thread ended: it exited, crashed or was stopped (Node). A browser Worker has no such event;
   * there an uncaught error (onError) is how a dead worker shows.
   */
  onExit(listener: (code: number) => void): void;
  /**
   * For a starter that blocks in Atomics.wait on this thread (the pool, during a kernel call): it
   * cannot receive onError/onExit then, as they wait for its event loop. When this thread ends, for
   * any reason, another thread that never blocks stores `value` into `cell[index]` and notifies the
   * waiters on each `cell[i]`, i in `wake`. Node: see src/platform/node.ts. A browser Worker gives
   * no sign of its end to anyone but its starter: there this does nothing.
   */
  signalEnd(cell: Int32Array, index: number, value: number, wake: readonly number[]): void;
  /** A pool thread must never keep a process alive on its own; the model's thread does while a call is pending. */
  unref(): void;
  ref(): void;
  terminate(): Promise<void>;
}

export interface ParentPort {
  readonly data: unknown;
  postMessage(message: unknown, transfer?: Transfer[]): void;
  onMessage(listener: (message: unknown) => void): void;
  /** Reports an error in a thread whose starter may be blocked waiting for it (stderr / console). */
  report(message: string): void;
}

let current: Platform | undefined;

export function setPlatform(p: Platform): void {
  current = p;
}

export function platform(): Platform {
  if (current === undefined) {
    throw new Error("internal: no platform installed; import gpt2-reward through its entry point (or src/platform/node.js first)");
  }
  return current;
}
