/**
 * The model's worker in a browser (bundled as dist/browser/model-worker.js): the browser platform
 * first, then the same worker as Node's (src/model/model-worker.ts), whose model's files are
 * fetched into Cache Storage or mounted from picked files first (src/hub/browser-models.ts). The
 * forward pass blocks this thread, never the page's.
 */
import { registerWorker } from "../platform/browser.js";
import { Gpt2RewardError } from "../errors.js";
import { mountBrowserSource } from "../hub/browser-models.js";
import { serveModel } from "../model/model-worker.js";

// The pool's threads (dist/browser/pool-worker.js), in the form bundlers recognise (see registerWorker).
registerWorker("pool", () => new Worker(new URL("./pool-worker.js", import.meta.url), { type: "module", name: "gpt2-reward pool" }));

await serveModel(async (source, onProgress, onWarning) => {
  if ("path" in source) throw new Gpt2RewardError("in a browser a model is loaded from a folder URL, a Hub repo id or picked files, not a path");
  return mountBrowserSource(source, onProgress, onWarning);
});
