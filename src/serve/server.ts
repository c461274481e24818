/**
 * `gpt2-reward serve`: a Text Embeddings Inference–compatible HTTP server over one RewardModel,
 * on node:http (a framework would add a dependency for routing eight fixed paths; the limits that
 * matter — body size, header and body timeouts, draining — are node:http settings). It reads like
 * TEI's router: routes validate and tokenize, hand sequences to one batching queue
 * (src/serve/queue.ts), and format what comes back; every limit is in src/serve/limits.ts.
 *
 * Routes: TEI's POST /predict, /rerank, / and /invocations, GET /health, /info, /metrics and
 * /api-doc/openapi.json; OpenRLHF's POST /get_reward; ours: POST /score (what `gpt2-reward score`
 * writes, one line per input) and POST /rank (best-of-N).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Gpt2RewardError, InputError } from "../errors.js";
import type { RewardModel } from "../model/async-model.js";
import { idsItem, tokenizeText, type Item } from "../model/inputs.js";
import { encodeCapped, encodePair, encodePairWhole, type TruncationSide } from "../model/pairs.js";
import { rankResults, type RankOptions } from "../model/rank.js";
import type { ScoreResult } from "../model/sync-model.js";
import { encode } from "../model/tokenizer.js";
import type { ServeOptions } from "./limits.js";
import { Metrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { BackendError, BatchQueue, DroppedError, type Timing } from "./queue.js";
import {
  ApiError, asObject, descending, optionalBool, parseDirection, parsePredictInputs, predictions, activate,
  requiredString, requiredStrings, shapeError, TextError, type Direction, type Sequence,
} from "./tei.js";

/** One scored input of POST /score, as the CLI's job hands it to its output line. */
export type ScoreRecord = { index: number; logits: number[]; tokens: number; truncated: boolean } | { index: number; error: string };

export interface ServerHooks {
  /** The line `gpt2-reward score` writes for a record (the CLI passes its own); default: the record as JSON. */
  scoreLine?: (r: ScoreRecord, model: RewardModel) => string;
  /** Messages for the operator (stderr). */
  log?: (message: string) => void;
  /** The package version, for /info. */
  version?: string;
}

type State = "loading" | "ready" | "draining" | "closed";

interface Reply {
  status: number;
  json?: unknown;
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

interface Route {
  methods: string[];
  /** Needs the API key when one is set (TEI: everything but health, metrics and docs). */
  auth: boolean;
  /** Computes with the model: refused (503) while loading and draining. */
  model: boolean;
  handle(body: unknown, ctx: Context): Promise<Reply> | Reply;
}

interface Context {
  signal: AbortSignal;
  started: number;
}

/** A scored sequence, with what the response headers and metrics report. */
interface Scored {
  result: ScoreResult;
  timing: Timing;
}

export class RewardServer {
  private state: State = "loading";
  private model: RewardModel | null = null;
  private queue: BatchQueue | null = null;
  private readonly http: Server;
  readonly metrics: Metrics;
  /** Sequences accepted and not yet answered (max_concurrent_requests counts these, as TEI's permits). */
  private permitsInUse = 0;
  private active = 0;
  private drained: (() => void) | null = null;
  private readonly routes: Record<string, Route>;
  private readonly apiKeyDigest: Buffer | null;
  private brokenLogged = false;

  constructor(readonly opts: ServeOptions, private readonly hooks: ServerHooks = {}) {
    if (opts.maxLength > opts.maxBatchTokens) {
      throw new Gpt2RewardError(`--max-length ${opts.maxLength} is more than --max-batch-tokens ${opts.maxBatchTokens}: one text could never be scored`);
    }
    this.metrics = new Metrics(opts.maxLength);
    this.apiKeyDigest = opts.apiKey === null ? null : digest(`Bearer ${opts.apiKey}`);
    this.routes = this.routeTable();
    this.http = createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: opts.requestTimeoutMs,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        // How often the timeouts above are checked (Node's default, 30 s, would let a stalled client hold on that long).
        connectionsCheckingInterval: Math.min(1000, opts.headersTimeoutMs, opts.requestTimeoutMs),
      },
      (req, res) => void this.serve(req, res),
    );
  }

  /** Starts listening; /health answers 503 until `ready(model)`. */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(this.opts.port, this.opts.host, () => {
        this.http.off("error", reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  ready(model: RewardModel): void {
    if (model.config.n_positions < this.opts.maxLength) {
      throw new Gpt2RewardError(`${model.files[0]}: max length ${this.opts.maxLength} exceeds the model's n_positions ${model.config.n_positions}`);
    }
    this.model = model;
    this.queue = new BatchQueue(model, this.opts, this.metrics);
    if (this.state === "loading") this.state = "ready";
  }

  /**
   * Graceful stop (SIGTERM): /health turns 503, no new connection is accepted, idle keep-alive
   * connections close, and every request already accepted is answered; then it resolves.
   */
  async drain(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "draining";
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    if (this.active > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await this.queue?.idle();
    this.http.closeAllConnections();
    await closed;
    this.state = "closed";
  }

  private get healthy(): boolean {
    return this.state === "ready" && this.model !== null && !this.model.closed;
  }

  // ---- the request path: route, auth, body, handler, reply ----

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.active++;
    const ctl = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) ctl.abort();
    });
    const ctx: Context = { signal: ctl.signal, started: performance.now() };
    let reply: Reply;
    try {
      reply = await this.route(req, ctx);
    } catch (e) {
      reply = this.failure(e);
    }
    this.send(res, reply);
    this.active--;
    if (this.active === 0 && this.drained) this.drained();
  }

  private async route(req: IncomingMessage, ctx: Context): Promise<Reply> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const route = this.routes[path];
    if (!route) {
      req.resume();
      return { status: 404 };
    }
    if (!route.methods.includes(req.method ?? "")) {
      req.resume();
      return { status: 405, headers: { allow: route.methods.join(",") } };
    }
    if (route.auth && this.apiKeyDigest && !this.authorized(req)) {
      req.resume();
      return { status: 401 };
    }
    if (route.model && !this.healthy) {
      req.resume();
      throw new ApiError(503, "Unhealthy", this.state === "loading" ? "the model is loading" : this.state === "draining" ? "the server is shutting down" : "unhealthy");
    }
    const body = req.method === "POST" ? await this.readJson(req) : undefined;
    return route.handle(body, ctx);
  }

  /** `Authorization` must be exactly "Bearer <key>"; compared in constant time (digests of equal length). */
  private authorized(req: IncomingMessage): boolean {
    const given = req.headers.authorization;
    return typeof given === "string" && timingSafeEqual(digest(given), this.apiKeyDigest!);
  }

  /** The body, at most payloadLimit bytes, as JSON; TEI's framework errors otherwise (413, 415, 400). */
  private readJson(req: IncomingMessage): Promise<unknown> {
    const limit = this.opts.payloadLimit;
    const tooLarge = () => new TextError(413, "Failed to buffer the request body: length limit exceeded");
    const type = req.headers["content-type"] ?? "";
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
      req.resume();
      return Promise.reject(new TextError(415, "Expected request with `Content-Type: application/json`"));
    }
    if (Number(req.headers["content-length"] ?? 0) > limit) {
      req.resume();
      return Promise.reject(tooLarge());
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on("data", (chunk: Buffer) => {
        if (failed) return;
        size += chunk.length;
        if (size > limit) {
          failed = true;
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on("error", (e) => {
        failed = true;
        reject(new TextError(400, `Failed to buffer the request body: ${e.message}`));
      });
      req.on("end", () => {
        if (failed) return;
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch (e) {
          reject(new TextError(400, `Failed to parse the request body as JSON: ${(e as Error).message}`));
        }
      });
    });
  }

  private failure(e: unknown): Reply {
    if (e instanceof ApiError) return { status: e.status, json: { error: e.message, error_type: e.type } };
    if (e instanceof TextError) return { status: e.status, text: e.message };
    if (e instanceof BackendError || e instanceof DroppedError) return { status: 424, json: { error: `Backend error: ${e.message}`, error_type: "Backend" } };
    if (e instanceof Gpt2RewardError) return { status: 422, json: { error: e.message, error_type: "Validation" } };
    this.hooks.log?.(`internal error (a bug, please report it): ${(e as Error)?.stack ?? e}`);
    return { status: 500, json: { error: "internal error", error_type: "Backend" } };
  }

  private send(res: ServerResponse, r: Reply): void {
    if (res.destroyed) return;
    const headers: Record<string, string> = { ...r.headers };
    // While draining, keep-alive connections close after their answer, so a load balancer moves on.
    if (this.state === "draining" || this.state === "closed") headers.connection = "close";
    let body: string | undefined;
    if (r.json !== undefined) {
      body = JSON.stringify(r.json);
      headers["content-type"] = "application/json";
    } else if (r.text !== undefined) {
      body = r.text;
      headers["content-type"] = r.contentType ?? "text/plain; charset=utf-8";
    }
    res.writeHead(r.status, headers);
    res.end(body);
  }

  // ---- scoring: tokenize, take permits, queue ----

  /** Tokenizes one TEI sequence (a text or a pair) as HF's tokenizer does, with TEI's checks. */
  private encodeSequence(seq: Sequence, truncate: boolean, side: Direction): Item {
    const M = this.opts.maxLength;
    if (seq.every((s) => s === "")) throw new ApiError(400, "Empty", "Input validation error: `inputs` cannot be empty");
    try {
      if (truncate) {
        if (seq.length === 1) return encodeCapped(seq[0], M, side as TruncationSide);
        const p = encodePair(seq[0], seq[1], M, side as TruncationSide);
        return { ids: p.ids, truncated: p.truncated };
      }
      const chars = seq.reduce((n, s) => n + countChars(s), 0);
      if (chars > M * 250) throw new ApiError(422, "Validation", `Input validation error: \`inputs\` must have less than ${M * 250} characters. Given: ${chars}`);
      const ids = seq.length === 1 ? encode(seq[0]) : encodePairWhole(seq[0], seq[1]).ids;
      if (ids.length > M) throw new ApiError(422, "Validation", `Input validation error: \`inputs\` must have less than ${M} tokens. Given: ${ids.length}`);
      return { ids, truncated: false };
    } catch (e) {
      if (e instanceof InputError) throw new ApiError(422, "Tokenizer", `tokenizer error ${e.message}`);
      throw e;
    }
  }

  private checkBatchSize(n: number): void {
    if (n > this.opts.maxClientBatchSize) {
      this.metrics.count("te_request_failure", { err: "batch_size" });
      throw new ApiError(422, "Validation", `batch size ${n} > maximum allowed batch size ${this.opts.maxClientBatchSize}`);
    }
  }

  /** Takes a permit per sequence (429 when there are not enough), queues them, and waits for all. */
  private async score(items: Item[], ctx: Context): Promise<Scored[]> {
    if (this.permitsInUse + items.length > this.opts.maxConcurrentRequests) {
      this.metrics.count("te_request_failure", { err: "overloaded" });
      throw new ApiError(429, "Overloaded", "Model is overloaded");
    }
    this.permitsInUse += items.length;
    try {
      for (const it of items) this.metrics.observe("te_request_input_length", it.ids.length);
      return await Promise.all(this.queue!.append(items, ctx.signal));
    } catch (e) {
      if (e instanceof BackendError) {
        this.metrics.count("te_request_failure", { err: "inference" });
        // A model that closed itself (a thread of it died) fails everything from now on: /health
        // says 503 so that the orchestrator replaces this replica; say why, once.
        if (this.model!.closed && !this.brokenLogged) {
          this.brokenLogged = true;
          this.hooks.log?.(`the model stopped working: ${e.message}; /health answers 503 from now on`);
        }
      }
      throw e;
    } finally {
      this.permitsInUse -= items.length;
    }
  }

  /** TEI's x-* headers (milliseconds, per-item averages for a batch) and duration metrics. */
  private computeHeaders(scored: Scored[], ctx: Context, characters: number, tokenization: number): Record<string, string> {
    const total = (performance.now() - ctx.started) / 1000;
    const avg = (f: (s: Scored) => number) => scored.reduce((a, s) => a + f(s), 0) / Math.max(1, scored.length);
    const queue = avg((s) => s.timing.queue);
    const inference = avg((s) => s.timing.inference);
    for (const [name, v] of [["duration", total], ["tokenization_duration", tokenization], ["queue_duration", queue], ["inference_duration", inference]] as const) {
      this.metrics.observe(`te_request_${name}`, v);
    }
    const ms = (s: number) => String(Math.floor(s * 1000));
    return {
      "x-compute-type": "cpu",
      "x-compute-time": ms(total),
      "x-total-time": ms(total),
      "x-compute-characters": String(characters),
      "x-compute-tokens": String(scored.reduce((a, s) => a + s.result.tokens, 0)),
      "x-tokenization-time": ms(tokenization),
      "x-queue-time": ms(queue),
      "x-inference-time": ms(inference),
    };
  }

  // ---- the routes ----

  private routeTable(): Record<string, Route> {
    const health: Route = { methods: ["GET"], auth: false, model: false, handle: () => this.health() };
    const byModelType: Route = {
      methods: ["POST"], auth: true, model: true,
      handle: (body, ctx) => (this.model!.config.num_labels === 1 ? this.rerank(body, ctx) : this.predict(body, ctx)),
    };
    const post = (handle: Route["handle"]): Route => ({ methods: ["POST"], auth: true, model: true, handle });
    return {
      "/predict": post((b, c) => this.predict(b, c)),
      "/rerank": post((b, c) => this.rerank(b, c)),
      "/": { ...byModelType, methods: ["GET", "POST"], handle: (b, c) => (b === undefined ? this.health() : byModelType.handle(b, c)) },
      "/invocations": byModelType,
      "/get_reward": post((b, c) => this.getReward(b, c)),
      "/score": post((b, c) => this.scoreRoute(b, c)),
      "/rank": post((b, c) => this.rank(b, c)),
      "/health": health,
      "/ping": health,
      "/info": { methods: ["GET"], auth: true, model: false, handle: () => ({ status: 200, json: this.info() }) },
      "/metrics": { methods: ["GET"], auth: false, model: false, handle: () => ({ status: 200, text: this.metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8" }) },
      "/api-doc/openapi.json": { methods: ["GET"], auth: false, model: false, handle: () => ({ status: 200, json: openApiDocument(this.hooks.version ?? "0") }) },
    };
  }

  private health(): Reply {
    if (this.healthy) return { status: 200 };
    throw new ApiError(503, "Unhealthy", "unhealthy");
  }

  private info(): Record<string, unknown> {
    const config = this.model?.config;
    const labels = config?.labels ?? [];
    const id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
    const label2id = Object.fromEntries(labels.map((l, i) => [l, i]));
    return {
      model_id: this.opts.modelId,
      model_sha: null,
      model_dtype: "float32",
      served_model_name: this.opts.servedModelName ?? this.opts.modelId,
      model_type: labels.length === 1 ? { reranker: { id2label, label2id } } : { classifier: { id2label, label2id } },
      max_concurrent_requests: this.opts.maxConcurrentRequests,
      max_input_length: this.opts.maxLength,
      max_batch_tokens: this.opts.maxBatchTokens,
      max_batch_requests: this.opts.maxBatchRequests,
      max_client_batch_size: this.opts.maxClientBatchSize,
      auto_truncate: this.opts.autoTruncate,
      tokenization_workers: 1,
      version: this.hooks.version ?? null,
      sha: null,
      docker_label: null,
    };
  }

  /** The server's side is the model card's (left: a reward model judges the end of a conversation), where TEI's is right. */
  private truncation(o: Record<string, unknown>): { truncate: boolean; side: Direction } {
    return { truncate: optionalBool(o, "truncate") ?? this.opts.autoTruncate, side: parseDirection(o.truncation_direction, "left") };
  }

  private async predict(body: unknown, ctx: Context): Promise<Reply> {
    const o = asObject(body);
    const { batch, sequences } = parsePredictInputs(o.inputs);
    const { truncate, side } = this.truncation(o);
    const raw = optionalBool(o, "raw_scores") ?? false;
    if (batch) this.checkBatchSize(sequences.length);
    this.metrics.count("te_request_count", { method: batch ? "batch" : "single" });
    this.metrics.count("te_predict_count");
    const t0 = performance.now();
    const items = sequences.map((s) => this.encodeSequence(s, truncate, side));
    const tokenization = (performance.now() - t0) / 1000;
    const scored = await this.score(items, ctx);
    const labels = this.model!.config.labels;
    const preds = scored.map((s) => predictions(s.result.logits, labels, raw));
    this.metrics.count("te_request_success", { method: batch ? "batch" : "single" });
    this.metrics.count("te_predict_success");
    const chars = sequences.reduce((n, s) => n + s.reduce((m, t) => m + countChars(t), 0), 0);
    return { status: 200, json: batch ? preds : preds[0], headers: this.computeHeaders(scored, ctx, chars, tokenization) };
  }

  private async rerank(body: unknown, ctx: Context): Promise<Reply> {
    const o = asObject(body);
    const query = requiredString(o, "query");
    const texts = requiredStrings(o, "texts");
    const { truncate, side } = this.truncation(o);
    const raw = optionalBool(o, "raw_scores") ?? false;
    const returnText = optionalBool(o, "return_text") ?? false;
    if (texts.length === 0) throw new ApiError(400, "Empty", "`texts` cannot be empty");
    if (this.model!.config.num_labels !== 1) {
      this.metrics.count("te_request_failure", { err: "model_type" });
      throw new ApiError(424, "Backend", "Backend error: model is not a re-ranker model");
    }
    this.checkBatchSize(texts.length);
    this.metrics.count("te_request_count", { method: "batch" });
    const t0 = performance.now();
    const items = texts.map((t) => this.encodeSequence([query, t], truncate, side));
    const tokenization = (performance.now() - t0) / 1000;
    const scored = await this.score(items, ctx);
    const scores = scored.map((s) => activate(s.result.logits, raw)[0]);
    const ranked = descending(scores).map((i) => (returnText ? { index: i, text: texts[i], score: scores[i] } : { index: i, score: scores[i] }));
    this.metrics.count("te_request_success", { method: "batch" });
    const chars = countChars(query) * texts.length + texts.reduce((n, t) => n + countChars(t), 0);
    return { status: 200, json: ranked, headers: this.computeHeaders(scored, ctx, chars, tokenization) };
  }

  /** Texts scored as the CLI scores them: left truncation to --max-length; an empty text is a 400. */
  private encodeTexts(texts: string[]): Item[] {
    return texts.map((t, i) => {
      if (t === "") throw new ApiError(400, "Empty", `Input validation error: text ${i} is empty`);
      try {
        return tokenizeText(t, this.opts.maxLength);
      } catch (e) {
        if (e instanceof InputError) throw new ApiError(422, "Tokenizer", `tokenizer error text ${i}: ${e.message}`);
        throw e;
      }
    });
  }

  /**
   * OpenRLHF's remote reward model (openrlhf/cli/serve_rm.py): `{"query": [texts]}` →
   * `{"rewards", "scores", "extra_logs": {"dummy_scores"}}`, three copies of the same list (the
   * client reads `scores`, older clients `rewards`). The reward is the raw logit of a one-label
   * model, as serve_rm's value head gives it; a model with several labels ranks by the softmax
   * probability of its last label, as /rank does.
   */
  private async getReward(body: unknown, ctx: Context): Promise<Reply> {
    const o = asObject(body);
    const texts = requiredStrings(o, "query");
    if (texts.length === 0) throw new ApiError(400, "Empty", "`query` cannot be empty");
    this.checkBatchSize(texts.length);
    const scored = await this.score(this.encodeTexts(texts), ctx);
    const { scores } = rankResults(scored.map((s) => s.result), this.model!.labels, {});
    return { status: 200, json: { rewards: scores, scores, extra_logs: { dummy_scores: scores } } };
  }

  /**
   * What `gpt2-reward score` writes for each input, one JSON line each, in order:
   * `{"texts": [...]}` or `{"ids": [[...]]}`. As in the CLI, a bad input gets its own error line
   * and the others are scored.
   */
  private async scoreRoute(body: unknown, ctx: Context): Promise<Reply> {
    const o = asObject(body);
    if ((o.texts === undefined) === (o.ids === undefined)) throw shapeError("", "expected one of the fields `texts` or `ids`");
    const inputs: unknown[] = o.texts !== undefined ? requiredStrings(o, "texts") : asList(o.ids, "ids");
    this.checkBatchSize(inputs.length);
    const M = this.opts.maxLength;
    const vocab = this.model!.config.vocab_size;
    // The API's and the job's own preparation (src/model/inputs.ts): the same checks, the same truncation.
    const prepared = inputs.map((input): Item | string => {
      try {
        return typeof input === "string" ? tokenizeText(input, M) : idsItem(input, M, vocab);
      } catch (e) {
        if (e instanceof InputError) return e.message;
        throw e;
      }
    });
    const good = prepared.filter((p): p is Item => typeof p !== "string");
    const scored = good.length > 0 ? await this.score(good, ctx) : [];
    let k = 0;
    const line = this.hooks.scoreLine ?? ((r: ScoreRecord) => JSON.stringify(r));
    const lines = prepared.map((p, index) => {
      if (typeof p === "string") return line({ index, error: p }, this.model!);
      const { logits, tokens, truncated } = scored[k++].result;
      return line({ index, logits, tokens, truncated }, this.model!);
    });
    return { status: 200, text: lines.map((l) => l + "\n").join(""), contentType: "application/x-ndjson" };
  }

  /** Best-of-N: `{"context", "replies", "label"?, "pairwise"?}` → scores, order (best first), best, and each reply's result. */
  private async rank(body: unknown, ctx: Context): Promise<Reply> {
    const o = asObject(body);
    const context = requiredString(o, "context");
    const replies = requiredStrings(o, "replies");
    if (replies.length === 0) throw new ApiError(400, "Empty", "`replies` cannot be empty");
    const opts: RankOptions = {};
    if (o.label !== undefined) opts.label = o.label as string | number;
    if (o.pairwise !== undefined) opts.pairwise = optionalBool(o, "pairwise");
    // Checked before any work, with the API's messages.
    rankResults([], this.model!.labels, opts);
    this.checkBatchSize(replies.length);
    const scored = await this.score(this.encodeTexts(replies.map((r) => context + r)), ctx);
    const ranked = rankResults(scored.map((s) => s.result), this.model!.labels, opts);
    return { status: 200, json: ranked };
  }
}

function asList(v: unknown, name: string): unknown[] {
  if (!Array.isArray(v)) throw shapeError(name, "invalid type, expected a sequence");
  return v;
}

/** Unicode scalar values, as Rust's chars().count(). */
function countChars(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
