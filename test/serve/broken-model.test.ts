/**
 * A pool thread of the served model dies while the model's worker thread waits for it in
 * Atomics.wait: the request in flight gets TEI's JSON backend error (424), the model says it is
 * closed, /health turns 503 (so an orchestrator replaces the replica), and the server goes on
 * answering. Everything real but the trigger: the model's worker thread runs a script that adds to
 * the model worker a way to stop pool thread 1 from outside, as a crash would; the order is sent
 * just before a request for the marker ids, so the thread ends while the worker computes it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ModelBrokenError } from "../../src/errors.js";
import { RewardModel } from "../../src/model/async-model.js";
import { nodePlatform, startThread } from "../../src/platform/node.js";
import { setPlatform, type Thread } from "../../src/platform/platform.js";
import { SERVE_DEFAULTS } from "../../src/serve/limits.js";
import { RewardServer } from "../../src/serve/server.js";
import { FIXTURES, ROOT } from "../helpers/cli.js";

/** A full-length text (256 tokens), so the forward pass outlasts the stop of a thread by far. */
const MARKER = Array.from({ length: 256 }, (_, i) => 31337 + (i % 7));
const dist = (p: string) => JSON.stringify(pathToFileURL(join(ROOT, "dist", p)).href);
const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-broken-"));
const script = join(dir, "model-worker.mjs");
writeFileSync(script, `
import { parentPort } from "node:worker_threads";
import { nodePlatform } from ${dist("src/platform/node.js")};
import { setPlatform } from ${dist("src/platform/platform.js")};
import ${dist("src/entries/node-model-worker.js")};
const pool = [];
setPlatform({ ...nodePlatform, threads: { ...nodePlatform.threads, start(script, data) {
  const t = nodePlatform.threads.start(script, data);
  if (script === "pool") pool.push(t);
  return t;
} } });
parentPort.on("message", (m) => {
  if (m.op === "kill-pool-thread") void pool[0].terminate();
});
`);

/** The model's thread runs the script above; a request for the marker ids is preceded by the order to kill. */
function startModelThread(data: unknown): Thread {
  const thread = startThread(pathToFileURL(script), data);
  return {
    ...thread,
    postMessage(m, transfer) {
      const r = m as { op: string; items?: { ids: number[] }[] };
      if (r.op === "scoreTokenized" && r.items!.some((it) => it.ids.join() === MARKER.join())) thread.postMessage({ op: "kill-pool-thread" });
      thread.postMessage(m, transfer);
    },
  };
}

/** A RewardModel whose thread is startModelThread's (within 60 s: a worker that never answers fails the test, never hangs it). */
async function loadModel(): Promise<RewardModel> {
  setPlatform({ ...nodePlatform, threads: { ...nodePlatform.threads, start: (s, d) => (s === "model" ? startModelThread(d) : nodePlatform.threads.start(s, d)) } });
  try {
    const loaded = RewardModel.load(join(FIXTURES, "models", "demo"), { threads: 2 });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the model's thread (${script}) did not load the model within 60 s`)), 60_000)));
    return await Promise.race([loaded, late]).finally(() => clearTimeout(timer));
  } finally {
    setPlatform(nodePlatform);
  }
}

const logs: string[] = [];
const model = await loadModel();
const server = new RewardServer({ ...SERVE_DEFAULTS, port: 0, modelId: "demo" }, { version: "test", log: (m) => logs.push(m) });
const base = `http://127.0.0.1:${(await server.listen()).port}`;
server.ready(model);
afterAll(async () => {
  await server.drain();
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

async function post(path: string, body: unknown) {
  const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  return { status: r.status, json: await r.json() };
}

const BROKEN = "pool thread 1 of 1 stopped (it crashed, ran out of memory or was terminated); the model cannot compute any more: load it again";

describe("a served model whose pool thread dies mid-batch", () => {
  it("answers the request in flight with a JSON 424, then /health 503, and the server stays up", async () => {
    expect((await post("/score", { texts: ["User: hi\nBot: hello!"] })).status).toBe(200);
    expect(model.threads).toBe(2);

    const failed = await post("/score", { ids: [MARKER] });
    expect(failed).toEqual({ status: 424, json: { error: `Backend error: ${BROKEN}`, error_type: "Backend" } });
    expect(model.closed).toBe(true);
    await expect(model.score(["abc"])).rejects.toThrow(BROKEN);
    expect(logs).toEqual([`the model stopped working: ${BROKEN}; /health answers 503 from now on`]);

    const health = await fetch(base + "/health", { signal: AbortSignal.timeout(10_000) });
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ error: "unhealthy", error_type: "Unhealthy" });
    expect(await post("/predict", { inputs: "hi" })).toEqual({ status: 503, json: { error: "unhealthy", error_type: "Unhealthy" } });
    expect((await fetch(base + "/metrics", { signal: AbortSignal.timeout(10_000) })).status).toBe(200);
  });

  it("the API rejects the call in flight with ModelBrokenError", async () => {
    const m = await loadModel();
    // Scored once, so the pool's threads are up: a thread that ends while it starts is caught by the pool's start deadline instead.
    expect(await m.score(["hi"])).toHaveLength(1);
    const error = await m.scoreIds([MARKER]).then(() => null, (e: unknown) => e);
    expect((error as Error).message).toBe(BROKEN);
    expect(error).toBeInstanceOf(ModelBrokenError);
    expect(m.closed).toBe(true);
    await m.close();
  });
});
