/**
 * Where a model named by a user lives, decided in one place for the API and every command:
 * an existing local path wins; otherwise `owner/name[@revision]` is a Hugging Face repo. And the
 * one reading of a dtype name, with the names torch and HF use.
 */
import { isHubRepoId, resolveHubModel, type HubOptions } from "../hub/hub.js";
import { platform } from "../platform/platform.js";

export type ModelSource = { kind: "local"; path: string } | { kind: "hub"; repo: string };

export function modelSource(spec: string): ModelSource {
  return platform().files.kind(spec) === undefined && isHubRepoId(spec) ? { kind: "hub", repo: spec } : { kind: "local", path: spec };
}

/** A local path for the model: itself, or the Hub snapshot folder (downloaded or from the cache). */
export async function resolveModel(spec: string, hub?: HubOptions): Promise<string> {
  const source = modelSource(spec);
  return source.kind === "local" ? source.path : (await resolveHubModel(source.repo, hub)).dir;
}

export type FloatDType = "F32" | "F16" | "BF16";

const DTYPE_NAMES: Record<string, FloatDType> = {
  f32: "F32", fp32: "F32", float32: "F32", float: "F32",
  f16: "F16", fp16: "F16", float16: "F16", half: "F16",
  bf16: "BF16", bfloat16: "BF16",
};

/** "float16", "fp16", "half", "F16", "torch.float16" → "F16"; null for a name we do not know. */
export function parseDType(name: string): FloatDType | null {
  return DTYPE_NAMES[name.toLowerCase().replace(/^torch\./, "")] ?? null;
}

/** The names parseDType accepts, for messages. */
export const DTYPE_HELP = "f32|f16|bf16 (or float32, fp16, float16, half, bfloat16, ...)";
