/**
 * The messages between the asynchronous `RewardModel` (src/model/async-model.ts) and its worker
 * (src/model/model-worker.ts): plain data (and a browser's Blobs), copied by structured clone, the
 * same on Node and in a browser. Every request carries an id; the worker answers each, in order,
 * with that id. Only where the model's files come from differs: a path on Node, a folder URL, a
 * Hub repo or picked files in a browser, which that platform's worker mounts first.
 */
import type { BrowserSource, Progress } from "../hub/browser-models.js";
import type { GPT2Config } from "./config.js";
import type { CheckedLoadOptions } from "./options.js";
import type { ScoreOptions, ScoreResult } from "./sync-model.js";
import type { LoadReport } from "./weights.js";

/** Where the worker finds the model: a path its files open (Node), or a browser's source. */
export type WorkerSource = { path: string } | BrowserSource;

export type Request =
  | { id: number; op: "load"; source: WorkerSource; opts: CheckedLoadOptions }
  | { id: number; op: "score"; texts: string[]; opts: ScoreOptions }
  | { id: number; op: "scoreIds"; ids: number[][]; opts: ScoreOptions }
  | { id: number; op: "scoreTokenized"; items: { ids: number[]; truncated: boolean }[]; opts: ScoreOptions }
  | { id: number; op: "close" };

/** What `load` answers: everything the caller shows about the model without asking again. */
export interface LoadedInfo {
  config: GPT2Config;
  files: string[];
  loadReport: LoadReport;
  kernels: string;
  threads: number;
  /** Milliseconds from the request to a model ready to score (a browser's downloads included). */
  loadMs: number;
}

/** An error crossing the thread boundary: its class name (to revive it as the same class) and message. */
export interface WireError {
  name: string;
  message: string;
  /** FormatError and its kinds: the file the message names. */
  file?: string;
  /** For errors that are not Gpt2RewardErrors (a bug): where it happened. */
  stack?: string;
  /** True for Gpt2RewardError and its kinds. */
  user: boolean;
}

export type Reply =
  | { id: number; result: LoadedInfo | ScoreResult[] | null }
  | { id: number; error: WireError }
  | { warning: string }
  | { progress: Progress };
