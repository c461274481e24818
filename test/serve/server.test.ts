/**
 * The HTTP server on 127.0.0.1: every route's shapes and statuses against TEI's (notes in
 * src/serve/tei.ts), results identical to the CLI's and to the model alone, limits (429, 413,
 * 422, timeouts, API key), and a SIGTERM drain that loses no request in flight.
 */
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RewardModel } from "../../src/model/async-model.js";
import { encodePair, encodeCapped } from "../../src/model/pairs.js";
import { sigmoid } from "../../src/model/rank.js";
import { encode } from "../../src/model/tokenizer.js";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { SERVE_DEFAULTS, type ServeOptions } from "../../src/serve/limits.js";
import { RewardServer } from "../../src/serve/server.js";
import { CLI, FIXTURES, runCli } from "../helpers/cli.js";

const demo = join(FIXTURES, "models", "demo");
const threeLabels = join(FIXTURES, "models", "bf16-3label");
const TEXTS = ["User: hi\nBot: hello!", "User: hi\nBot: go away", "User: tell me a joke\nBot: Why did the chicken cross the road? To get to the other side.", "a"];

async function start(modelPath: string, opts: Partial<ServeOptions> = {}) {
  const server = new RewardServer({ ...SERVE_DEFAULTS, port: 0, modelId: modelPath, ...opts }, { version: "test" });
  const { port } = await server.listen();
  const base = `http://127.0.0.1:${port}`;
  const model = await RewardModel.load(modelPath, { threads: 1 });
  return { server, model, base, port };
}

async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, text, json: r.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : undefined, headers: r.headers };
}

describe("the server with a one-label reward model (TEI's reranker type)", async () => {
  const { server, model, base } = await start(demo, { maxClientBatchSize: 8 });
  const sync = SyncRewardModel.load(demo, { threads: 1 });
  afterAll(async () => {
    await server.drain();
    await model.close();
    await sync.close();
  });

  it("answers /health 503 while loading, then 200 with an empty body", async () => {
    let r = await fetch(base + "/health");
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ error: "unhealthy", error_type: "Unhealthy" });
    expect((await post(base, "/predict", { inputs: "hi" })).status).toBe(503);
    server.ready(model);
    r = await fetch(base + "/health");
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("");
  });

  it("/predict: a string gives one sorted {score, label} list, sigmoid of the logit as the model gives it", async () => {
    const r = await post(base, "/predict", { inputs: TEXTS[0] });
    expect(r.status).toBe(200);
    const [alone] = sync.score([TEXTS[0]]);
    expect(r.json).toEqual([{ score: sigmoid(alone.logits[0]), label: "LABEL_0" }]);
    expect(r.headers.get("x-compute-tokens")).toBe(String(alone.tokens));
    expect(r.headers.get("x-compute-characters")).toBe(String([...TEXTS[0]].length));
    const raw = await post(base, "/predict", { inputs: TEXTS[0], raw_scores: true });
    expect(raw.json).toEqual([{ score: alone.logits[0], label: "LABEL_0" }]);
  });

  it("/predict: inputs forms as TEI reads them (a 2-list is one pair; a list of lists is a batch)", async () => {
    const one = await post(base, "/predict", { inputs: [TEXTS[1]], raw_scores: true });
    expect(one.json).toEqual([{ score: sync.score([TEXTS[1]])[0].logits[0], label: "LABEL_0" }]);
    const pair = await post(base, "/predict", { inputs: [TEXTS[0], TEXTS[2]], raw_scores: true });
    const pairIds = encodePair(TEXTS[0], TEXTS[2], 256, "left").ids;
    expect(pair.json).toEqual([{ score: sync.scoreIds([pairIds])[0].logits[0], label: "LABEL_0" }]);
    const batch = await post(base, "/predict", { inputs: [[TEXTS[0], TEXTS[2]], [TEXTS[3]]], raw_scores: true });
    expect(batch.json).toEqual([[{ score: sync.scoreIds([pairIds])[0].logits[0], label: "LABEL_0" }], [{ score: sync.score([TEXTS[3]])[0].logits[0], label: "LABEL_0" }]]);
    // Truncation: the server keeps the end by default (the model card's side); "Right" keeps the start.
    const long = TEXTS.join(" ").repeat(30);
    const left = await post(base, "/predict", { inputs: long, raw_scores: true, truncation_direction: "left" });
    expect(left.json[0].score).toBe(sync.score([long])[0].logits[0]);
    const right = await post(base, "/predict", { inputs: long, raw_scores: true, truncation_direction: "Right" });
    expect(right.json[0].score).toBe(sync.scoreIds([encodeCapped(long, 256, "right").ids])[0].logits[0]);
  });

  it("/predict: TEI's errors and statuses", async () => {
    const shape = "Failed to deserialize the JSON body into the target type: inputs: ";
    const expected = ", expected a string, a pair of strings [string, string] or a batch of mixed strings and pairs [[string], [string, string], ...]";
    expect(await post(base, "/predict", { inputs: ["a", "b", "c"] })).toMatchObject({ status: 422, text: `${shape}invalid length 3${expected}` });
    expect(await post(base, "/predict", { inputs: [] })).toMatchObject({ status: 422, text: `${shape}invalid length 0${expected}` });
    expect(await post(base, "/predict", { inputs: [[]] })).toMatchObject({ status: 422, text: `${shape}invalid length 0${expected}` });
    expect((await post(base, "/predict", { inputs: ["a", ["b"]] })).status).toBe(422);
    expect(await post(base, "/predict", {})).toMatchObject({ status: 422, text: "Failed to deserialize the JSON body into the target type: missing field `inputs`" });
    expect((await post(base, "/predict", { inputs: "a", truncation_direction: "LEFT" })).status).toBe(422);
    expect(await post(base, "/predict", { inputs: "" })).toMatchObject({ status: 400, json: { error: "Input validation error: `inputs` cannot be empty", error_type: "Empty" } });
    expect(await post(base, "/predict", { inputs: [["", ""]] })).toMatchObject({ status: 400, json: { error_type: "Empty" } });
    expect(await post(base, "/predict", { inputs: Array.from({ length: 9 }, () => ["a"]) })).toMatchObject({ status: 422, json: { error: "batch size 9 > maximum allowed batch size 8", error_type: "Validation" } });
    const long = "word ".repeat(400);
    expect(await post(base, "/predict", { inputs: long, truncate: false })).toMatchObject({ status: 422, json: { error: `Input validation error: \`inputs\` must have less than 256 tokens. Given: ${encode(long).length}`, error_type: "Validation" } });
    expect(await post(base, "/predict", "{not json")).toMatchObject({ status: 400 });
    expect((await post(base, "/predict", "{not json")).text).toMatch(/^Failed to parse the request body as JSON: /);
    const wrongType = await fetch(base + "/predict", { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(wrongType.status).toBe(415);
    expect(await wrongType.text()).toBe("Expected request with `Content-Type: application/json`");
    expect((await fetch(base + "/nope")).status).toBe(404);
    const wrongMethod = await fetch(base + "/predict");
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("POST");
  });

  it("/rerank: (query, text) pairs, sorted by score, text only on request", async () => {
    const texts = TEXTS.slice(1);
    const r = await post(base, "/rerank", { query: TEXTS[0], texts, return_text: true });
    expect(r.status).toBe(200);
    const scores = texts.map((t) => sigmoid(sync.scoreIds([encodePair(TEXTS[0], t, 256, "left").ids])[0].logits[0]));
    const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
    expect(r.json).toEqual(order.map((i) => ({ index: i, text: texts[i], score: scores[i] })));
    const bare = await post(base, "/rerank", { query: TEXTS[0], texts });
    expect(bare.json).toEqual(order.map((i) => ({ index: i, score: scores[i] })));
    expect(await post(base, "/rerank", { query: "q", texts: [] })).toMatchObject({ status: 400, json: { error: "`texts` cannot be empty", error_type: "Empty" } });
    // POST / answers as /rerank for a reranker.
    expect((await post(base, "/", { query: TEXTS[0], texts })).json).toEqual(bare.json);
  });

  it("/get_reward (OpenRLHF) and /score give the CLI's numbers, /score its very lines", async () => {
    const cli = runCli(["score", "--model", demo, "--threads", "1", ...TEXTS]);
    expect(cli.status, cli.stderr).toBe(0);
    const lines = cli.stdout.trim().split("\n");
    const reward = await post(base, "/get_reward", { query: TEXTS, prompts: TEXTS, labels: TEXTS.map(() => "") });
    const logits = lines.map((l) => JSON.parse(l).logits[0]);
    expect(reward.json).toEqual({ rewards: logits, scores: logits, extra_logs: { dummy_scores: logits } });
    const scored = await post(base, "/score", { texts: TEXTS });
    expect(scored.headers.get("content-type")).toBe("application/x-ndjson");
    // Without the CLI's formatter (the serve command passes it), each line is the core record.
    expect(scored.text.trim().split("\n").map((l) => JSON.parse(l).logits)).toEqual(lines.map((l) => JSON.parse(l).logits));
    const mixed = await post(base, "/score", { ids: [[464, 3290], [50257], []] });
    expect(mixed.text.trim().split("\n").map((l) => JSON.parse(l))).toEqual([
      { index: 0, ...sync.scoreIds([[464, 3290]])[0] },
      { index: 1, error: "id 50257 is outside the vocabulary (0 to 50256)" },
      { index: 2, error: "empty list of ids: nothing to score" },
    ]);
  });

  it("/rank: as model.rank, through the batching queue", async () => {
    const r = await post(base, "/rank", { context: "User: hi\nBot:", replies: [" hello", " go away", " hey there!"], pairwise: true });
    expect(r.json).toEqual(JSON.parse(JSON.stringify(sync.rank("User: hi\nBot:", [" hello", " go away", " hey there!"], { pairwise: true }))));
  });

  it("many concurrent requests are packed into batches, each result bit-identical to the text scored alone", async () => {
    const texts = Array.from({ length: 40 }, (_, i) => `${TEXTS[i % 4]} (${i}) `.repeat(1 + (i % 7)));
    const alone = texts.map((t) => sync.score([t])[0].logits[0]);
    const answers = await Promise.all(texts.map((t) => post(base, "/predict", { inputs: t, raw_scores: true })));
    expect(answers.map((a) => a.json[0].score)).toEqual(alone);
    const metrics = await (await fetch(base + "/metrics")).text();
    expect(metrics).toMatch(/^te_request_count\{method="single"\} \d+$/m);
    expect(metrics).toMatch(/^te_batch_next_size_count \d+$/m);
    const batches = Number(/^te_batch_next_size_count (\d+)$/m.exec(metrics)![1]);
    const sequences = Number(/^te_batch_next_size_sum (\d+)$/m.exec(metrics)![1]);
    expect(sequences / batches).toBeGreaterThan(1); // some passes held several requests
  });

  it("/info and the OpenAPI document", async () => {
    const info = await (await fetch(base + "/info")).json();
    expect(Object.keys(info)).toEqual(["model_id", "model_sha", "model_dtype", "served_model_name", "model_type", "max_concurrent_requests", "max_input_length", "max_batch_tokens", "max_batch_requests", "max_client_batch_size", "auto_truncate", "tokenization_workers", "version", "sha", "docker_label"]);
    expect(info).toMatchObject({ model_id: demo, model_type: { reranker: { id2label: { "0": "LABEL_0" }, label2id: { LABEL_0: 0 } } }, max_input_length: 256, max_client_batch_size: 8 });
    const doc = await (await fetch(base + "/api-doc/openapi.json")).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/predict", "/rerank", "/get_reward", "/score", "/rank", "/health", "/info", "/metrics"]));
  });
});

describe("the server with a three-label classifier", async () => {
  const { server, model, base } = await start(threeLabels);
  server.ready(model);
  const sync = SyncRewardModel.load(threeLabels, { threads: 1 });
  afterAll(async () => {
    await server.drain();
    await model.close();
  });

  it("/predict gives softmax over id2label's names, sorted; /rerank is a 424", async () => {
    const r = await post(base, "/predict", { inputs: TEXTS[2] });
    const logits = sync.score([TEXTS[2]])[0].logits;
    const e = logits.map((x) => Math.exp(x - Math.max(...logits)));
    const p = e.map((x) => x / e.reduce((a, b) => a + b, 0));
    const labels = ["bad", "ok", "good"];
    expect(r.json).toEqual([0, 1, 2].sort((a, b) => p[b] - p[a]).map((i) => ({ score: p[i], label: labels[i] })));
    expect(await post(base, "/rerank", { query: "q", texts: ["a"] })).toMatchObject({ status: 424, json: { error: "Backend error: model is not a re-ranker model", error_type: "Backend" } });
  });

  it("/get_reward and /rank rank by P(last label), as model.rank and the CLI's rank do; /rank takes another label", async () => {
    const replies = [" hello", " go away", " hey there!"];
    const ranked = sync.rank("User: hi\nBot:", replies);
    expect(ranked.by).toBe("P(good)");
    const reward = await post(base, "/get_reward", { query: replies.map((r) => "User: hi\nBot:" + r) });
    expect(reward.json).toEqual({ rewards: ranked.scores, scores: ranked.scores, extra_logs: { dummy_scores: ranked.scores } });
    const byBad = await post(base, "/rank", { context: "User: hi\nBot:", replies, label: "bad" });
    expect(byBad.json).toEqual(JSON.parse(JSON.stringify(sync.rank("User: hi\nBot:", replies, { label: "bad" }))));
    expect(await post(base, "/rank", { context: "x", replies: ["y"], label: "great" })).toMatchObject({ status: 422 });
  });
});

describe("limits", async () => {
  const { server, model, base, port } = await start(demo, { maxConcurrentRequests: 3, payloadLimit: 1000, headersTimeoutMs: 500, requestTimeoutMs: 1000, apiKey: "s3cret" });
  server.ready(model);
  afterAll(async () => {
    await server.drain();
    await model.close();
  });
  const auth = { authorization: "Bearer s3cret" };

  it("an API key guards the scoring routes and /info, not /health or /metrics", async () => {
    expect((await post(base, "/predict", { inputs: "hi" })).status).toBe(401);
    expect((await post(base, "/predict", { inputs: "hi" }, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post(base, "/predict", { inputs: "hi" }, { authorization: "bearer s3cret" })).status).toBe(401);
    expect((await post(base, "/predict", { inputs: "hi" }, auth)).status).toBe(200);
    expect((await fetch(base + "/info")).status).toBe(401);
    expect((await fetch(base + "/health")).status).toBe(200);
    expect((await fetch(base + "/metrics")).status).toBe(200);
  });

  it("more sequences than --max-concurrent-requests: 429; a body over --payload-limit: 413", async () => {
    expect(await post(base, "/predict", { inputs: [["a"], ["b"], ["c"], ["d"]] }, auth)).toMatchObject({ status: 429, json: { error: "Model is overloaded", error_type: "Overloaded" } });
    expect((await post(base, "/predict", { inputs: [["a"], ["b"], ["c"]] }, auth)).status).toBe(200);
    expect(await post(base, "/predict", { inputs: "x".repeat(2000) }, auth)).toMatchObject({ status: 413, text: "Failed to buffer the request body: length limit exceeded" });
  });

  it("a client that stalls in its headers or its body is cut off (408), and the server goes on", async () => {
    const stalled = (request: string) => new Promise<{ data: string; ms: number }>((resolve, reject) => {
      const t0 = Date.now();
      const socket = connect(port, "127.0.0.1", () => socket.write(request));
      let data = "";
      socket.on("data", (d) => (data += d));
      socket.on("close", () => resolve({ data, ms: Date.now() - t0 }));
      socket.on("error", reject);
      setTimeout(() => reject(new Error("the server kept a stalled connection for 20 s")), 20_000).unref();
    });
    const headers = await stalled("POST /predict HTTP/1.1\r\nHost: x\r\n");
    expect(headers.data).toMatch(/^HTTP\/1\.1 408/);
    const body = await stalled(`POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inp`);
    expect(body.data).toMatch(/^HTTP\/1\.1 408/);
    expect((await post(base, "/predict", { inputs: "hi" }, auth)).status).toBe(200);
  });
});

describe("gpt2-reward serve, stopped with SIGTERM", () => {
  it("answers every request in flight, then exits 0; /health is 503 while draining", async () => {
    const child = spawn(process.execPath, [CLI, "serve", "--model", demo, "--port", "0", "--threads", "1", "--max-batch-tokens", "512"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on("data", (d) => {
        stderr += d;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m && /ready:/.test(stderr)) resolve(Number(m[1]));
      });
      child.on("exit", () => reject(new Error(`serve exited early: ${stderr}`)));
      setTimeout(() => reject(new Error(`serve not ready in 60 s: ${stderr}`)), 60_000).unref();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const base = `http://127.0.0.1:${port}`;
    const long = TEXTS.join(" ").repeat(20);
    const inFlight = Array.from({ length: 24 }, (_, i) => post(base, "/predict", { inputs: `${i} ${long}`, raw_scores: true }));
    // SIGTERM once the server has accepted all 24 (a connection still in the kernel's backlog is
    // not accepted yet, and closing the listener resets it): its request counter says so.
    const accepted = async () => Number(/te_request_count\{method="single"\} (\d+)/.exec(await (await fetch(base + "/metrics")).text())?.[1] ?? 0);
    for (const deadline = Date.now() + 60_000; (await accepted()) < inFlight.length && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGTERM");
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/SIGTERM: draining/);
    await expect(fetch(base + "/health")).rejects.toThrow();
  });
});
