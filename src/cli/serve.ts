/**
 * `serve`: the TEI-compatible HTTP server (src/serve/server.ts) over one model. It listens at
 * once (so /health says 503 while the model loads), and on SIGTERM or SIGINT drains: /health
 * turns 503, new connections are refused, every request already accepted is answered, exit 0.
 */
import { RewardModel } from "../model/async-model.js";
import { parsePoolingRule } from "../model/pooling.js";
import { SERVE_DEFAULTS, type ServeOptions } from "../serve/limits.js";
import { RewardServer } from "../serve/server.js";
import { defineCommand, positiveInt, UsageError, version } from "./args.js";
import { LOAD_OPTIONS, loadOptions, MAX_LENGTH_OPTION, MODEL_HELP, MODEL_OPTION, modelArg } from "./common.js";
import { labelling, outputLine } from "./record.js";

const d = SERVE_DEFAULTS;

export const serve = defineCommand({
  name: "serve",
  summary: "Serve a reward model over HTTP: Text Embeddings Inference's API, OpenRLHF's /get_reward, /score and /rank.",
  usage: "--model MODEL [options]",
  options: {
    model: MODEL_OPTION,
    host: { type: "string", value: "ADDR", default: d.host, help: "address to listen on (0.0.0.0 for every interface, as in a container)" },
    port: { type: "string", short: "p", value: "N", default: String(d.port), help: "port to listen on" },
    "max-length": MAX_LENGTH_OPTION,
    pooling: { type: "string", value: "RULE", default: d.pooling, help: "which token the score head reads: last-non-pad, before-first-pad or non-pad-count" },
    "max-batch-tokens": { type: "string", value: "N", default: String(d.maxBatchTokens), help: "tokens one forward pass packs, from any number of requests" },
    "max-batch-requests": { type: "string", value: "N", default: "no bound", help: "sequences one forward pass holds at most" },
    "max-concurrent-requests": { type: "string", value: "N", default: String(d.maxConcurrentRequests), help: "sequences accepted at once, queued or computing; beyond: 429" },
    "max-client-batch-size": { type: "string", value: "N", default: String(d.maxClientBatchSize), help: "items in one request; beyond: 422" },
    "payload-limit": { type: "string", value: "BYTES", default: String(d.payloadLimit), help: "request body size; beyond: 413" },
    "headers-timeout": { type: "string", value: "MS", default: String(d.headersTimeoutMs), help: "time a client has to send its request headers" },
    "request-timeout": { type: "string", value: "MS", default: String(d.requestTimeoutMs), help: "time a client has to send its whole request" },
    "auto-truncate": { type: "string", value: "true|false", default: "true", help: "truncate long inputs when a request does not say (TEI's truncate)" },
    "api-key": { type: "string", value: "KEY", default: "none (or $API_KEY)", help: "require Authorization: Bearer KEY on the scoring routes and /info" },
    "served-model-name": { type: "string", value: "NAME", default: "MODEL", help: "the name /info reports" },
    ...LOAD_OPTIONS,
  },
  details: `${MODEL_HELP}

Routes: POST /predict, /rerank, / and /invocations (Text Embeddings Inference), POST /get_reward
(OpenRLHF), POST /score (what gpt2-reward score writes, one line per input), POST /rank (best-of-N);
GET /health, /info, /metrics (Prometheus), /api-doc/openapi.json.`,
  examples: ["gpt2-reward serve -m ./reward-model --port 8080", "gpt2-reward serve -m ChaiML/gpt2_base_retry_and_continue_5m_reward_model --host 0.0.0.0"],
  async run(values, positionals) {
    const { model: spec, rest } = modelArg("serve", values.model, positionals, false);
    if (rest.length > 0) throw new UsageError(`serve takes no TEXT arguments, got ${JSON.stringify(rest[0])}`);
    const pooling = parsePoolingRule(values.pooling ?? d.pooling);
    if (!pooling) throw new UsageError(`--pooling must be last-non-pad, before-first-pad or non-pad-count, got "${values.pooling}"`);
    const autoTruncate = values["auto-truncate"] ?? "true";
    if (autoTruncate !== "true" && autoTruncate !== "false") throw new UsageError(`--auto-truncate must be true or false, got "${autoTruncate}"`);
    const port = values.port === undefined ? d.port : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer from 0 to 65535, got "${values.port}"`);
    const opts: ServeOptions = {
      ...d,
      host: values.host ?? d.host,
      port,
      maxLength: positiveInt("max-length", values["max-length"], d.maxLength),
      pooling,
      maxBatchTokens: positiveInt("max-batch-tokens", values["max-batch-tokens"], d.maxBatchTokens),
      maxBatchRequests: values["max-batch-requests"] === undefined ? null : positiveInt("max-batch-requests", values["max-batch-requests"], 1),
      maxConcurrentRequests: positiveInt("max-concurrent-requests", values["max-concurrent-requests"], d.maxConcurrentRequests),
      maxClientBatchSize: positiveInt("max-client-batch-size", values["max-client-batch-size"], d.maxClientBatchSize),
      payloadLimit: positiveInt("payload-limit", values["payload-limit"], d.payloadLimit),
      headersTimeoutMs: positiveInt("headers-timeout", values["headers-timeout"], d.headersTimeoutMs),
      requestTimeoutMs: positiveInt("request-timeout", values["request-timeout"], d.requestTimeoutMs),
      autoTruncate: autoTruncate === "true",
      apiKey: values["api-key"] ?? process.env.API_KEY ?? null,
      modelId: spec,
      servedModelName: values["served-model-name"] ?? null,
    };
    const log = (m: string) => process.stderr.write(`gpt2-reward: ${m}\n`);
    const server = new RewardServer(opts, {
      log,
      version: version(),
      scoreLine: (r, model) => outputLine(r, labelling(model.config, undefined)),
    });
    const address = await server.listen();
    log(`listening on http://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port} (loading ${spec})`);

    let model: RewardModel | null = null;
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log(`${signal}: draining (answering the requests already accepted)`);
        void server.drain().then(resolve);
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
    try {
      model = await RewardModel.fromPretrained(spec, loadOptions(values));
      server.ready(model);
      log(`ready: ${model.config.n_layer} layers, ${model.config.num_labels} label(s), ${model.kernels} kernels, ${model.threads} thread(s)`);
    } catch (e) {
      await server.drain();
      throw e;
    }
    await stopped;
    await model.close();
    log("stopped");
    return 0;
  },
});
