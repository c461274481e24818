/** Progress lines and the closing summary on stderr, through the built CLI. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, jsonLines, runCli } from "../helpers/cli.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-progress-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("progress and summary", () => {
  it("always ends with one summary line: scored, failed with the first failure's line and reason, truncated, time", () => {
    const long = "word ".repeat(40);
    const input = [JSON.stringify({ text: "hi" }), "", "{oops", JSON.stringify({ text: long }), JSON.stringify({ text: "" }), JSON.stringify({ text: long })].join("\n");
    const r = runCli(["score", "-m", SMALL, "--max-length", "16"], input + "\n");
    expect(r.status).toBe(1);
    expect(jsonLines(r.stdout).filter((o) => o.truncated === true)).toHaveLength(2);
    expect(r.stderr).toMatch(
      /^gpt2-reward: done: 5 line\(s\): 3 scored, 2 failed \(first at line 3: invalid JSON: [^\n]+\), 2 truncated \(40\.0%: their beginnings were dropped; see --max-length\), in \d+\.\d s \([\d.]+ lines\/s\)\n$/,
    );
  });

  it("--quiet silences progress and summary, not the results", () => {
    const r = runCli(["score", "-m", SMALL, "--quiet", "--progress", "hi", "there"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(jsonLines(r.stdout)).toHaveLength(2);
  });

  it("--progress on a non-terminal writes plain lines with the count, the total from the file size, the rate and an ETA", () => {
    const file = join(tmp, "in.jsonl");
    writeFileSync(file, Array.from({ length: 3000 }, (_, i) => JSON.stringify({ ids: [1 + i, 2, 3] })).join("\n") + "\n");
    const r = runCli(["score", "-m", SMALL, "-i", file, "-b", "16", "-o", join(tmp, "out.jsonl"), "--progress", "--progress-every", "0.001"]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split("\n");
    const progress = lines.slice(0, -1);
    expect(progress.length).toBeGreaterThan(1);
    for (const l of progress) expect(l).toMatch(/^gpt2-reward: [\d,]+ \/ ~[\d,]+ \(\d+%\) lines, [\d.]+ lines\/s(, ETA [\d.]+ s| ?.*)$/);
    expect(progress.some((l) => /, ETA /.test(l))).toBe(true);
    // The total is estimated from the bytes read: within a window (128 lines) of the truth once the file is read.
    const totals = progress.map((l) => Number(/~([\d,]+)/.exec(l)![1].replace(/,/g, "")));
    expect(Math.abs(totals[totals.length - 1] - 3000)).toBeLessThan(200);
    expect(lines[lines.length - 1]).toMatch(/^gpt2-reward: done: 3,000 line\(s\): 3,000 scored, 0 failed, 0 truncated, in /);
  });

  it("--progress-every must be a positive number", () => {
    const r = runCli(["score", "-m", SMALL, "--progress-every", "0", "hi"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('gpt2-reward: --progress-every must be a positive number of seconds, got "0"; see gpt2-reward score --help\n');
  });
});
