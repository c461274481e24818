/**
 * The model's worker in a browser (bundled as dist/browser/model-worker.js): fetches or mounts the
 * model's files, loads it with the same code as Node, and scores. The forward pass blocks this
 * thread, never the page's; the pool's threads, when the page is cross-origin isolated, start
 * from here and work under it as under Node's model thread.
 */
import "../platform/browser.js";
import { Gpt2RewardError } from "../errors.js";
import { SyncRewardModel } from "../model/sync-model.js";
import { hubBase, mountPicked, mountRemote } from "../hub/browser-models.js";
import type { Reply, Request, WireError, WorkerLoadOptions, Source } from "../model/browser-protocol.js";
import { platform } from "../platform/platform.js";

const port = await platform().threads.parent();
const send = (reply: Reply) => port.postMessage(reply);
let model: SyncRewardModel | null = null;

// One request at a time, in order: a score never runs while the model is still loading.
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

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case "load":
      return load(req.source, req.opts);
    case "score":
      if (!model) throw new Gpt2RewardError("the model is not loaded");
      return model.score(req.texts, req.opts);
    case "close":
      await model?.close();
      model = null;
      return null;
  }
}

async function load(source: Source, opts: WorkerLoadOptions) {
  const t0 = performance.now();
  const progress = (p: Parameters<Parameters<typeof mountRemote>[2]>[0]) => send({ progress: p });
  const path =
    "files" in source ? mountPicked(source.files)
    : "repo" in source ? await mountRemote(hubBase(source.repo, opts.fetch), opts.fetch, progress)
    : await mountRemote(source.url.endsWith("/") ? source.url : `${source.url}/`, opts.fetch, progress);
  const onWarning = (warning: string) => send({ warning });
  let threads = opts.threads ?? platform().threads.available();
  if (threads > 1 && !platform().threads.canShareMemory()) {
    onWarning(`threads: ${threads} needs a cross-origin isolated page (COOP same-origin + COEP require-corp headers); using 1 thread`);
    threads = 1;
  }
  model = SyncRewardModel.load(path, { threads, kernels: opts.kernels, dtype: opts.dtype, onWarning });
  const runner = model.runner as { started?: () => Promise<void> };
  await runner.started?.();
  const { config, files, loadReport, kernels } = model;
  return { config, files, loadReport, kernels, threads: model.threads, loadMs: performance.now() - t0 };
}

function wireError(e: unknown): WireError {
  if (e instanceof Gpt2RewardError) {
    const file = (e as { file?: unknown }).file;
    return { name: e.name, message: e.message, user: true, ...(typeof file === "string" ? { file } : {}) };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, stack: err.stack, user: false };
}
