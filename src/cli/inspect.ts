/**
 * `inspect`: what a checkpoint holds (format, config, tensor names, dtypes, shapes, parameter
 * count) without scoring anything. For a Hub repo with safetensors, only the headers are read,
 * with HTTP range requests: nothing is downloaded.
 */
import { printable, printableJson } from "../errors.js";
import { readConfig, type GPT2Config } from "../model/config.js";
import { openCheckpoint } from "../formats/checkpoint.js";
import { inspectHubModel, type HubOptions } from "../hub/hub.js";
import { modelSource } from "../model/resolve.js";
import { locate } from "../model/sync-model.js";
import { elementCount } from "../formats/tensor.js";
import { defineCommand, UsageError } from "./args.js";
import { hubOptions, MODEL_HELP, MODEL_OPTION, modelArg } from "./common.js";

export const inspect = defineCommand({
  name: "inspect",
  summary: "Show what a checkpoint holds (format, config, tensors, dtypes, shapes, parameters) without scoring.",
  usage: "MODEL [--json]   (or --model MODEL)",
  options: { model: MODEL_OPTION, json: { type: "boolean", help: "print one JSON object instead of a table" } },
  details: `${MODEL_HELP}
For a Hub repo with safetensors only the headers are read (HTTP range requests).`,
  examples: ["gpt2-reward inspect ChaiML/gpt2_base_retry_and_continue_5m_reward_model", "gpt2-reward inspect --json ./reward-model"],
  async run(values, positionals) {
    const { model, rest } = modelArg("inspect", values.model, positionals, true);
    if (rest.length > 0) throw new UsageError(`inspect takes one MODEL, got also "${rest[0]}"`);
    const r = await inspectModel(model, hubOptions());
    process.stdout.write((values.json ? printableJson(r) : formatInspection(r)) + "\n");
    return 0;
  },
});

export interface Inspection {
  source: string;
  format: string;
  files: string[];
  config: GPT2Config | null;
  tensors: { name: string; dtype: string; shape: number[] }[];
  parameters: number;
}

export async function inspectModel(spec: string, hub?: HubOptions): Promise<Inspection> {
  const source = modelSource(spec);
  if (source.kind === "hub") {
    const r = await inspectHubModel(source.repo, hub);
    const tensors = Object.entries(r.tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    return { source: `${r.repo}@${r.revision}`, format: "safetensors (remote header)", files: r.files, config: null, tensors, parameters: r.parameterCount };
  }
  const { configFile, weightsPath } = locate(spec);
  const config = readConfig(configFile);
  const ckpt = openCheckpoint(weightsPath);
  try {
    const tensors = ckpt.source.names().map((name) => ({ name, ...ckpt.source.info(name) }));
    const parameters = tensors.reduce((n, t) => n + elementCount(t.shape), 0);
    return { source: spec, format: ckpt.format, files: [configFile, ...ckpt.files], config, tensors, parameters };
  } finally {
    ckpt.close();
  }
}

export function formatInspection(r: Inspection): string {
  const lines = [`${r.source}: ${r.format}, ${r.tensors.length} tensors, ${r.parameters.toLocaleString("en-US")} parameters`];
  for (const f of r.files) lines.push(`  file ${f}`);
  if (r.config) {
    const c = r.config;
    lines.push(`  config: ${c.n_layer} layers, n_embd ${c.n_embd}, ${c.n_head} heads, n_inner ${c.n_inner}, n_positions ${c.n_positions}, vocab ${c.vocab_size}, eps ${c.layer_norm_epsilon}`);
    lines.push(`  labels: ${c.labels.join(", ")}; pad_token_id ${c.pad_token_id ?? "none (scores read the last token)"}`);
  }
  // Names come from the file: escaped and capped. A loop, not Math.max(...names): 130,000 arguments overflow the stack.
  const names = r.tensors.map((t) => printable(t.name));
  let width = 0;
  for (const n of names) width = Math.max(width, n.length);
  r.tensors.forEach((t, i) => lines.push(`  ${names[i].padEnd(width)}  ${printable(t.dtype).padEnd(4)}  [${t.shape.join(", ")}]`));
  return lines.join("\n");
}
