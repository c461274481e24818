/**
 * gpt2-reward: GPT-2 reward models (GPT2ForSequenceClassification) in pure TypeScript.
 *
 * Most users need only `RewardModel`. The layers below it are exported for people who study or
 * reuse them: the forward pass, the weights loader, the file readers and every kernel with its
 * reference.
 */

// Node's file access, threads, inflate, hashing and relaxed SIMD (src/platform/platform.ts);
// src/index.browser.ts installs the browser's.
import "./platform/node.js";

// The model and how it scores.
export { RewardModel } from "./model/async-model.js";
export type { LoadListeners } from "./model/async-model.js";
export { DEFAULT_MAX_LENGTH } from "./model/options.js";
export type { LoadOptions, ScoreOptions, ScoreResult, KernelChoice, WeightDTypeChoice } from "./model/sync-model.js";
export type { RankOptions, RankResult } from "./model/rank.js";
// The same model computing on the calling thread (what the worker hosts; for study and tests).
export { SyncRewardModel } from "./model/sync-model.js";
export { scoredPosition, POOLING_RULES, parsePoolingRule } from "./model/pooling.js";
export type { PoolingRule } from "./model/pooling.js";
export { encode, encodeTruncated, truncateLeft, ENDOFTEXT, ENDOFTEXT_ID, MAX_PIECE_BYTES } from "./model/tokenizer.js";
export { Gpt2RewardError, FormatError, UnsafeFileError, ConfigError, InputError, ModelBrokenError, Interrupted } from "./errors.js";

// The transformer.
export { forward } from "./model/gpt2.js";
export type { GPT2Model, ForwardOptions } from "./model/gpt2.js";
export { readConfig, parseConfig } from "./model/config.js";
export type { GPT2Config } from "./model/config.js";
export { loadWeights, IGNORED_BUFFERS } from "./model/weights.js";
export type { GPT2Weights, BlockWeights, LayerNormWeights, LoadReport } from "./model/weights.js";
export { serialRunner } from "./run/runner.js";
export type { Runner } from "./run/runner.js";
export { createPool, defaultThreads } from "./run/pool.js";

// Files: safetensors, PyTorch checkpoints, checkpoints in folders, the Hub.
// Every reader is a TensorSource that reads one tensor when asked (what the loader and convert use).
export { readSafetensorsHeader, parseSafetensorsHeader, safetensorsSource } from "./formats/safetensors.js";
export { pytorchSource } from "./formats/pytorch.js";
export { openCheckpoint, WEIGHT_FILES } from "./formats/checkpoint.js";
export type { OpenCheckpoint, CheckpointFormat } from "./formats/checkpoint.js";
export { writeSafetensors, convertTensor } from "./formats/write-safetensors.js";
export type { TensorToWrite } from "./formats/write-safetensors.js";
export { readZip } from "./formats/zip.js";
export { bufferSource } from "./platform/bytes.js";
export type { ByteSource, FileSystem } from "./platform/bytes.js";
export { platform } from "./platform/platform.js";
export type { Platform } from "./platform/platform.js";
export { loadPickle } from "./formats/pickle.js";
export { resolveHubModel, inspectHubModel, isHubRepoId } from "./hub/hub.js";
export type { HubOptions } from "./hub/hub.js";
export { readTensor, mapSource, toFloat32, decodeFloat32Into, elementCount, DTYPE_BYTES } from "./formats/tensor.js";
export type { RawTensor, DType, TensorSource } from "./formats/tensor.js";

// Kernels: each fast kernel next to its slow, obviously-right reference.
export { matmulPacked, packMatmulWeight, packedSize, PANEL } from "../kernels/matmul.js";
export { layernorm } from "../kernels/layernorm.js";
export { geluScalar } from "../kernels/gelu.js";
export { attention } from "../kernels/attention.js";
export { softmaxInPlace } from "../kernels/softmax.js";
export { residual } from "../kernels/residual.js";
export { embedding } from "../kernels/embedding.js";
export { Arena } from "../kernels/arena.js";
export { packLinear } from "../kernels/packing.js";
export type { Kernels, PackedLinear } from "../kernels/contract.js";
export { createRefKernels } from "../kernels/ref-kernels.js";
export { createTsKernels } from "../kernels/ts-kernels.js";
export { createWasmKernels, wasmSimdSupported, wasmRelaxedSimdSupported } from "../kernels/wasm/wasm-kernels.js";
export { matmulReference, layernormReference, attentionReference, geluReference, residualReference, softmaxReference } from "../kernels/ref-kernels.js";
