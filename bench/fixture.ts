/**
 * A GPT-2 base reward model with random weights, written once to os.tmpdir() as F32
 * safetensors (~500 MB) + config.json (and once more as BF16 for the --dtype section): the end-to-end and load benchmarks need the real shapes,
 * not real weights, and must never download anything. The file is reused while its header
 * still validates (which also checks that the data runs exactly to the end of the file).
 */
import "../src/platform/node.js";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSafetensorsHeader } from "../src/formats/safetensors.js";
import { writeSafetensors } from "../src/formats/write-safetensors.js";
import type { RawTensor } from "../src/formats/tensor.js";
import { fillUniform, rng } from "./random.js";

/** GPT-2 base ("gpt2" on the Hub) with a one-logit reward head. */
export const GPT2_BASE = { n_layer: 12, n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 50257, num_labels: 1 };

export interface Fixture {
  dir: string;
  file: string;
  bytes: number;
  created: boolean;
}

/** The tensors of GPT2ForSequenceClassification in HF's order: name, shape, std, mean. */
function tensorPlan(): [string, number[], number, number][] {
  const { n_layer: L, n_embd: C, n_positions: P, vocab_size: V, num_labels } = GPT2_BASE;
  const plan: [string, number[], number, number][] = [
    ["transformer.wte.weight", [V, C], 0.02, 0],
    ["transformer.wpe.weight", [P, C], 0.01, 0],
  ];
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}`;
    plan.push(
      [`${h}.ln_1.weight`, [C], 0.05, 1], [`${h}.ln_1.bias`, [C], 0.02, 0],
      [`${h}.attn.c_attn.weight`, [C, 3 * C], 0.02, 0], [`${h}.attn.c_attn.bias`, [3 * C], 0.02, 0],
      [`${h}.attn.c_proj.weight`, [C, C], 0.02, 0], [`${h}.attn.c_proj.bias`, [C], 0.02, 0],
      [`${h}.ln_2.weight`, [C], 0.05, 1], [`${h}.ln_2.bias`, [C], 0.02, 0],
      [`${h}.mlp.c_fc.weight`, [C, 4 * C], 0.02, 0], [`${h}.mlp.c_fc.bias`, [4 * C], 0.02, 0],
      [`${h}.mlp.c_proj.weight`, [4 * C, C], 0.02, 0], [`${h}.mlp.c_proj.bias`, [C], 0.02, 0],
    );
  }
  plan.push(["transformer.ln_f.weight", [C], 0.05, 1], ["transformer.ln_f.bias", [C], 0.02, 0], ["score.weight", [num_labels, C], 0.02, 0]);
  return plan;
}

/** Where ensureRandomGpt2Base writes the model (bench/export_onnx.py exports it for the peers). */
export const RANDOM_GPT2_BASE_DIR = join(tmpdir(), "gpt2-reward-bench", "gpt2-base-random-f32-v1");

export function ensureRandomGpt2Base(log: (msg: string) => void): Fixture {
  return ensureModel(RANDOM_GPT2_BASE_DIR, "F32", log);
}

/** The same random weights stored as BF16 (rounded to nearest even), ~250 MB: for `--dtype bf16`. */
export function ensureRandomGpt2BaseBF16(log: (msg: string) => void): Fixture {
  return ensureModel(join(tmpdir(), "gpt2-reward-bench", "gpt2-base-random-bf16-v1"), "BF16", log);
}

function ensureModel(dir: string, dtype: "F32" | "BF16", log: (msg: string) => void): Fixture {
  const file = join(dir, "model.safetensors");
  const plan = tensorPlan();
  if (existsSync(file) && existsSync(join(dir, "config.json"))) {
    try {
      const header = readSafetensorsHeader(file);
      if (header.entries.size === plan.length) return { dir, file, bytes: header.fileSize, created: false };
    } catch {
      // truncated or from another version of this script: write it again
    }
  }
  log(`writing random GPT-2 base weights (${dtype}) to ${file} (once)...`);
  mkdirSync(dir, { recursive: true });
  const next = rng(0x6b2);
  const tensors: [string, RawTensor][] = plan.map(([name, shape, std, mean]) => {
    const x = fillUniform(new Float32Array(shape.reduce((a, b) => a * b, 1)), next, std, mean);
    return [name, { dtype, shape, bytes: dtype === "F32" ? new Uint8Array(x.buffer) : new Uint8Array(toBF16(x).buffer) }];
  });
  writeSafetensors(file, tensors);
  const config = { model_type: "gpt2", architectures: ["GPT2ForSequenceClassification"], ...GPT2_BASE,
    n_ctx: GPT2_BASE.n_positions, activation_function: "gelu_new", layer_norm_epsilon: 1e-5, pad_token_id: 50256 };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  return { dir, file, bytes: readSafetensorsHeader(file).fileSize, created: true };
}

/** F32 → BF16 bits, rounded to nearest even (the values are finite). */
function toBF16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}
