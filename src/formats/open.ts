/**
 * Finds and opens a model's weights, as a TensorSource the loader reads tensor by tensor.
 * A folder resolves like Hugging Face does: model.safetensors, then the sharded
 * model.safetensors.index.json, then pytorch_model.bin, then pytorch_model.bin.index.json.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { FormatError, Gpt2RewardError } from "../errors.js";
import type { TensorSource } from "../tensor.js";
import { safetensorsSource } from "./safetensors.js";

export interface OpenCheckpoint {
  format: "safetensors" | "pytorch";
  files: string[];
  source: TensorSource;
  close(): void;
}

export const WEIGHT_FILES = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"] as const;

export function openCheckpoint(path: string): OpenCheckpoint {
  let file = path;
  if (statSync(path).isDirectory()) {
    const found = WEIGHT_FILES.map((f) => join(path, f)).find((f) => existsSync(f));
    if (!found) throw new Gpt2RewardError(`${path}: no weights found (looked for ${WEIGHT_FILES.join(", ")})`);
    file = found;
  }
  if (file.endsWith(".safetensors")) {
    const src = safetensorsSource(file);
    return { format: "safetensors", files: [file], source: src, close: () => src.close() };
  }
  throw new FormatError(file, "unrecognized weights file (expected .safetensors, .bin or an .index.json)");
}
