/**
 * `verify`: score the texts of a golden file (written by fixtures/export_golden.py from PyTorch
 * and Hugging Face transformers) and compare every logit. This is how the full-size GPT-2 base
 * check is run, and how anyone can check us against their own transformers install.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { FormatError } from "../errors.js";
import { RewardModel, type LoadOptions } from "../model/reward-model.js";
import { POOLING_RULES } from "../model/pooling.js";
import { encode, truncateLeft } from "../model/tokenizer.js";
import { defineCommand, UsageError } from "./args.js";
import { LOAD_OPTIONS, loadOptions, MODEL_OPTION } from "./common.js";

export const verify = defineCommand({
  name: "verify",
  summary: "Score a golden file's texts (written by fixtures/export_golden.py from PyTorch + transformers) and compare every logit.",
  usage: "--model MODEL --golden FILE [options]",
  options: {
    model: MODEL_OPTION,
    golden: { type: "string", short: "g", value: "FILE", help: "the golden JSON file" },
    tolerance: { type: "string", value: "X", default: "1e-4", help: "largest |logit - HF| accepted" },
    ...LOAD_OPTIONS,
  },
  details: "Prints OK or FAIL with the largest difference; exit status 0 for OK, 1 for FAIL.",
  examples: ["gpt2-reward verify -m fixtures/models/f16-8head-bin -g fixtures/golden/f16-8head-bin.json"],
  async run(values) {
    if (!values.model || !values.golden) throw new UsageError("verify needs --model and --golden; see gpt2-reward verify --help");
    const tolerance = values.tolerance === undefined ? 1e-4 : Number(values.tolerance);
    if (!(tolerance > 0)) throw new UsageError(`--tolerance must be a positive number, got "${values.tolerance}"`);
    return runVerify(resolve(values.model), resolve(values.golden), tolerance, loadOptions(values));
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

export function readGolden(file: string): GoldenFile {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as GoldenFile;
  } catch (e) {
    throw new FormatError(file, `cannot read golden file: ${(e as Error).message}`);
  }
}

/** Compares our logits with the golden ones for every single text and every pooling rule. Returns max |diff|. */
export function compareGolden(model: RewardModel, golden: GoldenFile, texts: string[] | undefined): { maxDiff: number; idsMismatch: number; cases: number } {
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
  const golden = readGolden(goldenPath);
  const model = RewardModel.load(modelPath, opts);
  let result: ReturnType<typeof compareGolden>;
  try {
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
