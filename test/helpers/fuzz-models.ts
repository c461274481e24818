/**
 * A tiny GPT-2 reward model (1 layer, 8 wide, a 16-token vocabulary) for the fuzz suite: its
 * config, its tensor list, and safetensors bytes written here from raw JSON text, so a test can
 * put into a header what no well-behaved writer would (1e400, -0, duplicate keys, deep nesting).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/model/config.js";
import { DTYPE_BYTES, type DType } from "../../src/formats/tensor.js";
import { concat } from "./fuzz-common.js";

export const TINY_CONFIG_JSON = {
  model_type: "gpt2", n_layer: 1, n_embd: 8, n_head: 2, n_inner: 16, n_positions: 8, vocab_size: 16, num_labels: 1,
} as const;
export const TINY_CONFIG = parseConfig(TINY_CONFIG_JSON, "config.json");

/** The tensors of GPT2ForSequenceClassification for TINY_CONFIG, in checkpoint order. */
export const TINY_TENSORS: [string, number[]][] = [
  ["transformer.wte.weight", [16, 8]],
  ["transformer.wpe.weight", [8, 8]],
  ["transformer.h.0.ln_1.weight", [8]],
  ["transformer.h.0.ln_1.bias", [8]],
  ["transformer.h.0.attn.c_attn.weight", [8, 24]],
  ["transformer.h.0.attn.c_attn.bias", [24]],
  ["transformer.h.0.attn.c_proj.weight", [8, 8]],
  ["transformer.h.0.attn.c_proj.bias", [8]],
  ["transformer.h.0.ln_2.weight", [8]],
  ["transformer.h.0.ln_2.bias", [8]],
  ["transformer.h.0.mlp.c_fc.weight", [8, 16]],
  ["transformer.h.0.mlp.c_fc.bias", [16]],
  ["transformer.h.0.mlp.c_proj.weight", [16, 8]],
  ["transformer.h.0.mlp.c_proj.bias", [8]],
  ["transformer.ln_f.weight", [8]],
  ["transformer.ln_f.bias", [8]],
  ["score.weight", [1, 8]],
];

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

export function byteSize(dtype: DType, shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1) * DTYPE_BYTES[dtype];
}

/** A safetensors file from a header's JSON text and the data region. `lengthField` overrides the 8-byte header length. */
export function safetensorsFromText(headerJson: string, data: Uint8Array, lengthField?: bigint): Uint8Array {
  let json = Buffer.from(headerJson, "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthField ?? BigInt(json.length));
  return concat(prefix, json, data);
}

/** A well-formed safetensors file of these tensors, back to back in the given order. */
export function safetensorsBytes(tensors: TensorSpec[]): Uint8Array {
  const header: Record<string, unknown> = Object.create(null);
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  return safetensorsFromText(JSON.stringify(header), concat(...tensors.map((t) => t.data)));
}

/** F32 bytes of small deterministic values (finite, so a clean file loads without warnings). */
export function f32Data(n: number, seed: number): Uint8Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 7.13 + i * 0.37) * 0.5;
  return new Uint8Array(a.buffer);
}

/** A fresh temporary folder; `cleanup` removes it. */
export function tempDir(prefix: string): { dir: string; cleanup(): void; fresh(): string } {
  const dir = mkdtempSync(join(tmpdir(), `gpt2-reward-${prefix}-`));
  let n = 0;
  return {
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    /** A new empty folder inside, one per test, so tests never see each other's files. */
    fresh: () => {
      const d = join(dir, `t${n++}`);
      mkdirSync(d);
      return d;
    },
  };
}

/** `[[[ … ]]]` nested `depth` deep: JSON.parse takes it, JSON.stringify and String() overflow the stack on it. */
export function deepJson(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}
