/**
 * A loaded reward model, computing on the calling thread: config + weights in kernel memory +
 * the tokenizer rules of the model card (pad id 50256, left truncation to 256 tokens, pooling at
 * the last non-pad token). Users call the asynchronous `RewardModel` (src/model/async-model.ts),
 * which hosts one of these in a worker thread; this synchronous core is what the worker runs,
 * and what the golden tests, the trace and anyone studying the forward pass call directly.
 */
import { Arena } from "../../kernels/arena.js";
import type { Kernels } from "../../kernels/contract.js";
import { createRefKernels } from "../../kernels/ref-kernels.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { createWasmKernels, wasmSimdSupported } from "../../kernels/wasm/wasm-kernels.js";
import { readConfig, type GPT2Config } from "./config.js";
import type { HubOptions } from "../hub/hub.js";
import { resolveModel } from "./resolve.js";
import { Gpt2RewardError, InputError, printable } from "../errors.js";
import { openCheckpoint } from "../formats/checkpoint.js";
import { forward, type ForwardOptions } from "./gpt2.js";
import { scoredPosition, type PoolingRule } from "./pooling.js";
import {
  checkLoadOptions, checkMaxLength, checkScoreOptions, DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH,
  type KernelChoice, type WeightDTypeChoice,
} from "./options.js";
import { checkRankOptions, rankResults, rankTexts, type RankOptions, type RankResult } from "./rank.js";
import { createPool, defaultThreads } from "../run/pool.js";
import { platform } from "../platform/platform.js";
import { serialRunner, type Runner } from "../run/runner.js";
import { idItems, idsItem, idsProblem, textItems, tokenizeText, type Item } from "./inputs.js";
import type { WeightDType } from "../../kernels/half.js";
import { loadWeights, type GPT2Weights, type LoadReport } from "./weights.js";

export { DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, type KernelChoice, type WeightDTypeChoice };

export interface LoadOptions {
  /** Called with warnings (unused tensors, NaN/Inf in weights). Default: none. */
  onWarning?: (message: string) => void;
  /** Threads computing each kernel call (this one included). Default: all cores; 1 with the "ref" kernels. */
  threads?: number;
  /**
   * "wasm" (WebAssembly SIMD, emitted by kernels/wasm), "ts" (pure TypeScript), "ref" (the plain
   * reference loops of kernels/ref-kernels.ts: one thread, slow, the code to read) or "auto"
   * (wasm where the engine has SIMD, else ts).
   */
  kernels?: KernelChoice;
  /** Where and how to fetch a Hub model (fromPretrained only). */
  hub?: HubOptions;
  /**
   * How the Conv1D weights are kept in memory: "f32" (default), or "f16" / "bf16" for a
   * checkpoint that stores them so: half their memory, the same logits.
   */
  dtype?: WeightDTypeChoice;
}

export interface ScoreOptions {
  /** Tokens kept per text, from the end (HF truncation_side='left'). Default 256, as the model card. */
  maxLength?: number;
  /** Which token the score head reads. Default "last-non-pad" (current transformers). */
  pooling?: PoolingRule;
  /** Texts per forward pass. Default 8. */
  batchSize?: number;
}

export interface ScoreResult {
  /** One value per label (config num_labels / id2label). */
  logits: number[];
  /** Tokens the model saw (after truncation). */
  tokens: number;
  /** True when the text was longer than maxLength tokens and its beginning was dropped. */
  truncated: boolean;
}

export class SyncRewardModel {
  private constructor(
    readonly config: GPT2Config,
    readonly weights: GPT2Weights,
    readonly runner: Runner,
    /** The files the model was read from. */
    readonly files: string[],
    readonly loadReport: LoadReport,
  ) {}

  /** The kernels in use: "ts", "wasm" or "ref". */
  get kernels(): string {
    return this.runner.kernels.name;
  }

  get threads(): number {
    return this.runner.threads;
  }

  /** Label names in logit order. */
  get labels(): string[] {
    return this.config.labels;
  }

  /**
   * Loads a model named like on the command line: a local folder or weights file, else a Hub
   * repo `owner/name[@revision]`, downloaded into (or found in) the Hugging Face cache.
   */
  static async fromPretrained(spec: string, opts: LoadOptions = {}): Promise<SyncRewardModel> {
    return SyncRewardModel.load(await resolveModel(spec, opts.hub), opts);
  }

  /**
   * Loads a model from a folder (config.json + weights) or a weights file (config.json beside it).
   */
  static load(path: string, opts: LoadOptions = {}): SyncRewardModel {
    const checked = checkLoadOptions(opts);
    const { dtype } = checked;
    const { configFile, weightsPath } = locate(path);
    const config = readConfig(configFile);
    const backend = chooseKernels(checked.kernels);
    // The reference loops compute each call whole: they run on this thread only.
    let threads = checked.threads ?? (backend === "ref" ? 1 : defaultThreads());
    if (threads > 1 && !platform().threads.canShareMemory()) {
      // Only a browser page that is not cross-origin isolated cannot share memory with threads.
      opts.onWarning?.(`threads: ${threads} needs a cross-origin isolated page (COOP same-origin + COEP require-corp headers); using 1 thread`);
      threads = 1;
    }
    if (backend === "ref" && threads !== 1) throw new Gpt2RewardError(`the ref kernels run on one thread (they are the plain reference loops), got threads ${threads}: use threads 1, or the ts or wasm kernels`);
    const kernels: Kernels = backend === "wasm" ? createWasmKernels(new Arena()) : backend === "ref" ? createRefKernels(new Arena()) : createTsKernels(new Arena());
    const checkpoint = openCheckpoint(weightsPath);
    let loaded: ReturnType<typeof loadWeights>;
    try {
      loaded = loadWeights(checkpoint.source, config, kernels, dtype.toUpperCase() as WeightDType);
    } finally {
      checkpoint.close();
    }
    const { weights, report } = loaded;
    if (report.unused.length > 0) {
      opts.onWarning?.(`${checkpoint.source.file}: ignoring ${report.unused.length} tensor(s) GPT-2 does not use: ${report.unused.slice(0, 5).map(printable).join(", ")}${report.unused.length > 5 ? ", ..." : ""}`);
    }
    for (const { name, count } of report.nonFinite) {
      opts.onWarning?.(`${checkpoint.source.file}: tensor ${printable(name)} holds ${count} NaN or infinite value(s); scores may be NaN`);
    }
    const runner = threads > 1 && backend !== "ref" ? createPool(kernels, backend, threads) : serialRunner(kernels);
    return new SyncRewardModel(config, weights, runner, [configFile, ...checkpoint.files], report);
  }

  /** A text's ids after left truncation. Throws InputError for an empty text. */
  tokenize(text: string, maxLength = DEFAULT_MAX_LENGTH): { ids: number[]; truncated: boolean } {
    this.checkMaxLength(maxLength);
    return tokenizeText(text, maxLength);
  }

  /** Scores texts; results in input order. Throws InputError naming the first bad text. */
  score(texts: string[], opts: ScoreOptions = {}): ScoreResult[] {
    this.checkOpen();
    const { maxLength } = checkScoreOptions(opts, this.config.n_positions, this.files[0]);
    return this.scoreTokenized(textItems(texts, maxLength), opts);
  }

  /** Scores pre-tokenized texts (ids are left-truncated to maxLength like texts). */
  scoreIds(idLists: number[][], opts: ScoreOptions = {}): ScoreResult[] {
    this.checkOpen();
    const { maxLength } = checkScoreOptions(opts, this.config.n_positions, this.files[0]);
    return this.scoreTokenized(idItems(idLists, maxLength, this.config.vocab_size), opts);
  }

  /** A list of ids checked and left-truncated, as scoreIds prepares each (src/model/inputs.ts's idsItem). Throws InputError. */
  prepareIds(ids: unknown, maxLength = DEFAULT_MAX_LENGTH): Item {
    this.checkMaxLength(maxLength);
    return idsItem(ids, maxLength, this.config.vocab_size);
  }

  /** Why a list of ids cannot be scored, or null if it can. */
  checkIds(ids: unknown): string | null {
    return idsProblem(ids, this.config.vocab_size);
  }

  /** Scores already-truncated id lists in batches of batchSize. */
  scoreTokenized(items: { ids: number[]; truncated: boolean }[], opts: ScoreOptions = {}, fwd: ForwardOptions = {}): ScoreResult[] {
    this.checkOpen();
    const { pooling, batchSize } = checkScoreOptions(opts, this.config.n_positions, this.files[0]);
    const results: ScoreResult[] = [];
    for (let b = 0; b < items.length; b += batchSize) {
      const batch = items.slice(b, b + batchSize);
      for (const it of batch) {
        if (it.ids.length === 0) throw new InputError("empty text: it has no tokens to score");
        if (it.ids.length > this.config.n_positions) throw new InputError(`${it.ids.length} tokens exceed the model's n_positions ${this.config.n_positions}`);
      }
      const seqs = batch.map((it) => it.ids);
      const scored = seqs.map((ids) => scoredPosition(ids, this.config.pad_token_id, pooling));
      const logits = forward(this, this.runner, seqs, scored, fwd);
      batch.forEach((it, i) => results.push({ logits: Array.from(logits[i]), tokens: it.ids.length, truncated: it.truncated }));
    }
    return results;
  }

  /**
   * Best-of-N: scores each reply as the text `context + reply`, exactly as `score` would, and
   * orders them best first (see src/model/rank.ts).
   */
  rank(context: string, replies: string[], opts: RankOptions = {}): RankResult {
    checkRankOptions(this.labels, opts);
    return rankResults(this.score(rankTexts(context, replies), opts), this.labels, opts);
  }

  checkMaxLength(maxLength: number): void {
    // Named after config.json (files[0]): that is where a too-small n_positions comes from.
    checkMaxLength(maxLength, this.config.n_positions, this.files[0]);
  }

  private closed = false;

  private checkOpen(): void {
    if (this.closed) throw new Gpt2RewardError("the model is closed");
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.runner.close();
  }
}

function chooseKernels(choice: KernelChoice): "ts" | "wasm" | "ref" {
  if (choice === "ts" || choice === "ref") return choice;
  if (wasmSimdSupported()) {
    platform().relaxedSimd(); // before the kernels compile: the workers' copies see the same flag
    return "wasm";
  }
  if (choice === "wasm") throw new Gpt2RewardError("--kernels wasm: this JavaScript engine has no WebAssembly SIMD128");
  return "ts";
}

/** A folder holds config.json and the weights; a weights file has config.json beside it. */
export function locate(path: string): { configFile: string; weightsPath: string } {
  const fs = platform().files;
  const kind = fs.kind(path);
  if (kind === undefined) throw new Gpt2RewardError(`${path}: no such file or folder`);
  if (kind === "dir") {
    const configFile = fs.join(path, "config.json");
    if (fs.kind(configFile) === undefined) throw new Gpt2RewardError(`${path}: no config.json in this folder`);
    return { configFile, weightsPath: path };
  }
  const configFile = fs.join(fs.dirname(path), "config.json");
  if (fs.kind(configFile) === undefined) throw new Gpt2RewardError(`${path}: no config.json beside ${fs.basename(path)}`);
  return { configFile, weightsPath: path };
}
