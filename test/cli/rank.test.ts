/** `rank` (best-of-N) and what `demo` ranks by, through the built CLI. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, jsonLines, runCli } from "../helpers/cli.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const THREE = join(FIXTURES, "models", "bf16-3label");
const CONTEXT = "User: hi, how are you?\nBot:";
const REPLIES = [" Great, thanks! And you?", " no.", " I am fine, thank you for asking."];
const logitsOf = (model: string, texts: string[]) => jsonLines(runCli(["score", "-m", model, "-a", "none", ...texts]).stdout).map((r) => r.logits as number[]);
const softmax = (v: number[]) => {
  const e = v.map((x) => Math.exp(x - Math.max(...v)));
  return e.map((x) => x / e.reduce((a, b) => a + b, 0));
};

describe("rank", () => {
  it("scores each reply exactly as score scores context + reply, orders them best first, and gives Bradley-Terry pairs", () => {
    const logits = logitsOf(SMALL, REPLIES.map((r) => CONTEXT + r));
    const r = runCli(["rank", "-m", SMALL, "-c", CONTEXT, ...REPLIES, "--pairwise"]);
    expect(r.status, r.stderr).toBe(0);
    const [line] = jsonLines(r.stdout);
    const rewards = logits.map((l) => l[0]);
    const order = [0, 1, 2].sort((a, b) => rewards[b] - rewards[a]);
    expect(line).toMatchObject({ index: 0, by: "reward", scores: rewards, order, best: order[0], logits });
    expect(line.pairwise).toEqual(rewards.map((a) => rewards.map((b) => 1 / (1 + Math.exp(-(a - b))))));
  });

  it("reads {context, replies} lines, passes other fields through, skips blank lines, and isolates a bad line", () => {
    const input = [JSON.stringify({ id: "q1", context: CONTEXT, replies: REPLIES }), "", JSON.stringify({ context: CONTEXT, replies: [] }), JSON.stringify({ context: "", replies: ["x", ""] })].join("\n");
    const r = runCli(["rank", "-m", SMALL], input + "\n");
    expect(r.status).toBe(1);
    const out = jsonLines(r.stdout);
    expect(out[0]).toMatchObject({ index: 0, id: "q1", scores: logitsOf(SMALL, REPLIES.map((x) => CONTEXT + x)).map((l) => l[0]) });
    expect(out.slice(1)).toEqual([
      { index: 1, line: 3, error: '"replies" must be a non-empty array of strings, got an array of 0' },
      { index: 2, line: 4, error: "reply 1: empty text: it has no tokens to score" },
    ]);
  });

  it("with --input, says on stderr why its exit status is 1: one summary line (the first failure's line and reason), which --quiet silences", () => {
    const input = ["{not json", "", JSON.stringify({ context: CONTEXT, replies: REPLIES })].join("\n") + "\n";
    const r = runCli(["rank", "-m", SMALL, "-l", "4"], input);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^gpt2-reward: done: 2 line\(s\): 1 scored, 1 failed \(first at line 1: invalid JSON: [^\n]*\), 1 truncated \(50\.0%: their beginnings were dropped; see --max-length\), in [^\n]*\n$/);
    const quiet = runCli(["rank", "-m", SMALL, "-l", "4", "-q"], input);
    expect([quiet.status, quiet.stderr, quiet.stdout]).toEqual([1, "", r.stdout]);
  });

  it("keeps an input field named like one of its own output fields as input.<name>, never in place of what it computed", () => {
    const clash = { by: "x", scores: 1, order: 2, best: 99, pairwise: 6, logits: 3, tokens: 4, truncated: 5, index: 7, line: 8, error: 9, id: "q" };
    const r = runCli(["rank", "-m", SMALL, "-p"], JSON.stringify({ context: CONTEXT, replies: REPLIES, ...clash }) + "\n");
    expect(r.status, r.stderr).toBe(0);
    const [direct] = jsonLines(runCli(["rank", "-m", SMALL, "-p", "-c", CONTEXT, ...REPLIES]).stdout);
    const [line] = jsonLines(r.stdout);
    const copied = Object.fromEntries(Object.entries(clash).map(([k, v]) => [k === "id" ? k : `input.${k}`, v]));
    expect(line).toEqual({ ...direct, ...copied });
  });

  it("ranks a multi-label model by the probability of its last label, or of the one --rank-by names", () => {
    const logits = logitsOf(THREE, REPLIES.map((x) => CONTEXT + x));
    const [last] = jsonLines(runCli(["rank", "-m", THREE, "-c", CONTEXT, ...REPLIES]).stdout);
    expect(last).toMatchObject({ by: "P(good)", scores: logits.map((l) => softmax(l)[2]) });
    const [bad] = jsonLines(runCli(["rank", "-m", THREE, "--rank-by", "bad", "-c", CONTEXT, ...REPLIES]).stdout);
    const pBad = logits.map((l) => softmax(l)[0]);
    expect(bad).toMatchObject({ by: "P(bad)", scores: pBad, best: pBad.indexOf(Math.max(...pBad)) });
    const pairwise = runCli(["rank", "-m", THREE, "-p", "-c", CONTEXT, ...REPLIES]);
    expect(pairwise.status).toBe(1);
    expect(pairwise.stderr).toBe("gpt2-reward: --pairwise needs a one-label reward model (sigmoid(r_a - r_b)); this one has 3 labels\n");
    const unknown = runCli(["rank", "-m", THREE, "--rank-by", "great", "-c", CONTEXT, "x"]);
    expect(unknown.stderr).toBe('gpt2-reward: --rank-by "great": not a label of this model ("bad", "ok", "good"); give a label or an index from 0 to 2\n');
  });

  it("refuses, before any line, a --batch-size no memory could hold, as score does", () => {
    const r = runCli(["rank", "-m", SMALL, "--batch-size", "1000000000"], JSON.stringify({ context: CONTEXT, replies: REPLIES }) + "\n");
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^gpt2-reward: --batch-size 1000000000 does not fit: each text takes at least one token of [\d.]+ KiB, and (the 4 GiB WebAssembly|this machine's) memory leaves [\d.]+ MiB beside the weights, room for (\d+) tokens in a batch; use --batch-size \2 or less\n$/);
  });

  it("refuses replies without a context in one line", () => {
    const r = runCli(["rank", "-m", SMALL, " a reply"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("gpt2-reward: REPLY arguments need --context TEXT; see gpt2-reward rank --help\n");
  });
});

describe("demo", () => {
  it("says what it ranks by: the reward for one label, P(last label) for several", () => {
    expect(runCli(["demo"]).stdout).toMatch(/\nranked by the reward \(the model's one logit\)\n/);
    const three = runCli(["demo", "-m", THREE]);
    expect(three.status).toBe(0);
    expect(three.stdout).toMatch(/\nranked by P\(good\), the softmax probability of label 2 of 3/);
    const shown = [...three.stdout.matchAll(/^\s+\d+\s+(\d\.\d{6})\s/gm)].map((m) => Number(m[1]));
    expect(shown).toHaveLength(8);
    expect(shown).toEqual([...shown].sort((a, b) => b - a));
  });
});
