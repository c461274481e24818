/** `tokenize`: the token ids `score` would feed the model, one JSON line per input line. */
import { Gpt2RewardError } from "../errors.js";
import { DEFAULT_MAX_LENGTH } from "../model/reward-model.js";
import { encodeTruncated } from "../model/tokenizer.js";
import { defineCommand, positiveInt, UsageError } from "./args.js";
import { INPUT_OPTION, inputFileLines, MAX_LENGTH_OPTION, writeLine } from "./common.js";
import { parseInputLine } from "./jsonl.js";

export const tokenize = defineCommand({
  name: "tokenize",
  summary: "Print the GPT-2 token ids of texts (after left truncation), one JSON line per input line.",
  usage: "[options] [TEXT...]",
  options: { input: INPUT_OPTION, "max-length": MAX_LENGTH_OPTION },
  details: `Input lines are {"text": "..."}; without --input and TEXT, standard input is read.
Output lines are {"index", "ids", "truncated"}, or {"index", "error"}.`,
  examples: [`gpt2-reward tokenize $'User: hi\\nBot: hello!'`],
  async run(values, texts) {
    const maxLength = positiveInt("max-length", values["max-length"], DEFAULT_MAX_LENGTH);
    if (texts.length > 0 && values.input !== undefined) throw new UsageError("give either --input or TEXT arguments, not both");
    const items = texts.length > 0 ? texts.map((text) => ({ kind: "text" as const, text })) : undefined;
    let index = 0;
    let failed = 0;
    const each = async (item: ReturnType<typeof parseInputLine>) => {
      const i = index++;
      let record: object;
      if (item.kind === "text") {
        try {
          const { ids, truncated } = encodeTruncated(item.text, maxLength);
          record = { index: i, ids, truncated };
        } catch (e) {
          if (!(e instanceof Gpt2RewardError)) throw e;
          record = { index: i, error: e.message };
        }
      } else if (item.kind === "ids") {
        record = { index: i, error: "tokenize takes texts, not ids" };
      } else record = { index: i, error: item.error };
      if ("error" in record) failed++;
      await writeLine(JSON.stringify(record));
    };
    if (items) for (const item of items) await each(item);
    else for await (const line of inputFileLines(values.input)) await each("error" in line ? { kind: "error", error: line.error } : parseInputLine(line.text));
    return failed > 0 ? 1 : 0;
  },
});
