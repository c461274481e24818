/**
 * Every limit and default of the server in one place, named as Text Embeddings Inference names
 * them (its router/src/main.rs flags), so a TEI deployment's settings carry over.
 */
import type { PoolingRule } from "../model/pooling.js";

export interface ServeOptions {
  host: string;
  port: number;
  /** Sequences (texts or pairs) accepted at once, queued or computing; beyond: 429. */
  maxConcurrentRequests: number;
  /** Tokens one forward pass packs, from any number of requests. */
  maxBatchTokens: number;
  /** Sequences one forward pass holds at most (null: only the token bound). */
  maxBatchRequests: number | null;
  /** Items in one request (/predict batch, /rerank texts, /get_reward query, /score, /rank replies); beyond: 422. */
  maxClientBatchSize: number;
  /** Request body bytes; beyond: 413. */
  payloadLimit: number;
  /** A client must send its request headers within this (ms), else 408 and the connection closes. */
  headersTimeoutMs: number;
  /** ...and its whole request, body included, within this (ms): a stalled client cannot hold a slot. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (ms). */
  keepAliveTimeoutMs: number;
  /** When set, scoring routes and /info need `Authorization: Bearer <key>`. */
  apiKey: string | null;
  /** Truncate texts longer than maxLength when a request does not say (TEI ≥ 1.9: true). */
  autoTruncate: boolean;
  /** Tokens kept per sequence (the CLI's --max-length). */
  maxLength: number;
  pooling: PoolingRule;
  /** What /info calls the model. */
  modelId: string;
  servedModelName: string | null;
}

export const SERVE_DEFAULTS: ServeOptions = {
  host: "127.0.0.1",
  port: 8080,
  maxConcurrentRequests: 512,
  // TEI's default is 16384 tokens for a GPU. On a CPU a pass of 4096 tokens of GPT-2 base takes
  // ~10 s on 2 cores (~430 tokens/s), which a request queued behind it waits; 1024-token passes
  // scored more texts/s at 64 clients too (bench/serve.ts, the same run: 4.05 vs 3.03 texts/s),
  // with lower latency and 95 MiB less RSS.
  maxBatchTokens: 1024,
  maxBatchRequests: null,
  maxClientBatchSize: 32,
  payloadLimit: 2_000_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  apiKey: null,
  autoTruncate: true,
  maxLength: 256,
  pooling: "last-non-pad",
  modelId: "",
  servedModelName: null,
};
