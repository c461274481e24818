/**
 * GPT-2 weights, named after the checkpoint keys, moved from a checkpoint into the kernels'
 * memory: every tensor's shape is checked against the config first, and a missing or misshapen
 * tensor is an error that names it.
 */
import type { Kernels, PackedLinear } from "../../kernels/contract.js";
import { countNonFinite16, type WeightDType } from "../../kernels/half.js";
import type { GPT2Config } from "./config.js";
import { FormatError } from "../errors.js";
import { DTYPE_BYTES, decodeFloat32Into, elementCount, type DType, type TensorSource } from "../formats/tensor.js";

/** Floats per read of a tensor that is not packed (wte is 154 MB): 1 MiB, checked while in cache. */
const READ_BLOCK = 1 << 18;

export interface LayerNormWeights {
  weight: Float32Array; // (C)
  bias: Float32Array; // (C)
}

export interface BlockWeights {
  ln_1: LayerNormWeights;
  attn: { c_attn: PackedLinear; c_proj: PackedLinear }; // (C, 3C), (C, C)
  ln_2: LayerNormWeights;
  mlp: { c_fc: PackedLinear; c_proj: PackedLinear }; // (C, n_inner), (n_inner, C)
}

export interface GPT2Weights {
  wte: Float32Array | Uint16Array; // (vocab_size, C)
  /** F32, or 16-bit (a Uint16Array wte) when loaded with --dtype from a checkpoint storing it so. */
  wteDType: WeightDType;
  wpe: Float32Array; // (n_positions, C)
  h: BlockWeights[];
  ln_f: LayerNormWeights;
  /** The reward head, nn.Linear(C, num_labels, bias=False): (num_labels, C). */
  score: Float32Array;
}

export interface LoadReport {
  /** Tensors the checkpoint holds that GPT-2 does not use (besides the known attention buffers). */
  unused: string[];
  /** Tensors holding NaN or ±Inf, with how many such values. */
  nonFinite: { name: string; count: number }[];
}

/** Buffers that old GPT-2 checkpoints save but that carry no weights (the causal mask and its fill value). */
export const IGNORED_BUFFERS = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;

/**
 * `linearDType`: how the Conv1D weights (85M of GPT-2 base's 124M parameters) are kept: "F32",
 * or 16-bit as the checkpoint stores them, for half the memory and the same logits
 * (kernels/half.ts); a checkpoint storing them otherwise is refused.
 */
export function loadWeights(src: TensorSource, config: GPT2Config, kernels: Kernels, linearDType: WeightDType = "F32"): { weights: GPT2Weights; report: LoadReport } {
  const { n_embd: C, n_inner, n_layer, vocab_size, n_positions, num_labels } = config;
  const present = new Set(src.names());
  const used = new Set<string>();
  const nonFinite: LoadReport["nonFinite"] = [];
  let scratch = new Uint8Array(0);

  // HF's GPT2ForSequenceClassification saves the body under "transformer."; a bare GPT2Model
  // checkpoint (or an export that stripped it) does not. Accept both, never a mix of the two.
  const prefix = present.has("transformer.wte.weight") ? "transformer." : "";
  const key = (name: string) => (name === "score.weight" ? name : prefix + name);

  /**
   * Checks that tensor `name` is in the file with the expected shape and returns its key and
   * dtype. Every read goes through here before its buffer is allocated, so every allocation is
   * backed by a tensor the file really declares: a config asking for vocab_size 8,000,000 must
   * be refuted by the 3 MB file before 3 GB are allocated, not after.
   */
  const find = (name: string, shape: number[]): { k: string; dtype: DType } => {
    const k = key(name);
    if (!present.has(k)) {
      const hint = name === "score.weight" ? " (is this a GPT2ForSequenceClassification checkpoint? a language model has no score head)" : "";
      throw new FormatError(src.file, `missing tensor ${k}${hint}`);
    }
    const info = src.info(k);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new FormatError(src.file, `tensor ${k} has shape [${info.shape.join(", ")}], config expects [${shape.join(", ")}]`);
    }
    used.add(k);
    return { k, dtype: info.dtype };
  };
  /** Reads elements [first, first + dst.length) of tensor k as F32 into dst. */
  const readInto = (k: string, dtype: DType, dst: Float32Array, first: number): void => {
    const item = DTYPE_BYTES[dtype];
    const bytes = dst.length * item;
    if (dtype === "F32") {
      // Straight into its final place: no intermediate copy of the largest tensors (wte is 154 MB).
      src.read(k, new Uint8Array(dst.buffer, dst.byteOffset, bytes), first * item);
    } else {
      if (scratch.length < bytes) scratch = new Uint8Array(bytes);
      const raw = scratch.subarray(0, bytes);
      src.read(k, raw, first * item);
      decodeFloat32Into(dst, dtype, raw, src.file, k);
    }
  };
  const noteNonFinite = (k: string, count: number) => {
    if (count > 0) nonFinite.push({ name: k, count });
  };
  /**
   * Reads tensor `name` into the buffer `alloc(n)` returns, and counts its NaN/Inf for the load
   * report. A megabyte at a time: each block is checked right after the read, while in cache.
   */
  const readF32 = (name: string, shape: number[], alloc: (n: number) => Float32Array): Float32Array => {
    const { k, dtype } = find(name, shape);
    const dst = alloc(elementCount(shape));
    let count = 0;
    for (let at = 0; at < dst.length; at += READ_BLOCK) {
      const block = dst.subarray(at, at + READ_BLOCK);
      readInto(k, dtype, block, at);
      count += kernels.countNonFinite(block);
    }
    noteNonFinite(k, count);
    return dst;
  };
  /** Reads raw 16-bit values [first, first + dst.length) of tensor k into dst, as they are. */
  const readInto16 = (k: string, dst: Uint16Array, first: number): void =>
    src.read(k, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), 2 * first);
  /** Reads a 16-bit tensor's n raw values as they are, counting its NaN/Inf a block at a time. */
  const read16 = (k: string, n: number, dtype: "BF16" | "F16"): Uint16Array => {
    const dst = new Uint16Array(n);
    let count = 0;
    for (let at = 0; at < n; at += 2 * READ_BLOCK) {
      const block = dst.subarray(at, at + 2 * READ_BLOCK);
      readInto16(k, block, at);
      count += countNonFinite16(block, dtype);
    }
    noteNonFinite(k, count);
    return dst;
  };
  // The arena's "out of model memory" RangeError (past wasm32's 4 GiB) is a limit a user meets
  // with a big model, not a bug: it gets a one-line error naming the file.
  const fits = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof RangeError && e.message.startsWith("out of model memory")) throw new FormatError(src.file, `the weights do not fit: ${e.message}`);
      throw e;
    }
  };
  const modelMemory = (n: number): Float32Array => fits(() => kernels.alloc(n));
  const vector = (name: string, n: number) => readF32(name, [n], modelMemory);
  const layerNorm = (name: string): LayerNormWeights => ({ weight: vector(`${name}.weight`, C), bias: vector(`${name}.bias`, C) });
  const linear = (name: string, inDim: number, outDim: number): PackedLinear => {
    // The Conv1D weight goes from the file to the kernels in blocks of rows, each packed while
    // in cache, which also counts its NaN/Inf: one pass over 85M floats, no second copy.
    const { k, dtype } = find(`${name}.weight`, [inDim, outDim]);
    if (linearDType !== "F32" && dtype !== linearDType) {
      throw new FormatError(src.file, `tensor ${k} is stored as ${dtype}, so its weights cannot stay ${linearDType} (--dtype ${linearDType.toLowerCase()} keeps the checkpoint's own 16-bit values; to round them, convert the model first: gpt2-reward convert MODEL OUT.safetensors --dtype ${linearDType.toLowerCase()})`);
    }
    const b = readF32(`${name}.bias`, [outDim], (n) => new Float32Array(n));
    const packed = fits(() => linearDType === "F32"
      ? kernels.packLinearRows(inDim, outDim, b, (r0, r1, into) => readInto(k, dtype, into, r0 * outDim))
      : kernels.packLinearRows16(inDim, outDim, b, linearDType, (r0, r1, into) => readInto16(k, into, r0 * outDim)));
    noteNonFinite(k, packed.nonFinite);
    return packed;
  };

  // Under --dtype f16|bf16, wte (39M of GPT-2 base's 124M parameters) stays 16-bit too if the
  // checkpoint stores it so; it is only ever read a row per token (kernels/embedding.ts).
  const wteInfo = find("wte.weight", [vocab_size, C]);
  const wteDType: WeightDType = linearDType !== "F32" && wteInfo.dtype === linearDType ? linearDType : "F32";
  const wte = wteDType === "F32" ? readF32("wte.weight", [vocab_size, C], modelMemory) : read16(wteInfo.k, vocab_size * C, wteDType);
  const wpe = readF32("wpe.weight", [n_positions, C], modelMemory);
  const h: BlockWeights[] = [];
  for (let l = 0; l < n_layer; l++) {
    h.push({
      ln_1: layerNorm(`h.${l}.ln_1`),
      attn: { c_attn: linear(`h.${l}.attn.c_attn`, C, 3 * C), c_proj: linear(`h.${l}.attn.c_proj`, C, C) },
      ln_2: layerNorm(`h.${l}.ln_2`),
      mlp: { c_fc: linear(`h.${l}.mlp.c_fc`, C, n_inner), c_proj: linear(`h.${l}.mlp.c_proj`, n_inner, C) },
    });
  }
  const ln_f = layerNorm("ln_f");
  const score = readF32("score.weight", [num_labels, C], modelMemory);

  const unused = [...present].filter((k) => !used.has(k) && !IGNORED_BUFFERS.test(k));
  return { weights: { wte, wteDType, wpe, h, ln_f, score }, report: { unused, nonFinite } };
}
