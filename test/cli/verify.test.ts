/** `verify` checks a golden file's shape first and names what does not fit; it follows "same_as". */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, runCli } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-verify-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const model = (name: string) => join(FIXTURES, "models", name);
const golden = (name: string) => join(FIXTURES, "golden", `${name}.json`);

describe("verify", () => {
  it('follows "same_as" to the golden file of the same weights, and checks the token ids against texts.json', () => {
    const r = runCli(["verify", "--model", model("f16-8head-bin"), "--golden", golden("f16-8head-bin"), "-t", "1"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OK: \d+ golden cases .*, token ids differing from HF: 0\n$/);
  });

  it("names what does not fit, in one line, never a stack trace", () => {
    const write = (name: string, value: unknown) => {
      const file = join(tmp, name);
      writeFileSync(file, typeof value === "string" ? value : JSON.stringify(value));
      return file;
    };
    const real = JSON.parse(readFileSync(golden("f16-8head"), "utf8"));
    const cases: [string, RegExp][] = [
      [golden("bf16-3label"), /holds 3 logit\(s\) per text, but the model has 1 label\(s\): it is the golden file of another model$/],
      [golden("texts"), /not a golden file: expected a JSON object, got an array of 63$/],
      [join(model("f16-8head"), "config.json"), /not a golden file of export_golden\.py: "singles" is missing or empty$/],
      [write("short.json", { ...real, singles: [{ ...real.singles[0], logits: { ...real.singles[0].logits, "non-pad-count": [] } }] }), /singles\[0\]\.logits\["non-pad-count"\] is not a list of logits$/],
      [write("ids.json", { ...real, batches: [{ ...real.batches[0], attention_mask: [] }] }), /batches\[0\]\.attention_mask does not match input_ids$/],
      [write("loop.json", { same_as: "loop" }), /"same_as" "loop" does not lead to a golden file$/],
      [write("broken.json", "{"), /broken\.json: not a golden file: not JSON \(/],
      [write("null.json", "null"), /null\.json: not a golden file: expected a JSON object, got null$/],
      [join(tmp, "missing.json"), /missing\.json: cannot read golden file: no such file$/],
    ];
    for (const [file, message] of cases) {
      const r = runCli(["verify", "--model", model("f16-8head"), "--golden", file, "-t", "1"]);
      expect(r.stderr.trimEnd(), file).toMatch(message);
      expect(r.status, file).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.split("\n")).toHaveLength(2);
      expect(r.stderr, file).toMatch(/^gpt2-reward: /);
      expect(r.stderr.trimEnd(), file).toMatch(message);
    }
  });

  it('reads the golden file from standard input for "-" (a "same_as" file, which names a file beside it, needs its path)', () => {
    const r = runCli(["verify", "-m", model("f16-8head"), "-g", "-", "-t", "1"], readFileSync(golden("f16-8head")));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OK: 211 golden cases .*tolerance 0\.0001\)\n$/); // no texts.json beside standard input: ids unchecked
    const other = runCli(["verify", "-m", model("f16-8head"), "-g", "-", "-t", "1"], readFileSync(golden("bf16-3label")));
    expect([other.status, other.stderr]).toEqual([1, "gpt2-reward: standard input: holds 3 logit(s) per text, but the model has 1 label(s): it is the golden file of another model\n"]);
    const sameAs = runCli(["verify", "-m", model("f16-8head-bin"), "-g", "-"], readFileSync(golden("f16-8head-bin")));
    expect([sameAs.status, sameAs.stderr]).toEqual([1, 'gpt2-reward: standard input: "same_as" "f16-8head" names a file beside this one: give its path with --golden instead of -\n']);
  });
});
