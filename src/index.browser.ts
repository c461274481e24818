/**
 * gpt2-reward in a browser: the same RewardModel as in Node (src/model/async-model.ts),
 * `await RewardModel.load(x)` then `await model.score(texts)`, with the model in a Web Worker so
 * the page's thread never blocks. Only where the weights come from differs: `x` is a folder URL
 * ("https://host/models/demo/", or relative to the page: "./demo/"), a Hugging Face repo id
 * ("owner/name" or "owner/name@revision"), or the Files a user picked or dropped (config.json +
 * model.safetensors or pytorch_model.bin, shards too). Downloads are kept in Cache Storage, so a
 * second visit loads offline. Threads need a cross-origin isolated page (COOP same-origin + COEP
 * require-corp); otherwise the model computes on one thread.
 */
import { registerWorker } from "./platform/browser.js";
import { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError, ModelBrokenError } from "./errors.js";
import { browserSource, type FetchOptions, type ModelSource, type Progress } from "./hub/browser-models.js";
import { RewardModel as AnyPlatformModel, type LoadListeners } from "./model/async-model.js";
import { checkLoadOptions } from "./model/options.js";
import type { LoadOptions as ModelLoadOptions } from "./model/sync-model.js";

export { Gpt2RewardError, InputError, FormatError, UnsafeFileError, ConfigError, ModelBrokenError };

// The model's worker (dist/browser/model-worker.js), in the form bundlers recognise (see registerWorker).
registerWorker("model", () => new Worker(new URL("./model-worker.js", import.meta.url), { type: "module", name: "gpt2-reward model" }));
export type { Progress, FetchOptions, ModelSource };
export type { ScoreOptions, ScoreResult } from "./model/sync-model.js";
export type { RankOptions, RankResult } from "./model/rank.js";

/** Node's load options (threads, kernels, dtype, onWarning), a Hub's (endpoint, revision, token, cache), and onProgress. */
export interface LoadOptions extends Omit<ModelLoadOptions, "hub">, FetchOptions, LoadListeners {}

export class RewardModel extends AnyPlatformModel {
  /** Loads a model from a folder URL, a Hub repo id or picked Files (see the top of this file). */
  static override async load(source: ModelSource, opts: LoadOptions = {}): Promise<RewardModel> {
    const checked = checkLoadOptions(opts);
    const { endpoint, revision, token, cache, onWarning, onProgress } = opts;
    return (await this.start(browserSource(source, { endpoint, revision, token, cache }), checked, { onWarning, onProgress })) as RewardModel;
  }

  /** The same as load: in a browser, a Hub repo id is fetched by the model's worker. */
  static override async fromPretrained(source: ModelSource, opts: LoadOptions = {}): Promise<RewardModel> {
    return this.load(source, opts);
  }
}
