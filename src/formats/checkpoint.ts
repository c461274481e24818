/**
 * Finds and opens a model's weights in a folder (or one file), whatever format Hugging Face
 * saved them in. A folder is looked at in the order transformers prefers:
 *   model.safetensors, model.safetensors.index.json (+ shards),
 *   pytorch_model.bin, pytorch_model.bin.index.json (+ shards).
 * Index files are checked before any shard is read: `weight_map` must map each tensor name to a
 * plain file name in the same folder (no paths, no `..`), each shard must exist, and each tensor
 * listed must be found in its shard.
 */
import { FormatError } from "../errors.js";
import { platform } from "../platform/platform.js";
import type { TensorSource } from "./tensor.js";
import { pytorchSource } from "./pytorch.js";
import { safetensorsSource } from "./safetensors.js";

export type CheckpointFormat = "safetensors" | "pytorch";

const CANDIDATES: [string, CheckpointFormat, boolean][] = [
  ["model.safetensors", "safetensors", false],
  ["model.safetensors.index.json", "safetensors", true],
  ["pytorch_model.bin", "pytorch", false],
  ["pytorch_model.bin.index.json", "pytorch", true],
];

/**
 * config.json and index files are read whole, so they are capped: a real one is a few KB (an
 * index of 100,000 tensors some 10 MB); a link to /dev/zero or a 600 MB "config" is refused.
 */
export const MAX_JSON_BYTES = 32 * 1024 * 1024;

/** The weight files a model folder may hold, in the order they are preferred. */
export const WEIGHT_FILES = CANDIDATES.map((c) => c[0]);

/** Which file of a folder (or which file `path` is) holds the weights, and how. */
function resolveCheckpoint(path: string): { file: string; format: CheckpointFormat; index: boolean } {
  const fs = platform().files;
  const kind = fs.kind(path);
  if (kind === undefined) throw new FormatError(path, "cannot open: ENOENT");
  if (kind === "dir") {
    for (const [name, format, index] of CANDIDATES) {
      const file = fs.join(path, name);
      if (fs.kind(file) !== undefined) return { file, format, index };
    }
    throw new FormatError(path, `no checkpoint found: looked for ${WEIGHT_FILES.join(", ")}`);
  }
  return { file: path, format: guessFormat(path), index: path.endsWith(".index.json") };
}

export interface OpenCheckpoint {
  format: CheckpointFormat;
  /** The files read, in order (the index file first when there is one). */
  files: string[];
  source: TensorSource;
  close(): void;
}

/**
 * Opens the checkpoint in a model folder, or the single checkpoint or index file `path` names,
 * for a reader that takes it tensor by tensor: the model's loader, and `convert`. Every file (one
 * or shards, safetensors or a PyTorch zip or legacy file) is read with positional reads straight
 * into the reader's buffer, never whole: a safetensors header or a PyTorch file's directory and
 * pickles say where each tensor lies.
 */
export function openCheckpoint(path: string): OpenCheckpoint {
  const { file, format, index } = resolveCheckpoint(path);
  const open = format === "pytorch" ? pytorchSource : safetensorsSource;
  if (!index) {
    const src = open(file);
    return { format, files: [file], source: src, close: () => src.close() };
  }
  const { shards, folder } = readIndex(file);
  const sources: ReturnType<typeof open>[] = [];
  const owner = new Map<string, (typeof sources)[number]>();
  try {
    for (const shard of shards.keys()) sources.push(open(platform().files.join(folder, shard)));
    sources.forEach((src, i) => {
      const shard = [...shards.keys()][i];
      const names = new Set(src.names());
      for (const name of shards.get(shard)!) {
        if (!names.has(name)) throw new FormatError(file, `weight_map puts tensor ${name} in ${shard}, which does not contain it`);
      }
      for (const name of names) {
        if (owner.has(name)) throw new FormatError(src.file, `tensor ${name} is also in shard ${platform().files.basename(owner.get(name)!.file)}`);
        owner.set(name, src);
      }
    });
  } catch (e) {
    for (const s of sources) s.close();
    throw e;
  }
  return {
    format,
    files: [file, ...sources.map((s) => s.file)],
    source: {
      file,
      names: () => [...owner.keys()],
      info: (name) => owner.get(name)!.info(name),
      read: (name, dst, byteOffset) => owner.get(name)!.read(name, dst, byteOffset),
    },
    close: () => sources.forEach((s) => s.close()),
  };
}

/** By name first (`.safetensors`, `.bin`, `.pt`, `.pth`), else by the first bytes. */
function guessFormat(file: string): CheckpointFormat {
  const name = platform().files.basename(file).replace(/\.index\.json$/, "");
  if (name.endsWith(".safetensors")) return "safetensors";
  if (/\.(bin|pt|pth|ckpt)$/.test(name)) return "pytorch";
  if (file.endsWith(".index.json")) throw new FormatError(file, "index file name should end in .safetensors.index.json or .bin.index.json");
  const bytes = platform().files.open(file);
  let head: Uint8Array;
  try {
    head = bytes.read(0, Math.min(4, bytes.size));
  } finally {
    bytes.close();
  }
  // "PK\x03\x04" (zip, torch ≥ 1.6) or PROTO 2 (legacy torch pickle); anything else is tried as safetensors.
  return (head[0] === 0x50 && head[1] === 0x4b) || head[0] === 0x80 ? "pytorch" : "safetensors";
}

/** Validates an index file's weight_map; returns shard file name → tensor names, shards sorted by name. */
export function parseIndex(indexFile: string, text: string): Map<string, string[]> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(indexFile, `not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new FormatError(indexFile, "has no weight_map object (tensor name → shard file)");
  }
  const shards = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== "string") throw new FormatError(indexFile, `weight_map entry ${tensor} is not a file name`);
    if (!isPlainFileName(shard)) {
      throw new FormatError(indexFile, `weight_map entry ${tensor} names shard ${JSON.stringify(shard)}, which is not a plain file name in the checkpoint's folder`);
    }
    const names = shards.get(shard);
    if (names) names.push(tensor);
    else shards.set(shard, [tensor]);
  }
  if (shards.size === 0) throw new FormatError(indexFile, "weight_map is empty");
  return new Map([...shards].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function isPlainFileName(name: string): boolean {
  return name.length > 0 && name !== "." && name !== ".." && !/[/\\\0]/.test(name) && !/^[A-Za-z]:/.test(name);
}

/** Reads and validates an index file; every shard it names exists. */
function readIndex(indexFile: string): { shards: Map<string, string[]>; folder: string } {
  let text: string;
  try {
    text = platform().files.readText(indexFile, MAX_JSON_BYTES);
  } catch (e) {
    if (e instanceof FormatError) throw e; // a FIFO, a device, too large: it says so
    throw new FormatError(indexFile, `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const shards = parseIndex(indexFile, text);
  const fs = platform().files;
  const folder = fs.dirname(indexFile);
  for (const shard of shards.keys()) {
    if (fs.kind(fs.join(folder, shard)) === undefined) throw new FormatError(indexFile, `weight_map names shard ${shard}, which does not exist in ${folder}`);
  }
  return { shards, folder };
}
