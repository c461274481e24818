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
import { Gpt2RewardError, InputError } from "../errors.js";
import type { InputItem } from "./input.js";
import type { RewardModel } from "../model/async-model.js";
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, type ScoreOptions } from "../model/sync-model.js";
import { prefixOrder } from "../model/batch-plan.js";

export interface JobOptions extends ScoreOptions {
  /** Lines gathered before sorting and scoring; default 8 batches. */
  window?: number;
  /** Skip input lines with index < startIndex (resuming a job). */
  startIndex?: number;
  /** Called after each window with the number of lines done, for progress. */
  onProgress?: (done: number) => void;
  /** When it fires, the job scores the lines it has already read, emits them and stops. */
  signal?: AbortSignal;
}

/** A pause in the input this long closes the window (ms): far above a pipe's gaps, below a person's. */
export const IDLE_FLUSH_MS = 50;

/** `line` and `extra` come from the input record (input.ts), for messages and pass-through fields. */
export type OutputRecord = (
  | { index: number; logits: number[]; tokens: number; truncated: boolean }
  | { index: number; error: string }
) & { line?: number; extra?: Record<string, unknown> };

/** Runs the job; `emit` receives records in input order. Returns how many lines failed. */
export async function runScoreJob(
  model: RewardModel, lines: AsyncIterable<InputItem>, emit: (r: OutputRecord) => void | Promise<void>, opts: JobOptions = {},
): Promise<{ lines: number; failed: number; interrupted: boolean }> {
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  model.checkMaxLength(maxLength);
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const window = opts.window ?? batchSize * 8;
  if (!Number.isInteger(window) || window < 1) throw new Gpt2RewardError(`window must be a positive integer, got ${window}`);
  let index = 0;
  let failed = 0;
  let pending: { index: number; line?: number; extra?: Record<string, unknown>; ids?: number[]; truncated?: boolean; error?: string }[] = [];

  const flush = async () => {
    const ok = pending.filter((p) => p.ids !== undefined);
    // Texts that share a prefix into one batch; results go back by index, so output order is unchanged.
    const order = prefixOrder(ok.map((p) => p.ids!)).map((i) => ok[i]);
    const results = await model.scoreTokenized(order.map((p) => ({ ids: p.ids!, truncated: p.truncated! })), opts);
    const byIndex = new Map(order.map((p, i) => [p.index, results[i]]));
    for (const p of pending) {
      const r = byIndex.get(p.index);
      const from = { line: p.line, extra: p.extra };
      if (r) await emit({ index: p.index, logits: r.logits, tokens: r.tokens, truncated: r.truncated, ...from });
      else {
        failed++;
        await emit({ index: p.index, error: p.error!, ...from });
      }
    }
    opts.onProgress?.(pending[pending.length - 1]?.index + 1);
    pending = [];
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
      if (i < (opts.startIndex ?? 0)) continue;
      pending.push({ index: i, line: r.value.line, extra: r.value.extra, ...prepare(model, r.value, maxLength) });
      if (pending.length >= window) await flush();
      if (opts.signal?.aborted) break;
    }
  } finally {
    if (!ended) await input.return?.(); // as a for-await loop left early would
  }
  if (pending.length > 0) await flush();
  return { lines: index, failed, interrupted: opts.signal?.aborted ?? false };
}

function prepare(model: RewardModel, item: InputItem, maxLength: number): { ids?: number[]; truncated?: boolean; error?: string } {
  try {
    switch (item.kind) {
      case "error":
        return { error: item.error };
      case "text":
        return model.tokenize(item.text, maxLength);
      case "ids": {
        const problem = model.checkIds(item.ids);
        if (problem) return { error: problem };
        const ids = item.ids;
        return ids.length > maxLength ? { ids: ids.slice(ids.length - maxLength), truncated: true } : { ids, truncated: false };
      }
    }
  } catch (e) {
    if (e instanceof InputError) return { error: e.message };
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
