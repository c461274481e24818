/**
 * The messages between the browser's RewardModel (src/index.browser.ts, on the page's thread) and
 * its model worker (src/entries/browser-model-worker.ts): plain data and Blobs, copied by
 * structured clone. Every request carries an id; the worker answers each, in order, with that id.
 */
import type { GPT2Config } from "./config.js";
import type { LoadReport } from "./weights.js";
import type { FetchOptions, NamedBlob, Progress } from "../hub/browser-models.js";

/** Where the model comes from: a folder URL (absolute), a Hub repo id, or picked files. */
export type Source = { url: string } | { repo: string } | { files: NamedBlob[] };

export interface WorkerLoadOptions {
  threads?: number;
  kernels?: "ts" | "wasm" | "auto";
  dtype?: "f32" | "f16" | "bf16";
  fetch: FetchOptions;
}

export interface WorkerScoreOptions {
  maxLength?: number;
  pooling?: "last-non-pad" | "before-first-pad" | "non-pad-count";
  batchSize?: number;
}

export type Request =
  | { id: number; op: "load"; source: Source; opts: WorkerLoadOptions }
  | { id: number; op: "score"; texts: string[]; opts: WorkerScoreOptions }
  | { id: number; op: "close" };

export interface LoadedInfo {
  config: GPT2Config;
  files: string[];
  loadReport: LoadReport;
  kernels: string;
  threads: number;
  /** Milliseconds from the request to a model ready to score (downloads included). */
  loadMs: number;
}

export interface WireError {
  name: string;
  message: string;
  file?: string;
  stack?: string;
  /** True for Gpt2RewardError and its kinds (a user's mistake or a bad file, not a bug). */
  user: boolean;
}

export type Reply =
  | { id: number; result: unknown }
  | { id: number; error: WireError }
  | { warning: string }
  | { progress: Progress };
