/**
 * gpt2-reward in a browser: the same API as in Node, `await RewardModel.load(x)` then
 * `await model.score(texts)`, with the model in a Web Worker so the page's thread never blocks.
 * `x` is a folder URL ("https://host/models/demo/", or relative to the page: "./demo/"), a Hugging
 * Face repo id ("owner/name" or "owner/name@revision"), or the Files a user picked or dropped
 * (config.json + model.safetensors or pytorch_model.bin, shards too). Downloads are kept in Cache
 * Storage, so a second visit loads offline. Threads need a cross-origin isolated page (COOP
 * same-origin + COEP require-corp); otherwise the model computes on one thread.
 */
import "./platform/browser.js";
import { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError } from "./errors.js";
import type { GPT2Config } from "./model/config.js";
import type { LoadReport } from "./model/weights.js";
import { looksLikeRepoId, type FetchOptions, type Progress } from "./hub/browser-models.js";
import type { LoadedInfo, Reply, Request, Source, WireError, WorkerScoreOptions } from "./model/browser-protocol.js";
import { platform, type Thread } from "./platform/platform.js";

export { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError };
export type { Progress, FetchOptions };

export interface LoadOptions extends FetchOptions {
  /** Threads computing each kernel call. Default: all cores when the page is cross-origin isolated, else 1. */
  threads?: number;
  /** "wasm" (WebAssembly SIMD), "ts" (plain TypeScript) or "auto" (wasm where the engine has SIMD). */
  kernels?: "ts" | "wasm" | "auto";
  /** Conv1D weights in memory: "f32" (default), or "f16"/"bf16" for a checkpoint that stores them so. */
  dtype?: "f32" | "f16" | "bf16";
  /** Called as files download (or are read from the cache). */
  onProgress?: (p: Progress) => void;
  /** Called with warnings (unused tensors, NaN/Inf in weights, no threads without isolation). */
  onWarning?: (message: string) => void;
}

export type ScoreOptions = WorkerScoreOptions;

export interface ScoreResult {
  /** One value per label (config num_labels / id2label). */
  logits: number[];
  /** Tokens the model saw (after truncation). */
  tokens: number;
  /** True when the text was longer than maxLength tokens and its beginning was dropped. */
  truncated: boolean;
}

/** What a model is loaded from: a folder URL, a Hub repo id, or picked Files. */
export type ModelSource = string | URL | ArrayLike<File> | Iterable<File>;

export class RewardModel {
  readonly config: GPT2Config;
  readonly files: string[];
  readonly loadReport: LoadReport;
  /** The kernels in use: "ts" or "wasm". */
  readonly kernels: string;
  readonly threads: number;
  /** Milliseconds the load took, downloads included. */
  readonly loadMs: number;

  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closedBecause: string | null = null;

  private constructor(private readonly worker: Thread, info: LoadedInfo) {
    this.config = info.config;
    this.files = info.files;
    this.loadReport = info.loadReport;
    this.kernels = info.kernels;
    this.threads = info.threads;
    this.loadMs = info.loadMs;
    worker.onMessage((m) => this.receive(m as Reply));
    worker.onError((e) => this.gone(e.message));
  }

  /** Label names in logit order. */
  get labels(): string[] {
    return this.config.labels;
  }

  static async load(source: ModelSource, opts: LoadOptions = {}): Promise<RewardModel> {
    const worker = platform().threads.start("model", null);
    const { threads, kernels, dtype, onProgress, onWarning, ...fetchOpts } = opts;
    const request: Request = { id: 0, op: "load", source: toSource(source), opts: { threads, kernels, dtype, fetch: fetchOpts } };
    const info = await new Promise<LoadedInfo>((resolve, reject) => {
      worker.onMessage((m) => {
        const reply = m as Reply;
        if ("progress" in reply) onProgress?.(reply.progress);
        else if ("warning" in reply) onWarning?.(reply.warning);
        else if ("error" in reply) reject(revive(reply.error));
        else resolve(reply.result as LoadedInfo);
      });
      worker.onError((e) => reject(new Gpt2RewardError(`the model's worker stopped while loading: ${e.message}`)));
      worker.postMessage(request);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    return new RewardModel(worker, info);
  }

  /** Scores texts; results in input order. Rejects with an InputError naming the first bad text. */
  async score(texts: string[], opts: ScoreOptions = {}): Promise<ScoreResult[]> {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) throw new InputError("texts must be an array of strings");
    const { maxLength, pooling, batchSize } = opts;
    return (await this.call({ op: "score", texts, opts: { maxLength, pooling, batchSize } })) as ScoreResult[];
  }

  /** Stops the worker (and its threads); later calls fail at once. */
  async close(): Promise<void> {
    if (this.closedBecause !== null) return;
    try {
      await this.call({ op: "close" });
    } finally {
      this.closedBecause = "the model is closed";
      await this.worker.terminate();
    }
  }

  private call(call: { op: "score"; texts: string[]; opts: ScoreOptions } | { op: "close" }): Promise<unknown> {
    if (this.closedBecause !== null) return Promise.reject(new Gpt2RewardError(this.closedBecause));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...call, id });
    });
  }

  private receive(reply: Reply): void {
    // Progress and warnings go to the listener load() installed, which stays.
    if ("progress" in reply || "warning" in reply) return;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if ("error" in reply) p.reject(revive(reply.error));
    else p.resolve(reply.result);
  }

  private gone(reason: string): void {
    this.closedBecause = `the model's worker stopped (${reason}); the model is closed`;
    for (const p of this.pending.values()) p.reject(new Gpt2RewardError(this.closedBecause));
    this.pending.clear();
  }
}

/**
 * A string is a URL when it has a scheme, starts with "/", "./" or "../", or ends with "/";
 * otherwise "owner/name[@revision]" is a Hub repo id. Relative URLs resolve against the page.
 */
function toSource(source: ModelSource): Source {
  if (source instanceof URL) return { url: source.href };
  if (typeof source === "string") {
    const isUrl = /^[a-z][a-z0-9+.-]*:/i.test(source) || /^\.{0,2}\//.test(source) || source.endsWith("/");
    if (!isUrl && looksLikeRepoId(source)) return { repo: source };
    if (!isUrl) throw new Gpt2RewardError(`${JSON.stringify(source)} is neither a Hub repo id (owner/name) nor a folder URL (ending in "/")`);
    return { url: new URL(source, globalThis.document?.baseURI ?? globalThis.location?.href).href };
  }
  const files = Array.from(source as ArrayLike<File>);
  if (!files.every((f) => f instanceof Blob && typeof f.name === "string")) throw new Gpt2RewardError("expected a folder URL, a Hub repo id, or a list of Files");
  return { files: files.map((f) => ({ name: f.name, blob: f })) };
}

const KINDS: Record<string, { prototype: Gpt2RewardError }> = { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError };

/** The worker's error as the same class here, so `instanceof FormatError` works. */
function revive(e: WireError): Error {
  if (!e.user) {
    const err = new Error(`internal error in the model's worker (a bug, please report it): ${e.message}`);
    err.stack = e.stack;
    return err;
  }
  const err = new Gpt2RewardError(e.message);
  Object.setPrototypeOf(err, (KINDS[e.name] ?? Gpt2RewardError).prototype);
  err.name = e.name;
  if (e.file !== undefined) (err as Gpt2RewardError & { file?: string }).file = e.file;
  return err;
}
