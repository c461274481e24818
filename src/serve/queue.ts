/**
 * One queue between the routes and the model, shaped like Text Embeddings Inference's
 * core/src/queue.rs: every route turns its request into tokenized sequences and appends them
 * here; whenever the model is free, the next batch is whatever is queued, taken from the front
 * until it would exceed maxBatchTokens (or maxBatchRequests), and goes to the model as one
 * packed forward pass. No timer waits for a batch to fill: a lone request is computed at once,
 * and requests that arrive while a batch computes are packed into the next one. The model
 * packs texts without padding, so a text's logits do not depend on its batch: each result is
 * bit-identical to the CLI's.
 *
 * One batch at a time: the model has one worker thread (its pool threads work inside each
 * pass), and forming the next batch when the model is free, rather than ahead, lets it take
 * everything that arrived meanwhile.
 */
import type { Item } from "../model/inputs.js";
import type { PoolingRule } from "../model/pooling.js";
import type { ScoreOptions, ScoreResult } from "../model/sync-model.js";
import type { Metrics } from "./metrics.js";

/** What the queue needs of a model: RewardModel.scoreTokenized. */
export interface Scorer {
  scoreTokenized(items: Item[], opts: ScoreOptions): Promise<ScoreResult[]>;
}

export interface Timing {
  /** Seconds in the queue before its batch started. */
  queue: number;
  /** Seconds its batch computed. */
  inference: number;
}

interface Entry {
  item: Item;
  queuedAt: number;
  /** Set when the client went away: the entry is dropped instead of computed. */
  signal?: AbortSignal;
  resolve: (r: { result: ScoreResult; timing: Timing }) => void;
  reject: (e: Error) => void;
}

/** The model failed a batch: every request in it gets this (424, as TEI's backend errors). */
export class BackendError extends Error {}

/** The client disconnected before its sequence was batched. */
export class DroppedError extends Error {}

export class BatchQueue {
  private entries: Entry[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly model: Scorer,
    private readonly opts: { maxBatchTokens: number; maxBatchRequests: number | null; pooling: PoolingRule },
    private readonly metrics: Metrics,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  /** Appends sequences; each promise settles when its sequence is scored (or its batch fails). */
  append(items: Item[], signal?: AbortSignal): Promise<{ result: ScoreResult; timing: Timing }>[] {
    const promises = items.map(
      (item) => new Promise<{ result: ScoreResult; timing: Timing }>((resolve, reject) => {
        this.entries.push({ item, queuedAt: performance.now(), signal, resolve, reject });
      }),
    );
    this.metrics.gauge("te_queue_size", this.entries.length);
    this.next();
    return promises;
  }

  /** Resolves once nothing is queued or computing (a draining server waits for this). */
  idle(): Promise<void> {
    if (!this.running && this.entries.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The front of the queue, up to the token and request bounds; entries whose client left are dropped. */
  private nextBatch(): Entry[] {
    const batch: Entry[] = [];
    let tokens = 0;
    while (this.entries.length > 0) {
      const e = this.entries[0];
      if (e.signal?.aborted) {
        this.entries.shift();
        this.metrics.count("te_request_failure", { err: "dropped" });
        e.reject(new DroppedError("the client went away"));
        continue;
      }
      // A sequence always fits alone: maxLength ≤ maxBatchTokens is checked at start.
      if (batch.length > 0 && tokens + e.item.ids.length > this.opts.maxBatchTokens) break;
      this.entries.shift();
      batch.push(e);
      tokens += e.item.ids.length;
      if (this.opts.maxBatchRequests !== null && batch.length >= this.opts.maxBatchRequests) break;
    }
    if (batch.length > 0) {
      this.metrics.observe("te_batch_next_size", batch.length);
      this.metrics.observe("te_batch_next_tokens", tokens);
    }
    this.metrics.gauge("te_queue_size", this.entries.length);
    return batch;
  }

  private next(): void {
    if (this.running) return;
    const batch = this.nextBatch();
    if (batch.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    this.running = true;
    const started = performance.now();
    const items = batch.map((e) => e.item);
    this.model.scoreTokenized(items, { pooling: this.opts.pooling, batchSize: items.length }).then(
      (results) => {
        const inference = (performance.now() - started) / 1000;
        batch.forEach((e, i) => e.resolve({ result: results[i], timing: { queue: (started - e.queuedAt) / 1000, inference } }));
      },
      (err: Error) => {
        const failure = new BackendError(err.message);
        for (const e of batch) e.reject(failure);
      },
    ).finally(() => {
      this.running = false;
      this.next();
    });
  }
}
