/**
 * Every tensor of a checkpoint, read whole through the readers' TensorSources (the one path the
 * loader and `convert` use), for tests that compare what the readers give.
 */
import { openCheckpoint } from "../../src/formats/checkpoint.js";
import { pytorchSource } from "../../src/formats/pytorch.js";
import { safetensorsSource } from "../../src/formats/safetensors.js";
import { readTensor, type RawTensor, type TensorSource } from "../../src/formats/tensor.js";
import { bufferSource } from "../../src/platform/bytes.js";

export function readAllTensors(src: TensorSource): Map<string, RawTensor> {
  return new Map(src.names().map((name) => [name, readTensor(src, name)]));
}

/** A checkpoint folder or file (shards too): its format, the files read and every tensor. */
export function checkpointTensors(path: string) {
  const ckpt = openCheckpoint(path);
  try {
    return { format: ckpt.format, files: ckpt.files, tensors: readAllTensors(ckpt.source) };
  } finally {
    ckpt.close();
  }
}

/** A safetensors file's tensors and `__metadata__`. */
export function safetensorsTensors(file: string) {
  const src = safetensorsSource(file);
  try {
    return { tensors: readAllTensors(src), metadata: src.header.metadata };
  } finally {
    src.close();
  }
}

/** A PyTorch checkpoint held in memory (`file` only names it in errors). */
export function pytorchTensors(file: string, bytes: Uint8Array): Map<string, RawTensor> {
  const src = pytorchSource(file, bufferSource(bytes));
  try {
    return readAllTensors(src);
  } finally {
    src.close();
  }
}
