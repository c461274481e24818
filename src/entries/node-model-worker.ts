/**
 * The model's thread in Node: the Node platform first, then the worker (src/model/model-worker.ts)
 * reading the model where it lies. (A Hub repo was downloaded into the cache by fromPretrained, on
 * the caller's thread, before the path came here.)
 */
import "../platform/node.js";
import { Gpt2RewardError } from "../errors.js";
import { serveModel } from "../model/model-worker.js";

await serveModel(async (source) => {
  if ("path" in source) return source.path;
  throw new Gpt2RewardError("in Node a model is loaded from a path (RewardModel.load), or a Hub repo id (RewardModel.fromPretrained)");
});
