/**
 * The asynchronous model's worker, on Node and in a browser: hosts one SyncRewardModel and
 * answers the caller's requests one at a time, in the order sent (src/model/model-protocol.ts), so
 * a score never runs while the model is still loading. The forward pass blocks this thread, not
 * the caller's; the pool's threads, if any, are started from here and work under it exactly as
 * they do under a synchronous model.
 *
 * Its entry point (src/entries/*-model-worker.ts) installs the platform and says how the model's
 * files become readable (`mount`): on Node they are read where they lie, in a browser a folder URL
 * or a Hub repo is fetched into Cache Storage, or picked files are mounted, first.
 */
import { Gpt2RewardError } from "../errors.js";
import type { Progress } from "../hub/browser-models.js";
import { platform } from "../platform/platform.js";
import type { LoadedInfo, Reply, Request, WireError, WorkerSource } from "./model-protocol.js";
import { SyncRewardModel } from "./sync-model.js";

/** Makes the source's files readable through platform().files; resolves to the path to load. */
export type Mount = (source: WorkerSource, onProgress: (p: Progress) => void, onWarning: (warning: string) => void) => Promise<string>;

export async function serveModel(mount: Mount): Promise<void> {
  const port = await platform().threads.parent();
  const send = (reply: Reply) => port.postMessage(reply);
  let model: SyncRewardModel | null = null;

  async function load(req: Extract<Request, { op: "load" }>): Promise<LoadedInfo> {
    const t0 = performance.now();
    const path = await mount(req.source, (progress) => send({ progress }), (warning) => send({ warning }));
    model = SyncRewardModel.load(path, { ...req.opts, onWarning: (warning) => send({ warning }) });
    // A browser starts a worker only once its starter's event loop turns: wait here, not in the first kernel call.
    await (model.runner as { started?: () => Promise<void> }).started?.();
    const { config, files, loadReport, kernels, threads } = model;
    return { config, files, loadReport, kernels, threads, loadMs: performance.now() - t0 };
  }

  async function handle(req: Request) {
    if (req.op === "load") return load(req);
    if (!model) throw new Gpt2RewardError("the model is not loaded");
    switch (req.op) {
      case "score":
        return model.score(req.texts, req.opts);
      case "scoreIds":
        return model.scoreIds(req.ids, req.opts);
      case "scoreTokenized":
        return model.scoreTokenized(req.items, req.opts);
      case "close":
        await model.close();
        model = null;
        return null;
    }
  }

  let queue: Promise<unknown> = Promise.resolve();
  port.onMessage((message) => {
    const req = message as Request;
    queue = queue.then(() =>
      handle(req).then(
        (result) => send({ id: req.id, result }),
        (e: unknown) => send({ id: req.id, error: wireError(e) }),
      ),
    );
  });
}

function wireError(e: unknown): WireError {
  if (e instanceof Gpt2RewardError) {
    const file = (e as { file?: unknown }).file;
    return { name: e.name, message: e.message, user: true, ...(typeof file === "string" ? { file } : {}) };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, stack: err.stack, user: false };
}
