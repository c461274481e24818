/** `tokenize`: the token ids `score` would feed the model, one JSON line per input line. */
import { Gpt2RewardError } from "../errors.js";
import { DEFAULT_MAX_LENGTH } from "../model/sync-model.js";
import { encodeTruncated } from "../model/tokenizer.js";
import { defineCommand, positiveInt } from "./args.js";
import { INPUT_FORMAT_HELP, INPUT_FORMAT_OPTIONS, INPUT_OPTION, inputRecords, MAX_LENGTH_OPTION, writeLine } from "./common.js";
import { JobReport, PROGRESS_OPTIONS } from "./progress.js";
import { withExtra } from "./record.js";

/** The fields of tokenize's lines (an input field named like one is copied as "input.<name>"). */
const TOKENIZE_FIELDS = ["index", "line", "error", "ids", "truncated"];

export const tokenize = defineCommand({
  name: "tokenize",
  summary: "Print the GPT-2 token ids of texts (after left truncation), one JSON line per input line.",
  usage: "[options] [TEXT...]",
  options: { input: INPUT_OPTION, ...INPUT_FORMAT_OPTIONS, "max-length": MAX_LENGTH_OPTION, quiet: PROGRESS_OPTIONS.quiet },
  details: `Without --input and TEXT arguments, standard input is read. ${INPUT_FORMAT_HELP}

Output lines are {"index", "ids", "truncated"}, or {"index", "line", "error"}; stderr ends with one
summary line (tokenized, failed with the first failure's line and reason, truncated), unless --quiet.`,
  examples: [`gpt2-reward tokenize $'User: hi\\nBot: hello!'`],
  async run(values, texts) {
    const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
    let index = 0;
    let failed = 0;
    const report = new JobReport({ progress: "none", quiet: values.quiet ?? false, verb: "tokenized" });
    for await (const item of inputRecords(texts, values)) {
      const i = index++;
      const line = item.line !== undefined ? { line: item.line } : {};
      let record: Record<string, unknown>;
      if (item.kind === "text") {
        try {
          const { ids, truncated } = encodeTruncated(item.text, maxLength);
          record = { index: i, ids, truncated };
        } catch (e) {
          if (!(e instanceof Gpt2RewardError)) throw e;
          record = { index: i, ...line, error: e.message };
        }
      } else record = { index: i, ...line, error: item.kind === "ids" ? "tokenize takes texts, not ids" : item.error };
      if ("error" in record) failed++;
      report.record("error" in record ? { index: i, line: item.line, error: String(record.error) } : { index: i, logits: [], tokens: 0, truncated: record.truncated as boolean });
      await writeLine(JSON.stringify(withExtra(item.extra, record, TOKENIZE_FIELDS)));
    }
    report.finish();
    return failed > 0 ? 1 : 0;
  },
});
