/**
 * `convert`: any checkpoint we read (safetensors, shards, pytorch_model.bin) → one standard
 * safetensors file, optionally in another float dtype. The 2023-era attention buffers
 * (attn.bias, attn.masked_bias) are dropped, as transformers does when it saves today: they
 * hold no weights.
 */
import { copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Gpt2RewardError } from "../errors.js";
import { loadCheckpoint } from "../formats/checkpoint.js";
import { convertTensor, writeSafetensors } from "../formats/write-safetensors.js";
import { locate } from "../model/sync-model.js";
import { readConfig } from "../model/config.js";
import type { RawTensor } from "../formats/tensor.js";
import { IGNORED_BUFFERS } from "../model/weights.js";
import { DTYPE_HELP, parseDType, resolveModel, type FloatDType } from "../model/resolve.js";
import { defineCommand, UsageError } from "./args.js";
import { hubOptions, MODEL_HELP, MODEL_OPTION, modelArg } from "./common.js";

export const convert = defineCommand({
  name: "convert",
  summary: "Write any checkpoint we read (safetensors, shards, pytorch_model.bin) as one safetensors file.",
  usage: "MODEL OUT.safetensors [--dtype D]   (or --model MODEL --output OUT.safetensors)",
  options: {
    model: MODEL_OPTION,
    output: { type: "string", short: "o", value: "FILE", help: "the safetensors file to write" },
    dtype: { type: "string", value: "DTYPE", default: "as stored", help: `convert the float tensors to this dtype: ${DTYPE_HELP}` },
  },
  details: `${MODEL_HELP}
config.json is copied beside the output unless one is there. The attention mask buffers of
older checkpoints (attn.bias, attn.masked_bias) are dropped: they hold no weights.`,
  examples: ["gpt2-reward convert ./pytorch-model ./converted/model.safetensors --dtype f16"],
  async run(values, positionals) {
    let { model, rest } = modelArg("convert", values.model, positionals, true);
    if (values.output !== undefined) rest = [...rest, values.output];
    if (rest.length !== 1) throw new UsageError("convert takes MODEL and one OUT.safetensors");
    const out = rest[0];
    const dtype = values.dtype === undefined ? null : parseDType(values.dtype);
    if (values.dtype !== undefined && !dtype) throw new UsageError(`--dtype must be ${DTYPE_HELP}, got "${values.dtype}"`);
    model = await resolveModel(model, hubOptions());
    const r = convertModel(model, out, dtype);
    process.stderr.write(
      `wrote ${out}: ${r.tensors} tensors${dtype ? ` as ${dtype}` : ""}` +
        (r.dropped.length ? `, dropped ${r.dropped.length} attention mask buffer(s)` : "") +
        (r.configWritten ? `; copied config.json to ${r.configWritten}` : "") + "\n",
    );
    return 0;
  },
});

export type ConvertDType = FloatDType;

export interface ConvertResult {
  tensors: number;
  dropped: string[];
  configWritten: string | null;
}

export function convertModel(modelPath: string, out: string, dtype: ConvertDType | null): ConvertResult {
  const { configFile, weightsPath } = locate(modelPath);
  readConfig(configFile); // refuse a model we could not score before writing anything
  if (!out.endsWith(".safetensors")) throw new Gpt2RewardError(`${out}: the output file name must end in .safetensors`);
  const ckpt = loadCheckpoint(weightsPath);
  const tensors = new Map<string, RawTensor>();
  const dropped: string[] = [];
  for (const [name, t] of ckpt.tensors) {
    if (IGNORED_BUFFERS.test(name)) {
      dropped.push(name);
      continue;
    }
    const isFloat = t.dtype === "F32" || t.dtype === "F16" || t.dtype === "BF16" || t.dtype === "F64";
    tensors.set(name, dtype && isFloat ? convertTensor(t, dtype) : t);
  }
  writeSafetensors(out, tensors, { format: "pt" });
  // A safetensors file alone is not a model: put the config beside it unless one is there.
  const outConfig = join(dirname(out), "config.json");
  let configWritten: string | null = null;
  if (!existsSync(outConfig)) {
    copyFileSync(configFile, outConfig);
    configWritten = outConfig;
  }
  return { tensors: tensors.size, dropped, configWritten };
}
