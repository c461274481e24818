/**
 * The reward model as users call it: `await RewardModel.fromPretrained(...)`, then
 * `await model.score(texts)`. The weights and the forward pass live in a worker thread that hosts
 * a SyncRewardModel (src/model/model-worker.ts), so the caller's event loop keeps running while
 * a batch computes: a server answers health checks, a UI stays responsive, timers fire. (A
 * browser's main thread may not block at all, which is the other reason.) The pool's threads, if
 * any, work under the worker exactly as under a synchronous model, so the logits are the same
 * to the bit.
 *
 * Options and inputs are checked here, before a message is sent, so a mistake is reported at
 * once with the same words as the CLI's; the worker checks again (it is also a public class).
 *
 * The same class serves Node and browsers; what differs is injected: the platform starts the
 * worker (platform().threads), and where the weights come from is a `WorkerSource` the entry
 * point's worker knows how to mount (a path on Node; src/index.browser.ts loads from a folder URL,
 * a Hub repo or picked files).
 */
import { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError, ModelBrokenError, quote } from "../errors.js";
import { resolveModel } from "./resolve.js";
import { platform, type Thread } from "../platform/platform.js";
import type { GPT2Config } from "./config.js";
import { idItems, idsItem, idsProblem, tokenizeText, checkTexts, type Item } from "./inputs.js";
import type { Progress } from "../hub/browser-models.js";
import type { LoadedInfo, Reply, Request, WireError, WorkerSource } from "./model-protocol.js";
import { checkLoadOptions, checkMaxLength, checkScoreOptions, DEFAULT_MAX_LENGTH, type CheckedLoadOptions } from "./options.js";
import { checkRankOptions, rankResults, rankTexts, type RankOptions, type RankResult } from "./rank.js";
import type { LoadOptions, ScoreOptions, ScoreResult } from "./sync-model.js";
import type { LoadReport } from "./weights.js";

/** What a load reports as it goes. */
export interface LoadListeners {
  /** Warnings (unused tensors, NaN/Inf in weights, no threads without a cross-origin isolated page). */
  onWarning?: (message: string) => void;
  /** A browser's downloads (or reads from Cache Storage), file by file. */
  onProgress?: (p: Progress) => void;
}

/** Request without its id: the id is added when it is sent. */
type Call = Request extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

export class RewardModel {
  readonly config: GPT2Config;
  /** The files the model was read from. */
  readonly files: string[];
  readonly loadReport: LoadReport;
  /** The kernels in use: "ts" or "wasm". */
  readonly kernels: string;
  /** Threads computing each kernel call. */
  readonly threads: number;
  /** Milliseconds the load took in the worker (a browser's downloads included). */
  readonly loadMs: number;

  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Why the model refuses calls: closed by the caller, or its thread died. */
  private closedBecause: string | null = null;
  /** close() stops the thread itself: its exit is then no failure. */
  private terminating = false;

  protected constructor(private readonly thread: Thread, info: LoadedInfo) {
    this.config = info.config;
    this.files = info.files;
    this.loadReport = info.loadReport;
    this.kernels = info.kernels;
    this.threads = info.threads;
    this.loadMs = info.loadMs;
  }

  /** Label names in logit order. */
  get labels(): string[] {
    return this.config.labels;
  }

  /** True once `close()` was called or the worker thread died; every call then fails at once. */
  get closed(): boolean {
    return this.closedBecause !== null;
  }

  /**
   * Loads a model named like on the command line: a local folder or weights file, else a Hub
   * repo `owner/name[@revision]`, downloaded into (or found in) the Hugging Face cache.
   */
  static async fromPretrained(spec: string, opts: LoadOptions = {}): Promise<RewardModel> {
    checkLoadOptions(opts);
    if (typeof spec !== "string") throw new Gpt2RewardError(`the model must be a path or a Hub repo id, got ${typeof spec}`);
    return RewardModel.load(await resolveModel(spec, opts.hub), opts);
  }

  /** Loads a model from a folder (config.json + weights) or a weights file (config.json beside it). */
  static async load(path: string, opts: LoadOptions = {}): Promise<RewardModel> {
    const checked = checkLoadOptions(opts);
    if (typeof path !== "string") throw new Gpt2RewardError(`the model path must be a string, got ${quote(path)}`);
    return this.start({ path }, checked, opts);
  }

  /** Starts the worker (the platform's), asks it to load `source`, and waits for the model. */
  protected static async start(source: WorkerSource, checked: CheckedLoadOptions, listeners: LoadListeners): Promise<RewardModel> {
    const thread = platform().threads.start("model", null);
    // Until the model exists, the thread's messages go to this one load call.
    let settle: { resolve: (info: LoadedInfo) => void; reject: (e: Error) => void } | null = null;
    const loaded = new Promise<LoadedInfo>((resolve, reject) => (settle = { resolve, reject }));
    let model: RewardModel | null = null;
    let gone = false;
    const onGone = (reason: string) => {
      if (gone) return; // Node reports a crash twice: the error, then the exit
      gone = true;
      if (model) model.threadGone(reason);
      else settle!.reject(new Gpt2RewardError(`the model's worker thread stopped while loading (${reason})`));
    };
    thread.onMessage((message) => {
      const reply = message as Reply;
      if ("warning" in reply) listeners.onWarning?.(reply.warning);
      else if ("progress" in reply) listeners.onProgress?.(reply.progress);
      else if (model) model.receive(reply);
      else if ("error" in reply) settle!.reject(revive(reply.error));
      else settle!.resolve(reply.result as LoadedInfo);
    });
    thread.onError((e) => onGone(`it threw ${e.stack ?? e.message}`));
    thread.onExit((code) => onGone(`it exited with code ${code}`));
    thread.postMessage({ id: 0, op: "load", source, opts: checked } satisfies Request);
    try {
      model = new this(thread, await loaded);
    } catch (e) {
      gone = true;
      await thread.terminate();
      throw e;
    }
    thread.unref(); // idle: the model alone does not keep the process alive
    return model;
  }

  /** A text's ids after left truncation (computed here, on the caller's thread). Throws InputError for an empty text. */
  tokenize(text: string, maxLength = DEFAULT_MAX_LENGTH): Item {
    this.checkMaxLength(maxLength);
    return tokenizeText(text, maxLength);
  }

  /** A list of ids checked and left-truncated, as scoreIds prepares each (src/model/inputs.ts's idsItem). Throws InputError. */
  prepareIds(ids: unknown, maxLength = DEFAULT_MAX_LENGTH): Item {
    this.checkMaxLength(maxLength);
    return idsItem(ids, maxLength, this.config.vocab_size);
  }

  /** Why a list of ids cannot be scored, or null if it can. */
  checkIds(ids: unknown): string | null {
    return idsProblem(ids, this.config.vocab_size);
  }

  checkMaxLength(maxLength: number): void {
    checkMaxLength(maxLength, this.config.n_positions, this.files[0]);
  }

  /** Scores texts; results in input order. Rejects with an InputError naming the first bad text. */
  async score(texts: string[], opts: ScoreOptions = {}): Promise<ScoreResult[]> {
    this.checkOpen();
    checkScoreOptions(opts, this.config.n_positions, this.files[0]);
    // Tokenized in the worker too: a long text's BPE costs time that would block this thread.
    return this.call({ op: "score", texts: checkTexts(texts), opts: scoreOptions(opts) }) as Promise<ScoreResult[]>;
  }

  /** Scores pre-tokenized texts (ids are left-truncated to maxLength like texts). */
  async scoreIds(idLists: number[][], opts: ScoreOptions = {}): Promise<ScoreResult[]> {
    this.checkOpen();
    const { maxLength } = checkScoreOptions(opts, this.config.n_positions, this.files[0]);
    return this.scoreTokenized(idItems(idLists, maxLength, this.config.vocab_size), opts);
  }

  /** Scores already-truncated id lists in batches of batchSize. */
  async scoreTokenized(items: Item[], opts: ScoreOptions = {}): Promise<ScoreResult[]> {
    this.checkOpen();
    checkScoreOptions(opts, this.config.n_positions, this.files[0]);
    return this.call({ op: "scoreTokenized", items, opts: scoreOptions(opts) }) as Promise<ScoreResult[]>;
  }

  /**
   * Best-of-N: scores each reply as the text `context + reply`, exactly as `score` would, and
   * orders them best first (see src/model/rank.ts).
   */
  async rank(context: string, replies: string[], opts: RankOptions = {}): Promise<RankResult> {
    this.checkOpen();
    checkRankOptions(this.labels, opts);
    return rankResults(await this.score(rankTexts(context, replies), opts), this.labels, opts);
  }

  /**
   * Stops the worker thread after the calls already made have finished; later calls fail at once.
   * Calling it again does nothing.
   */
  async close(): Promise<void> {
    if (this.closedBecause !== null) return;
    try {
      await this.call({ op: "close" });
    } finally {
      this.closedBecause = "the model is closed";
      this.terminating = true;
      await this.thread.terminate();
    }
  }

  private checkOpen(): void {
    if (this.closedBecause !== null) throw new Gpt2RewardError(this.closedBecause);
  }

  private call(call: Call): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.ref(); // a pending call keeps the process alive, as any pending I/O does
      this.thread.postMessage({ ...call, id });
      // close() marks the model closed only after its own message is sent.
      if (call.op === "close") this.closedBecause = "the model is closed";
    });
  }

  private receive(reply: Exclude<Reply, { warning: string } | { progress: Progress }>): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.thread.unref();
    const error = "error" in reply ? revive(reply.error) : null;
    if (error) p.reject(error);
    else p.resolve((reply as { result: unknown }).result);
    // The worker can compute no more (one of its pool threads ended): as if it had died itself.
    if (error instanceof ModelBrokenError) {
      this.fail(error);
      this.terminating = true;
      void this.thread.terminate();
    }
  }

  /** The worker died (an uncaught error, a crash, or it was stopped from outside): fail every call, refuse the next. */
  private threadGone(reason: string): void {
    if (this.terminating) return;
    this.fail(new Gpt2RewardError(`the model's worker thread stopped (${reason}); the model is closed`));
  }

  /** Fails every call in flight with `error` and refuses the next ones with its message. */
  private fail(error: Gpt2RewardError): void {
    this.closedBecause = error.message;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** Only the three score options cross to the worker (a caller's object may hold anything else, even functions). */
function scoreOptions(opts: ScoreOptions): ScoreOptions {
  const { maxLength, pooling, batchSize } = opts;
  return { maxLength, pooling, batchSize };
}

const REVIVE: Record<string, { prototype: Gpt2RewardError }> = { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError, ModelBrokenError };

/** The worker's error as the same class here, so `instanceof InputError` works for API users. */
function revive(e: WireError): Error {
  if (!e.user) {
    const err = new Error(`internal error in the model's worker thread (a bug, please report it): ${e.message}`);
    err.stack = e.stack;
    return err;
  }
  const err = e.name === "InputError" ? new InputError(e.message) : new Gpt2RewardError(e.message);
  const cls = REVIVE[e.name];
  if (cls && e.name !== "InputError") Object.setPrototypeOf(err, cls.prototype);
  err.name = e.name;
  if (e.file !== undefined) (err as Gpt2RewardError & { file?: string }).file = e.file;
  return err;
}
