/**
 * The texts of the realistic workloads (issue 15), the same in every run and every process:
 *
 * - chat: 64 chat-length texts, lengths log-normal with a median of 100 tokens (σ = 1 in log
 *   space), left-truncated to 256 as the model card does; scored in input order, batches of 8.
 * - best-of-N: 32 conversations, each a 180–220-token context with 8 replies of 20–40 tokens,
 *   scored as the full texts context + reply (left-truncated to 256 too: a long context plus a
 *   long reply loses its first tokens, and with them the prefix it shares), in input order, a
 *   conversation's 8 replies one after the other: batches of 8 are conversations.
 *
 * Token ids are random, never the pad id, so every text is scored at its last token.
 */
import { randomIds, rng } from "./random.js";

export const WORKLOADS = ["best-of-n", "chat"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export const WORKLOAD_MAX_LENGTH = 256;
export const WORKLOAD_BATCH = 8;

/** A standard normal sample (Box–Muller). */
function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

const truncate = (ids: number[]) => (ids.length > WORKLOAD_MAX_LENGTH ? ids.slice(ids.length - WORKLOAD_MAX_LENGTH) : ids);
const between = (next: () => number, lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));

/** The workload's texts as token ids, already truncated, in input order. */
export function workloadTexts(name: WorkloadName): number[][] {
  if (name === "chat") {
    const next = rng(15);
    return Array.from({ length: 64 }, () => truncate(randomIds(next, Math.max(1, Math.round(100 * Math.exp(gaussian(next)))))));
  }
  const next = rng(16);
  return Array.from({ length: 32 }, () => {
    const context = randomIds(next, between(next, 180, 220));
    return Array.from({ length: 8 }, () => truncate([...context, ...randomIds(next, between(next, 20, 40))]));
  }).flat();
}
