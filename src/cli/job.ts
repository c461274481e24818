/**
 * A scoring job over a stream of input lines: tokenize each line, group lines into windows,
 * order each window by prefix, score it batch by batch, and emit one output line per input
 * line, in input order, as soon as its window is done. A window also closes early when the input
 * pauses (someone typing, a slow producer): lines already read never wait for lines not yet written.
 *
 * Our batches are packed (no padding tokens at all), so sorting by length would save nothing;
 * what saves work is a batch of texts that begin alike, whose common prefix the forward pass
 * computes once (best-of-N replies to one conversation): prefixOrder puts those next to each other.
 */
import { Gpt2RewardError } from "../errors.js";
import type { InputItem } from "./input.js";
import type { RewardModel } from "../model/async-model.js";
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, type ScoreOptions, type ScoreResult } from "../model/sync-model.js";
import { prefixOrder } from "../model/batch-plan.js";
import type { GPT2Config } from "../model/config.js";
import { totalmem } from "node:os";

export interface JobOptions extends ScoreOptions {
  /** Lines gathered before sorting and scoring; default 8 batches. */
  window?: number;
  /** Lines this job already wrote (resuming): its first `skip` lines are read past, not scored. */
  skip?: number;
  /**
   * `--shard I/N`: this job owns the input lines whose index is I modulo N (every N-th line,
   * from line I), and writes them under their global index; the other lines are read past.
   */
  shard?: { index: number; count: number };
  /** Called after each window with the number of input lines done, for progress. */
  onProgress?: (done: number) => void;
  /** When it fires, the job scores the lines it has already read, emits them and stops. */
  signal?: AbortSignal;
  /**
   * Most tokens one forward pass holds (≥ maxLength); a batch closes at `batchSize` texts or at
   * this many tokens, whichever comes first. Default: what memory can hold (batchTokenBudget).
   */
  maxBatchTokens?: number;
}

/** A pause in the input this long closes the window (ms): far above a pipe's gaps, below a person's. */
export const IDLE_FLUSH_MS = 50;

/** `line` and `extra` come from the input record (input.ts), for messages and pass-through fields. */
export type OutputRecord = (
  | { index: number; logits: number[]; tokens: number; truncated: boolean }
  | { index: number; error: string }
) & { line?: number; extra?: Record<string, unknown> };

interface Pending {
  index: number;
  line?: number;
  extra?: Record<string, unknown>;
  ids?: number[];
  truncated?: boolean;
  error?: string;
}

/**
 * Runs the job; `emit` receives records in input order. Returns the input lines read, the lines
 * this job owns (all of them, or its shard's), and how many of those failed in this run.
 *
 * One line never takes the job down: whatever goes wrong while a line is parsed, tokenized or
 * scored becomes that line's error record. A batch whose forward pass throws is scored again
 * text by text, so only the guilty text gets the error; and since every line gets a record,
 * `--resume` always moves past a line that fails, however often it is retried. Only when a
 * one-token text fails too is the model itself broken, and the job stops with that error.
 */
export async function runScoreJob(
  model: RewardModel, lines: AsyncIterable<InputItem>, emit: (r: OutputRecord) => void | Promise<void>, opts: JobOptions = {},
): Promise<{ lines: number; own: number; failed: number; interrupted: boolean }> {
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  model.checkMaxLength(maxLength);
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const batchTokens = opts.maxBatchTokens ?? checkBatchFits(model.config, batchSize, maxLength);
  if (!Number.isInteger(batchTokens) || batchTokens < maxLength) throw new Gpt2RewardError(`max batch tokens must be an integer of at least the max length ${maxLength}, got ${batchTokens}`);
  const window = opts.window ?? batchSize * 8;
  if (!Number.isInteger(window) || window < 1) throw new Gpt2RewardError(`window must be a positive integer, got ${window}`);
  const shard = opts.shard ?? { index: 0, count: 1 };
  if (!Number.isInteger(shard.count) || shard.count < 1 || !Number.isInteger(shard.index) || shard.index < 0 || shard.index >= shard.count) {
    throw new Gpt2RewardError(`shard must be I/N with 0 <= I < N, got ${shard.index}/${shard.count}`);
  }
  const skip = opts.skip ?? 0;
  let index = 0;
  let own = 0;
  let failed = 0;
  let pending: Pending[] = [];
  let pendingTokens = 0;

  /** Scores `batch` into `results`; on a failure, each text alone, so only the guilty one errs. */
  const scoreIsolated = async (batch: Pending[], results: Map<number, ScoreResult | string>): Promise<void> => {
    try {
      const scored = await model.scoreTokenized(batch.map((p) => ({ ids: p.ids!, truncated: p.truncated! })), { ...opts, batchSize: batch.length });
      batch.forEach((p, i) => results.set(p.index, scored[i]));
    } catch (e) {
      if (batch.length > 1) {
        for (const p of batch) await scoreIsolated([p], results);
        return;
      }
      await stopIfModelIsBroken(model, opts, e);
      results.set(batch[0].index, lineError(e));
    }
  };

  const flush = async () => {
    const ok = pending.filter((p) => p.ids !== undefined);
    // Texts that share a prefix into one batch; results go back by index, so output order is unchanged.
    const order = prefixOrder(ok.map((p) => p.ids!)).map((i) => ok[i]);
    const results = new Map<number, ScoreResult | string>();
    // Batches of up to batchSize texts and batchTokens tokens: many short texts fill a batch, a
    // few long ones close it early, and memory holds at most batchTokens tokens' activations.
    for (let b = 0; b < order.length; ) {
      let e = b + 1;
      for (let tokens = order[b].ids!.length; e < order.length && e - b < batchSize && tokens + order[e].ids!.length <= batchTokens; e++) tokens += order[e].ids!.length;
      await scoreIsolated(order.slice(b, e), results);
      b = e;
    }
    for (const p of pending) {
      const r = results.get(p.index);
      const from = { line: p.line, extra: p.extra };
      if (r !== undefined && typeof r !== "string") await emit({ index: p.index, logits: r.logits, tokens: r.tokens, truncated: r.truncated, ...from });
      else {
        failed++;
        await emit({ index: p.index, error: p.error ?? (r as string), ...from });
      }
    }
    opts.onProgress?.(pending[pending.length - 1]?.index + 1);
    pending = [];
    pendingTokens = 0;
  };

  // for await, written out so that a pause in the input can close the window.
  const input = lines[Symbol.asyncIterator]();
  let ended = false;
  try {
    for (;;) {
      const next = input.next();
      let r = pending.length > 0 ? await idleOr(next) : await next;
      if (r === IDLE) {
        await flush();
        r = await next;
      }
      if (r.done) {
        ended = true;
        break;
      }
      const i = index++;
      if (i % shard.count !== shard.index) continue;
      if (own++ < skip) continue;
      const prepared: Pending = { index: i, line: r.value.line, extra: r.value.extra, ...prepare(model, r.value, maxLength) };
      pending.push(prepared);
      pendingTokens += prepared.ids?.length ?? 0;
      // The window also closes at 8 batches' worth of tokens, so a large --batch-size of short
      // texts never holds more tokens than 8 full batches.
      if (pending.length >= window || pendingTokens >= 8 * batchTokens) await flush();
      if (opts.signal?.aborted) break;
    }
  } finally {
    if (!ended) await input.return?.(); // as a for-await loop left early would
  }
  if (pending.length > 0) await flush();
  return { lines: index, own, failed, interrupted: opts.signal?.aborted ?? false };
}

/** The 4 GiB a wasm32 memory can address: weights and a batch's activations share it. */
const MODEL_MEMORY = 4 * 2 ** 30;

/**
 * What memory holds for a forward pass, an estimate from the config (f32 weights): the bytes one
 * token's activations take, and the bytes left for them beside the weights, within the 4 GiB of
 * wasm32 and the machine's RAM. A batch's activations grow with its tokens (kernels allocate R
 * rows of each buffer; see src/model/gpt2.ts), not with its number of texts.
 */
function activationMemory(config: GPT2Config): { perToken: number; budget: number; where: string } {
  const { n_embd: C, n_inner, n_layer, vocab_size, n_positions, num_labels } = config;
  const weights = 4 * ((vocab_size + n_positions) * C + n_layer * (4 * C * C + 2 * C * n_inner + 9 * C + n_inner) + 2 * C + num_labels * C);
  // Per token: the residual stream, layernorm, attention and c_proj outputs (C each), q|k|v (3C), c_fc (n_inner), ids.
  const perToken = 4 * (7 * C + n_inner) + 4;
  const where = MODEL_MEMORY <= totalmem() ? "the 4 GiB WebAssembly memory" : "this machine's memory";
  return { perToken, budget: Math.min(MODEL_MEMORY, totalmem()) - weights, where };
}

/**
 * Checks, before any line is read, that a batch can be held: one text of maxLength tokens must
 * fit next to the weights, and so must batchSize texts of one token (no batch of that many texts
 * could ever be scored otherwise; without the check, `--batch-size 1e9` would read and tokenize
 * the whole input into one window). Returns the most tokens a batch may hold; the job closes a
 * batch there, so GPT-2 base takes `--batch-size 1024` of short texts and splits long ones.
 */
export function checkBatchFits(config: GPT2Config, batchSize: number, maxLength: number): number {
  const { perToken, budget, where } = activationMemory(config);
  const most = Math.max(0, Math.floor(budget / perToken));
  const room = `${where} leaves ${mib(Math.max(0, budget))} beside the weights, room for ${most} tokens in a batch`;
  if (most < maxLength) {
    throw new Gpt2RewardError(`--max-length ${maxLength} does not fit: a token takes ${kib(perToken)}, and ${room}; use a smaller --max-length`);
  }
  if (batchSize > most) {
    throw new Gpt2RewardError(`--batch-size ${batchSize} does not fit: each text takes at least one token of ${kib(perToken)}, and ${room}; use --batch-size ${most} or less`);
  }
  return most;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const kib = (bytes: number) => `${(bytes / 2 ** 10).toFixed(1)} KiB`;

/** Tokenizes one record; anything that goes wrong is that record's error. */
function prepare(model: RewardModel, item: InputItem, maxLength: number): { ids?: number[]; truncated?: boolean; error?: string } {
  try {
    switch (item.kind) {
      case "error":
        return { error: item.error };
      case "text":
        return model.tokenize(item.text, maxLength);
      case "ids":
        return model.prepareIds(item.ids, maxLength);
    }
  } catch (e) {
    return { error: lineError(e) };
  }
}

/** A user-level error keeps its message; anything else is a bug, said so, but only for this line. */
function lineError(e: unknown): string {
  if (e instanceof Gpt2RewardError) return e.message;
  const err = e as Error;
  return `internal error on this line (a bug, please report it): ${err?.name ?? "Error"}: ${String(err?.message ?? e).slice(0, 500)}`;
}

/**
 * After a text fails alone: a one-token text must still score, else the model itself is broken
 * (its threads died, its memory is gone) and every later line would fail the same way, so the
 * job stops with the original error instead of writing an error record for each of them.
 */
async function stopIfModelIsBroken(model: RewardModel, opts: ScoreOptions, e: unknown): Promise<void> {
  try {
    await model.scoreTokenized([{ ids: [0], truncated: false }], { ...opts, batchSize: 1 });
  } catch {
    throw e;
  }
}

const IDLE = Symbol("idle");

/** `next`, or IDLE if it has not settled within IDLE_FLUSH_MS (buffered input settles at once). */
async function idleOr<T>(next: Promise<T>): Promise<T | typeof IDLE> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<typeof IDLE>((resolve) => (timer = setTimeout(resolve, IDLE_FLUSH_MS, IDLE)));
  try {
    return await Promise.race([next, idle]);
  } finally {
    clearTimeout(timer);
  }
}
