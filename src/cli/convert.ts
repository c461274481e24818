/**
 * `convert`: any checkpoint we read (safetensors, shards, pytorch_model.bin) → one standard
 * safetensors file, optionally in another float dtype. The 2023-era attention buffers
 * (attn.bias, attn.masked_bias) are dropped, as transformers does when it saves today: they
 * hold no weights.
 *
 * Nothing is lost by mistake: the output's folder is created, an existing output is replaced only
 * with --force and never when it is one of the files being read, and config.json is written
 * beside it only where none is (or the same one is) — a folder already describing another model
 * keeps its config. The weights go to an exclusively created temporary file, renamed when whole.
 *
 * The checkpoint is read through the same reader as scoring (openCheckpoint's TensorSource), one
 * tensor at a time as it is written, so converting holds one tensor (and its converted copy), not
 * the checkpoint.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { Gpt2RewardError } from "../errors.js";
import { openCheckpoint } from "../formats/checkpoint.js";
import { convertTensor, writeSafetensors, type TensorToWrite } from "../formats/write-safetensors.js";
import { locate } from "../model/sync-model.js";
import { readConfig } from "../model/config.js";
import { readTensor, type DType } from "../formats/tensor.js";
import { IGNORED_BUFFERS } from "../model/weights.js";
import { DTYPE_HELP, parseDType, resolveModel, type FloatDType } from "../model/resolve.js";
import { defineCommand, UsageError } from "./args.js";
import { hubOptions, MODEL_HELP, MODEL_OPTION, modelArg } from "./common.js";
import { describeErrno } from "./lines.js";

export const convert = defineCommand({
  name: "convert",
  summary: "Write any checkpoint we read (safetensors, shards, pytorch_model.bin) as one safetensors file.",
  usage: "MODEL OUT.safetensors [--dtype D] [--force]   (or --model MODEL --output OUT.safetensors)",
  options: {
    model: MODEL_OPTION,
    output: { type: "string", short: "o", value: "FILE", help: "the safetensors file to write (its folder is created)" },
    dtype: { type: "string", value: "DTYPE", default: "as stored", help: `convert the float tensors to this dtype: ${DTYPE_HELP}` },
    force: { type: "boolean", short: "f", help: "replace an existing output file and a different config.json beside it" },
  },
  details: `${MODEL_HELP}
config.json is written beside the output (with torch_dtype set to --dtype) unless one is there
already; one that differs is refused without --force. An output that is one of the files being
read is always refused. The attention mask buffers of older checkpoints (attn.bias,
attn.masked_bias) are dropped: they hold no weights.`,
  examples: ["gpt2-reward convert ./pytorch-model ./converted/model.safetensors --dtype float16"],
  async run(values, positionals) {
    let { model, rest } = modelArg("convert", values.model, positionals, true);
    if (values.output !== undefined) rest = [...rest, values.output];
    if (rest.length !== 1) throw new UsageError("convert takes MODEL and one OUT.safetensors");
    const out = rest[0];
    const dtype = values.dtype === undefined ? null : parseDType(values.dtype);
    if (values.dtype !== undefined && !dtype) throw new UsageError(`--dtype must be ${DTYPE_HELP}, got "${values.dtype}"`);
    model = await resolveModel(model, hubOptions());
    const r = convertModel(model, out, dtype, values.force ?? false);
    process.stderr.write(
      `wrote ${out}: ${r.tensors} tensors${dtype ? ` as ${dtype}` : ""}` +
        (r.dropped.length ? `, dropped ${r.dropped.length} attention mask buffer(s)` : "") +
        (r.configWritten ? `; wrote ${r.configWritten}` : "") + "\n",
    );
    return 0;
  },
});

export type ConvertDType = FloatDType;

/** The float dtypes --dtype converts; others (the uint8 attention mask, int64 steps) are written as stored. */
const CONVERTIBLE: ReadonlySet<DType> = new Set(["F32", "F16", "BF16", "F64"]);

/** torch_dtype as transformers writes it in config.json. */
const TORCH_DTYPE: Record<ConvertDType, string> = { F32: "float32", F16: "float16", BF16: "bfloat16" };

export interface ConvertResult {
  tensors: number;
  dropped: string[];
  configWritten: string | null;
}

export function convertModel(modelPath: string, out: string, dtype: ConvertDType | null, force = false): ConvertResult {
  const { configFile, weightsPath } = locate(modelPath);
  readConfig(configFile); // refuse a model we could not score before writing anything
  if (!out.endsWith(".safetensors")) throw new Gpt2RewardError(`${out}: the output file name must end in .safetensors`);
  const outStat = statOrNull(out);
  if (outStat?.isDirectory()) throw new Gpt2RewardError(`${out}: is a directory; give the file to write, e.g. ${join(out, "model.safetensors")}`);
  if (outStat && !force) throw new Gpt2RewardError(`${out}: already exists; use --force to replace it`);

  // The config beside the output: the model's, with torch_dtype saying what the weights now are.
  const config = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>;
  if (dtype) config.torch_dtype = TORCH_DTYPE[dtype];
  const outConfig = join(dirname(out), "config.json");
  const existing = readJsonOrUndefined(outConfig);
  const configSame = existing !== undefined && canonical(existing) === canonical(config);
  if (existing !== undefined && !configSame && !force) {
    throw new Gpt2RewardError(`${outConfig}: already there and describes another model (or dtype) than ${configFile}${dtype ? ` as ${TORCH_DTYPE[dtype]}` : ""}; convert into another folder, or use --force to replace it`);
  }

  const ckpt = openCheckpoint(weightsPath);
  const tensors = new Map<string, TensorToWrite>();
  const dropped: string[] = [];
  try {
    // Never replace what we are reading (convert M M/model.safetensors --dtype bf16 would destroy the F32 weights).
    if (outStat) {
      for (const f of [configFile, ...ckpt.files]) {
        const st = statOrNull(f);
        if (st && st.dev === outStat.dev && st.ino === outStat.ino) throw new Gpt2RewardError(`${out}: is the checkpoint being converted (${f}); write to another file`);
      }
    }
    const src = ckpt.source;
    for (const name of src.names()) {
      if (IGNORED_BUFFERS.test(name)) {
        dropped.push(name);
        continue;
      }
      const { dtype: stored, shape } = src.info(name);
      const to = dtype !== null && CONVERTIBLE.has(stored) ? dtype : null;
      // Read when its turn to be written comes, then let go.
      const bytes = () => (to ? convertTensor(readTensor(src, name), to) : readTensor(src, name)).bytes;
      tensors.set(name, { dtype: to ?? stored, shape, bytes });
    }
    try {
      mkdirSync(dirname(out), { recursive: true });
    } catch (e) {
      throw new Gpt2RewardError(`${dirname(out)}: ${describeErrno(e, "cannot create the folder")}`);
    }
    writeSafetensors(out, tensors, { format: "pt" });
  } finally {
    ckpt.close();
  }
  // A safetensors file alone is not a model: put the config beside it.
  if (configSame) return { tensors: tensors.size, dropped, configWritten: null };
  writeFileExclusively(outConfig, JSON.stringify(config, null, 2) + "\n");
  return { tensors: tensors.size, dropped, configWritten: outConfig };
}

function statOrNull(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

function readJsonOrUndefined(file: string): unknown {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null; // there, but not JSON: differs from any config
  }
}

/** JSON with sorted keys: two configs are the same whatever their key order and spacing. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_, x) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}

/** Written to a temporary file created with O_EXCL in the same folder, then renamed over `file`. */
function writeFileExclusively(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let created = false;
  try {
    const fd = openSync(tmp, "wx", 0o644);
    created = true;
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    if (created) rmSync(tmp, { force: true });
    throw new Gpt2RewardError(`${file}: ${describeErrno(e, "cannot write")}`);
  }
}
