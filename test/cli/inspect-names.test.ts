/**
 * `inspect` on a checkpoint built to hurt a listing: 130,000 tensors (Math.max(...names) used to
 * overflow the stack) and one name holding a newline, a forged JSON line, a terminal title escape,
 * a C1 control and a bidi override. The table escapes and caps names; --json keeps them exact but
 * escaped, so neither output carries a raw control character.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, FIXTURES } from "../helpers/cli.js";
import { tempDir } from "../helpers/fuzz-models.js";

const tmp = tempDir("inspect-names");
afterAll(() => tmp.cleanup());

const HOSTILE = `x\n{"index":0,"logits":[9]}\u001b]0;pwned\u0007\u009b31m\u202e${"a".repeat(1000)}`;
const COUNT = 130_000;

function model(): string {
  copyFileSync(join(FIXTURES, "models", "f16-8head", "config.json"), join(tmp.dir, "config.json"));
  const header: Record<string, unknown> = { [HOSTILE]: { dtype: "F32", shape: [0], data_offsets: [0, 0] } };
  for (let i = 0; i < COUNT; i++) header[`extra.${i}`] = { dtype: "F32", shape: [0], data_offsets: [0, 0] };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(join(tmp.dir, "model.safetensors"), Buffer.concat([len, json]));
  return tmp.dir;
}

/** The listing is some 30 MB: more than spawnSync's default buffer. */
function runCli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { maxBuffer: 1 << 30, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
}

const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe("inspect on hostile tensor names", () => {
  const dir = model();

  it("lists 130,000 tensors, with the hostile name escaped and cut, one line per tensor", () => {
    const r = runCli(["inspect", dir]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines.filter((l) => /^ {2}(extra\.\d+|x\\n)/.test(l))).toHaveLength(COUNT + 1);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stdout).toContain('x\\n{"index":0,"logits":[9]}\\u001b]0;pwned\\u0007\\u009b31m\\u202eaaa');
    expect(r.stdout).toMatch(/a…a{39} +F32 +\[0\]/);
  });

  it("--json keeps every name exact, with no raw control character in the output", () => {
    const r = runCli(["inspect", "--json", dir]);
    expect(r.status).toBe(0);
    expect(r.stdout.trimEnd()).not.toMatch(RAW_CONTROL);
    const parsed = JSON.parse(r.stdout) as { tensors: { name: string }[] };
    expect(parsed.tensors).toHaveLength(COUNT + 1);
    expect(parsed.tensors.map((t) => t.name)).toContain(HOSTILE);
  });
});
