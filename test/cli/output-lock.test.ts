/**
 * The lock beside a file output (`<file>.lock`) through the built CLI: a lock that cannot be
 * written whole is not left behind to refuse every later job, and a lock that is not a regular
 * file (a planted FIFO) is refused at once rather than waited on.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, FIXTURES, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/fuzz-models.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const tmp = tempDir("output-lock");
afterAll(() => tmp.cleanup());
const fresh = tmp.fresh;

describe("the output's lock file", () => {
  it("a lock that cannot be written (no room: EFBIG under ulimit -f 0) is removed again, so the next job runs", () => {
    const out = join(fresh(), "out.jsonl");
    // stderr is a pipe, which the file size limit does not touch.
    const full = spawnSync("bash", ["-c", `ulimit -f 0; exec "$0" "$@"`, process.execPath, CLI, "score", "--model", SMALL, "--output", out, "hello"], { encoding: "utf8", timeout: 60_000 });
    expect(full.status).toBe(1);
    expect(full.stderr).toBe(`gpt2-reward: ${out}.lock: cannot create the lock: file too large for this file system or limit (EFBIG)\n`);
    expect(existsSync(`${out}.lock`)).toBe(false);
    expect(existsSync(out)).toBe(false);

    const next = runCli(["score", "--model", SMALL, "--output", out, "hello"]);
    expect(next.stderr).not.toMatch(/another job/);
    expect(next.status).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8")).index).toBe(0);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("a FIFO planted as the lock is refused at once, not waited on for a writer", () => {
    const out = join(fresh(), "out.jsonl");
    execFileSync("mkfifo", [`${out}.lock`]);
    const r = spawnSync(process.execPath, [CLI, "score", "--model", SMALL, "--output", out, "hello"], { encoding: "utf8", timeout: 60_000 });
    expect(r.signal).toBe(null); // not killed by the timeout
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`gpt2-reward: ${out}: another job is writing it (a lock we cannot read; lock file ${out}.lock); if that job is gone, remove the lock file\n`);
    expect(r.stdout).toBe("");
  });
});
