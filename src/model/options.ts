/**
 * The API's options and inputs, checked before anything runs, in the CLI's words: a typo such as
 * `pooling: "last_non_pad"` or `kernels: "gpu"` is an error naming the option and the choices,
 * never a silent default, and `score("text")` or `scoreIds(null)` is an InputError, never a
 * TypeError from deep inside (src/model/inputs.ts checks the inputs). One place, used by the
 * synchronous core, the asynchronous model (before a message goes to its worker) and the server.
 */
import { Gpt2RewardError, quote } from "../errors.js";
import { POOLING_RULES, type PoolingRule } from "./pooling.js";

export type KernelChoice = "ts" | "wasm" | "ref" | "auto";
export type WeightDTypeChoice = "f32" | "f16" | "bf16";

export const KERNEL_CHOICES: readonly KernelChoice[] = ["auto", "wasm", "ts", "ref"];
export const DTYPE_CHOICES: readonly WeightDTypeChoice[] = ["f32", "f16", "bf16"];
export const MAX_THREADS = 256;

/** Tokens kept per text by default (the model card's max_length). */
export const DEFAULT_MAX_LENGTH = 256;
/** Texts per forward pass by default. */
export const DEFAULT_BATCH_SIZE = 8;

/** "a, b or c" */
function choices(list: readonly string[]): string {
  return list.length === 1 ? list[0] : `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`;
}

function oneOf<T extends string>(name: string, value: unknown, list: readonly T[]): T {
  if (typeof value !== "string" || !(list as readonly string[]).includes(value)) {
    throw new Gpt2RewardError(`${name} must be ${choices(list)}, got ${quote(value)}`);
  }
  return value as T;
}

function integer(name: string, value: unknown, min: number, max: number, noun = "an integer"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? "a positive integer" : `${noun} of at least ${min}`) : `${noun} from ${min} to ${max}`;
    throw new Gpt2RewardError(`${name} must be ${range}, got ${quote(value)}`);
  }
  return value;
}

function object(name: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Gpt2RewardError(`${name} must be an object, got ${quote(value)}`);
  return value as Record<string, unknown>;
}

export interface CheckedLoadOptions {
  threads: number | undefined;
  kernels: KernelChoice;
  dtype: WeightDTypeChoice;
}

/** LoadOptions' `threads`, `kernels` and `dtype`, with their defaults (threads: undefined = all cores). */
export function checkLoadOptions(opts: unknown): CheckedLoadOptions {
  const o = object("load options", opts);
  return {
    threads: o.threads === undefined ? undefined : integer("threads", o.threads, 1, MAX_THREADS),
    kernels: o.kernels === undefined ? "auto" : oneOf("kernels", o.kernels, KERNEL_CHOICES),
    dtype: o.dtype === undefined ? "f32" : oneOf("dtype", o.dtype, DTYPE_CHOICES),
  };
}

export interface CheckedScoreOptions {
  maxLength: number;
  pooling: PoolingRule;
  batchSize: number;
}

/**
 * ScoreOptions with their defaults. `maxLength` is bounded by the model's n_positions, named
 * after config.json (that is where a too-small n_positions comes from).
 */
export function checkScoreOptions(opts: unknown, nPositions: number, configFile: string): CheckedScoreOptions {
  const o = object("score options", opts);
  const maxLength = o.maxLength === undefined ? DEFAULT_MAX_LENGTH : checkMaxLength(o.maxLength, nPositions, configFile);
  return {
    maxLength,
    pooling: o.pooling === undefined ? "last-non-pad" : oneOf("pooling", o.pooling, POOLING_RULES),
    batchSize: o.batchSize === undefined ? DEFAULT_BATCH_SIZE : integer("batch size", o.batchSize, 1, Number.MAX_SAFE_INTEGER),
  };
}

export function checkMaxLength(maxLength: unknown, nPositions: number, configFile: string): number {
  const n = integer("max length", maxLength, 1, Number.MAX_SAFE_INTEGER);
  if (n > nPositions) {
    throw new Gpt2RewardError(`${configFile}: max length ${n} exceeds the model's n_positions ${nPositions} (it has no position embedding beyond that)`);
  }
  return n;
}
