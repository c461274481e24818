/** Input formats, pass-through fields, blank lines, labels and --activation, through the built CLI. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, jsonLines, runCli } from "../helpers/cli.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const THREE = join(FIXTURES, "models", "bf16-3label");
const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-input-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CHAT = "User: hi, how are you?\nBot: fine, thanks!";
const file = (name: string, content: string) => {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
};
/** What `score` gives for these texts as TEXT arguments: the reference every format must meet. */
const scored = (model: string, ...texts: string[]) => jsonLines(runCli(["score", "-m", model, "-a", "none", ...texts]).stdout).map(({ index: _, ...r }) => r);
const logitsOf = (model: string, ...texts: string[]) => scored(model, ...texts).map((r) => r.logits);

describe("input formats", () => {
  const [chat, plain] = scored(SMALL, CHAT, "plain words");
  const plainLogits = plain.logits;

  it("reads JSONL text, chat messages and a --text-field path alike, and passes other fields through", () => {
    const input = [
      JSON.stringify({ id: "a", text: CHAT }),
      JSON.stringify({ id: "b", messages: [{ role: "user", content: "hi, how are you?" }, { role: "bot", content: "fine, thanks!" }] }),
      JSON.stringify({ id: "c", messages: [{ role: "user", content: "hi, how are you?" }, { role: "assistant", content: "fine, thanks!" }] }),
    ].join("\n");
    const r = runCli(["score", "-m", SMALL, "-a", "none", "--roles", "assistant=Bot"], input);
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(r.stdout)).toEqual(["a", "b", "c"].map((id, index) => ({ index, ...chat, id })));
    const nested = runCli(["score", "-m", SMALL, "-a", "none", "--text-field", "turn.body"], JSON.stringify({ turn: { body: CHAT }, n: 1 }) + "\n");
    expect(jsonLines(nested.stdout)).toEqual([{ index: 0, ...chat, n: 1 }]);
  });

  it("renders chat messages by an overridable template", () => {
    const messages = [{ role: "user", content: "hi, how are you?" }, { role: "bot", content: "fine, thanks!" }];
    const [custom] = logitsOf(SMALL, "[user] hi, how are you?\n[bot] fine, thanks!");
    const r = runCli(["score", "-m", SMALL, "-a", "none", "--chat-template", "[{role}] {content}"], JSON.stringify({ messages }) + "\n");
    expect(jsonLines(r.stdout)[0].logits).toEqual(custom);
    const t = runCli(["tokenize", "--chat-template", "{Role}: {content}"], JSON.stringify({ messages }) + "\n");
    expect(jsonLines(t.stdout)[0].ids).toEqual(jsonLines(runCli(["tokenize", CHAT]).stdout)[0].ids);
  });

  it("tokenize keeps an input field named ids (or like another of its fields) as input.<name>, never in place of the ids", () => {
    const [{ ids }] = jsonLines(runCli(["tokenize", "plain words"]).stdout);
    const csv = runCli(["tokenize", "-f", "csv"], "ids,text,truncated\n5,plain words,no\n");
    expect(jsonLines(csv.stdout)).toEqual([{ index: 0, ids, truncated: false, "input.ids": "5", "input.truncated": "no" }]);
    const json = runCli(["tokenize", "--text-field", "t"], JSON.stringify({ t: "plain words", ids: [1, 2], index: 3 }) + "\n");
    expect(jsonLines(json.stdout)).toEqual([{ index: 0, ids, truncated: false, "input.ids": [1, 2], "input.index": 3 }]);
  });

  it("tokenize says on stderr why its exit status is 1: one summary line with the first failure's line and reason, which --quiet silences", () => {
    const input = 'not json\n{"text": "plain words"}\n';
    const r = runCli(["tokenize", "-l", "1"], input);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^gpt2-reward: done: 2 line\(s\): 1 tokenized, 1 failed \(first at line 1: invalid JSON: [^\n]*\), 1 truncated \(50\.0%: [^\n]*see --max-length\), in [^\n]*\n$/);
    const quiet = runCli(["tokenize", "-l", "1", "-q"], input);
    expect([quiet.status, quiet.stderr, quiet.stdout]).toEqual([1, "", r.stdout]);
  });

  it("reads CSV and TSV with a header (quoted fields with commas, quotes and line breaks), chosen by extension or --format", () => {
    const csv = file("in.csv", `id,text,note\n1,"${CHAT.replace(/"/g, '""')}","a, ""quoted"" note"\n\n2,plain words,x\n`);
    const tsv = file("in.tsv", `text\tid\nplain words\t9\n`);
    const expected = [
      { index: 0, ...chat, id: "1", note: 'a, "quoted" note' },
      { index: 1, logits: plainLogits, tokens: plain.tokens, truncated: false, id: "2", note: "x" },
    ];
    expect(jsonLines(runCli(["score", "-m", SMALL, "-a", "none", "-i", csv]).stdout)).toEqual(expected);
    expect(jsonLines(runCli(["score", "-m", SMALL, "-a", "none", "-f", "csv"], `id,text,note\n1,"${CHAT}","a, ""quoted"" note"\n2,plain words,x\n`).stdout)).toEqual(expected);
    expect(jsonLines(runCli(["score", "-m", SMALL, "-a", "none", "-i", tsv]).stdout)).toEqual([{ index: 0, logits: plainLogits, tokens: plain.tokens, truncated: false, id: "9" }]);
    const col = runCli(["score", "-m", SMALL, "-f", "csv", "--text-field", "body"], "body\nplain words\n");
    expect(jsonLines(col.stdout)[0]).toMatchObject({ index: 0, logits: plainLogits });
  });

  it("reads plain text, one text a line (.txt or --format text)", () => {
    const txt = file("in.txt", "plain words\n\nplain words\n");
    const r = runCli(["score", "-m", SMALL, "-a", "none", "-i", txt]);
    expect(jsonLines(r.stdout)).toEqual([0, 1].map((index) => ({ index, logits: plainLogits, tokens: plain.tokens, truncated: false })));
  });

  it("skips blank lines without counting them, and names the file line of a bad record", () => {
    const input = ["", JSON.stringify({ text: "plain words" }), "   ", "\r", "{broken", "", JSON.stringify({ text: "plain words" }), ""].join("\n");
    const r = runCli(["score", "-m", SMALL, "-a", "none"], input);
    expect(r.status).toBe(1);
    expect(jsonLines(r.stdout)).toEqual([
      { index: 0, logits: plainLogits, tokens: plain.tokens, truncated: false },
      { index: 1, line: 5, error: expect.stringMatching(/^invalid JSON/) },
      { index: 2, logits: plainLogits, tokens: plain.tokens, truncated: false },
    ]);
    expect(runCli(["score", "-m", SMALL], JSON.stringify({ text: "x" }) + "\n\n\n").status).toBe(0);
  });

  it("keeps an input field named like an output field, as input.<name>", () => {
    const r = runCli(["score", "-m", SMALL, "-a", "none"], JSON.stringify({ index: 41, text: "plain words", logits: "mine" }) + "\n");
    expect(jsonLines(r.stdout)).toEqual([{ index: 0, logits: plainLogits, tokens: plain.tokens, truncated: false, "input.index": 41, "input.logits": "mine" }]);
  });

  it("answers a record that does not fit with an error for that record, and a header without the column with one line", () => {
    const lines = [
      JSON.stringify({ text: "a", messages: [] }),
      JSON.stringify({ messages: [{ role: "user" }] }),
      JSON.stringify({ other: 1 }),
      JSON.stringify({ text: 5 }),
    ].join("\n");
    const r = runCli(["score", "-m", SMALL], lines);
    expect(jsonLines(r.stdout).map((x) => x.error)).toEqual([
      'give one of "text", "messages" or "ids", not "text" and "messages"',
      'chat message 0 must be {"role": string, "content": string}, got an object',
      'expected a JSON object with "text", "messages" or "ids" (or name the field with --text-field)',
      '"text" must be a string, got 5',
    ]);
    const bad = runCli(["score", "-m", SMALL, "-f", "csv"], "a,b\n1,2\n");
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe('gpt2-reward: CSV header has no column "text" (it has "a", "b"); name the text column with --text-field\n');
    const fmt = runCli(["score", "-m", SMALL, "-f", "xml", "hi"]);
    expect(fmt.status).toBe(2);
    expect(fmt.stderr).toBe('gpt2-reward: --format must be jsonl, csv, tsv or text, got "xml"; see gpt2-reward score --help\n');
  });

  it("scores TEXT arguments as typed (no JSON round trip), also texts that look like JSON", () => {
    const text = '{"text": "not this"}';
    const r = jsonLines(runCli(["tokenize", text]).stdout)[0];
    expect(r.ids).toEqual(jsonLines(runCli(["tokenize"], JSON.stringify({ text }) + "\n").stdout)[0].ids);
  });
});

describe("labels and --activation", () => {
  it("gives a one-label model sigmoid scores by default, and no label names it does not have", () => {
    const [line] = jsonLines(runCli(["score", "-m", SMALL, "plain words"]).stdout);
    const logit = (line.logits as number[])[0];
    expect(line.scores).toEqual([1 / (1 + Math.exp(-logit))]);
    expect(Object.keys(line)).toEqual(["index", "logits", "scores", "tokens", "truncated"]);
  });

  it("names a multi-label model's labels from id2label, softmax by default, the top label, and raw logits always", () => {
    const [line] = jsonLines(runCli(["score", "-m", THREE, "plain words"]).stdout);
    const logits = line.logits as number[];
    const e = logits.map((x) => Math.exp(x - Math.max(...logits)));
    const sum = e.reduce((a, b) => a + b, 0);
    expect(line.scores).toEqual(e.map((x) => x / sum));
    expect(line.labels).toEqual(["bad", "ok", "good"]);
    expect(line.label).toBe(["bad", "ok", "good"][logits.indexOf(Math.max(...logits))]);
    const sig = jsonLines(runCli(["score", "-m", THREE, "-a", "sigmoid", "plain words"]).stdout)[0];
    expect(sig.scores).toEqual(logits.map((x) => 1 / (1 + Math.exp(-x))));
    const none = jsonLines(runCli(["score", "-m", THREE, "--activation", "none", "plain words"]).stdout)[0];
    expect(none).toEqual({ index: 0, logits, labels: ["bad", "ok", "good"], label: line.label, tokens: line.tokens, truncated: false });
  });
});
