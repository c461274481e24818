/**
 * The asynchronous model's worker thread: hosts one SyncRewardModel and answers the main
 * thread's requests one at a time, in the order sent (src/model/model-protocol.ts). The forward
 * pass blocks this thread, not the caller's; the pool's threads, if any, are started from here
 * and work under it exactly as they do under a synchronous model. The platform (Node or a
 * browser) is installed by the script that imports this one (src/entries/*-model-worker.ts).
 */
import { Gpt2RewardError } from "../errors.js";
import { platform } from "../platform/platform.js";
import type { Reply, Request, WireError } from "./model-protocol.js";
import { SyncRewardModel } from "./sync-model.js";

const port = await platform().threads.parent();
const send = (reply: Reply) => port.postMessage(reply);
let model: SyncRewardModel | null = null;

port.onMessage((message) => {
  const req = message as Request;
  handle(req).then(
    (result) => send({ id: req.id, result }),
    (e: unknown) => send({ id: req.id, error: wireError(e) }),
  );
});

async function handle(req: Request) {
  if (req.op === "load") {
    model = SyncRewardModel.load(req.path, { ...req.opts, onWarning: (warning) => send({ warning }) });
    const { config, files, loadReport, kernels, threads } = model;
    return { config, files, loadReport, kernels, threads };
  }
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
      return null;
  }
}

function wireError(e: unknown): WireError {
  if (e instanceof Gpt2RewardError) {
    const file = (e as { file?: unknown }).file;
    return { name: e.name, message: e.message, user: true, ...(typeof file === "string" ? { file } : {}) };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, stack: err.stack, user: false };
}
