/**
 * `verify`: score the texts of a golden file (written by fixtures/export_golden.py from PyTorch
 * and Hugging Face transformers) and compare every logit. This is how the full-size GPT-2 base
 * check is run, and how anyone can check us against their own transformers install.
 */
import { resolve } from "node:path";
import { FormatError } from "../errors.js";
import { SyncRewardModel, type LoadOptions } from "../model/sync-model.js";
import { POOLING_RULES } from "../model/pooling.js";
import { encode, truncateLeft } from "../model/tokenizer.js";
import { defineCommand, UsageError } from "./args.js";
import { LOAD_OPTIONS, loadOptions, MODEL_OPTION } from "./common.js";
import { readGoldenJson, textsBeside } from "./golden.js";

export const verify = defineCommand({
  name: "verify",
  summary: "Score a golden file's texts (written by fixtures/export_golden.py from PyTorch + transformers) and compare every logit.",
  usage: "--model MODEL --golden FILE [options]",
  options: {
    model: MODEL_OPTION,
    golden: { type: "string", short: "g", value: "FILE", help: 'the golden JSON file ("-" for standard input)' },
    tolerance: { type: "string", value: "X", default: "1e-4", help: "largest |logit - HF| accepted" },
    ...LOAD_OPTIONS,
  },
  details: "Prints OK or FAIL with the largest difference; exit status 0 for OK, 1 for FAIL.",
  examples: ["gpt2-reward verify -m fixtures/models/f16-8head-bin -g fixtures/golden/f16-8head-bin.json"],
  async run(values) {
    if (!values.model || !values.golden) throw new UsageError("verify needs --model and --golden");
    const tolerance = values.tolerance === undefined ? 1e-4 : Number(values.tolerance);
    if (!(tolerance > 0)) throw new UsageError(`--tolerance must be a positive number, got "${values.tolerance}"`);
    return runVerify(resolve(values.model), values.golden === "-" ? "-" : resolve(values.golden), tolerance, loadOptions(values));
  },
});

export interface GoldenSingle {
  text_index: number;
  ids: number[];
  truncated: boolean;
  logits: Record<string, number[]>;
}

export interface GoldenFile {
  model: string;
  max_length: number;
  pad_token_id: number;
  texts?: string[];
  singles: GoldenSingle[];
  batches: { text_indices: number[]; input_ids: number[][]; attention_mask: number[][]; logits: Record<string, number[][]>; hf_logits: number[][] }[];
}

/**
 * Reads a golden file (following "same_as", see golden.ts) and checks its shape before any number
 * is used, naming the first thing that does not fit. Texts come from the file, else from
 * texts.json beside it.
 */
export async function readGolden(path: string): Promise<GoldenFile> {
  const { file, json: o } = await readGoldenJson(path);
  const fail = (where: string, what: string): never => {
    throw new FormatError(file, `not a golden file of export_golden.py: ${where} ${what}`);
  };
  if (!Array.isArray(o.singles) || o.singles.length === 0) fail('"singles"', "is missing or empty");
  if (!Array.isArray(o.batches)) fail('"batches"', "is missing");
  if (!Number.isInteger(o.max_length)) fail('"max_length"', "is missing");
  const labels = Number.isInteger(o.num_labels) ? (o.num_labels as number) : undefined;
  const ints = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x));
  const row = (where: string, v: unknown) => {
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "number")) fail(where, "is not a list of logits");
    if (labels !== undefined && (v as number[]).length !== labels) fail(where, `has ${(v as number[]).length} logits, but "num_labels" is ${labels}`);
  };
  (o.singles as unknown[]).forEach((s, i) => {
    const x = s as Record<string, unknown>;
    if (typeof s !== "object" || s === null) fail(`singles[${i}]`, "is not an object");
    if (!ints(x.ids)) fail(`singles[${i}].ids`, "is not a list of token ids");
    if (typeof x.logits !== "object" || x.logits === null) fail(`singles[${i}].logits`, "is missing");
    for (const rule of POOLING_RULES) row(`singles[${i}].logits["${rule}"]`, (x.logits as Record<string, unknown>)[rule]);
  });
  (o.batches as unknown[]).forEach((b, i) => {
    const x = b as Record<string, unknown>;
    if (typeof b !== "object" || b === null) fail(`batches[${i}]`, "is not an object");
    const n = Array.isArray(x.input_ids) ? x.input_ids.length : -1;
    if (n < 1 || !(x.input_ids as unknown[]).every(ints)) fail(`batches[${i}].input_ids`, "is not a list of token id lists");
    if (!Array.isArray(x.attention_mask) || x.attention_mask.length !== n || !x.attention_mask.every(ints)) fail(`batches[${i}].attention_mask`, "does not match input_ids");
    const rows = (x.logits as Record<string, unknown> | undefined)?.["last-non-pad"];
    if (!Array.isArray(rows) || rows.length !== n) fail(`batches[${i}].logits["last-non-pad"]`, "does not have one row per text");
    (rows as unknown[]).forEach((r, k) => row(`batches[${i}].logits["last-non-pad"][${k}]`, r));
  });
  const golden = o as unknown as GoldenFile;
  golden.texts ??= textsBeside(file);
  if (golden.texts && golden.singles.some((s) => !Number.isInteger(s.text_index) || golden.texts![s.text_index] === undefined)) golden.texts = undefined;
  return golden;
}

/** The golden file's logit count against the model's labels, before scoring anything. */
function checkLabels(golden: GoldenFile, goldenPath: string, model: SyncRewardModel): void {
  const n = golden.singles[0].logits["last-non-pad"].length;
  if (n !== model.config.num_labels) {
    throw new FormatError(goldenPath, `holds ${n} logit(s) per text, but the model has ${model.config.num_labels} label(s): it is the golden file of another model`);
  }
}

/** Compares our logits with the golden ones for every single text and every pooling rule. Returns max |diff|. */
export function compareGolden(model: SyncRewardModel, golden: GoldenFile, texts: string[] | undefined): { maxDiff: number; idsMismatch: number; cases: number } {
  let maxDiff = 0;
  let idsMismatch = 0;
  let cases = 0;
  for (const rule of POOLING_RULES) {
    const items = golden.singles.map((s) => ({ ids: s.ids, truncated: s.truncated }));
    const ours = model.scoreTokenized(items, { pooling: rule, batchSize: 8 });
    golden.singles.forEach((s, i) => {
      cases++;
      s.logits[rule].forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - ours[i].logits[k]))));
    });
  }
  // HF's padded batches, under the current rule (per-text scores are what we compute for a batch).
  for (const b of golden.batches) {
    const items = b.input_ids.map((row, r) => {
      const n = b.attention_mask[r].reduce((a, m) => a + m, 0);
      return { ids: row.slice(0, n), truncated: false };
    });
    const ours = model.scoreTokenized(items, { pooling: "last-non-pad", batchSize: items.length });
    b.logits["last-non-pad"].forEach((row, r) => {
      cases++;
      row.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - ours[r].logits[k]))));
    });
  }
  if (texts) {
    for (const s of golden.singles) {
      const t = truncateLeft(encode(texts[s.text_index]), golden.max_length);
      if (t.ids.length !== s.ids.length || t.ids.some((id, i) => id !== s.ids[i])) idsMismatch++;
    }
  }
  return { maxDiff, idsMismatch, cases };
}

export async function runVerify(modelPath: string, goldenPath: string, tolerance: number, opts: LoadOptions = {}): Promise<number> {
  const golden = await readGolden(goldenPath);
  const model = SyncRewardModel.load(modelPath, opts);
  let result: ReturnType<typeof compareGolden>;
  try {
    checkLabels(golden, goldenPath === "-" ? "standard input" : goldenPath, model);
    result = compareGolden(model, golden, golden.texts);
  } finally {
    await model.close();
  }
  const { maxDiff, idsMismatch, cases } = result;
  const ok = maxDiff <= tolerance && idsMismatch === 0;
  process.stdout.write(
    `${ok ? "OK" : "FAIL"}: ${cases} golden cases (${golden.singles.length} texts × ${POOLING_RULES.length} pooling rules, and ${golden.batches.length} padded batches), ` +
      `max |logit − HF| = ${maxDiff.toExponential(2)} (tolerance ${tolerance})` +
      (golden.texts ? `, token ids differing from HF: ${idsMismatch}` : "") + "\n",
  );
  return ok ? 0 : 1;
}
