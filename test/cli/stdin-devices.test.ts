/**
 * Standard input is held to the rules of --input: a device that never ends (`score < /dev/zero`)
 * or a directory (`score < .`) is refused in one line before the model loads (it ran forever, or
 * read a directory as zero lines and said "done"), while /dev/null is an empty input.
 */
import { spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, FIXTURES } from "../helpers/cli.js";

const SMALL = join(FIXTURES, "models", "f16-8head");

/** Runs `score --model SMALL ...args` with `stdin` (a path) as its standard input. */
function scoreFrom(stdin: string, args: string[] = []) {
  const fd = openSync(stdin, "r");
  try {
    return spawnSync(process.execPath, [CLI, "score", "--model", SMALL, ...args], { stdio: [fd, "pipe", "pipe"], encoding: "utf8", timeout: 60_000 });
  } finally {
    closeSync(fd);
  }
}

describe("standard input", () => {
  it.each([["/dev/zero"], ["/dev/urandom"]])("%s as standard input is refused in one line, not read forever", (device) => {
    for (const args of [[], ["--input", "-"]]) {
      const r = scoreFrom(device, args);
      expect(r.signal).toBe(null); // not stopped by the timeout
      expect(r.stderr).toBe("gpt2-reward: standard input is a device, not an input file or a pipe\n");
      expect(r.stdout).toBe("");
      expect(r.status).toBe(1);
    }
  });

  it("a directory as standard input is refused, not read as no lines", () => {
    const r = scoreFrom(FIXTURES);
    expect(r.stderr).toBe("gpt2-reward: standard input is a directory, not an input file\n");
    expect(r.stdout).toBe("");
    expect(r.status).toBe(1);
  });

  it("/dev/null as standard input (or --input) is an empty job; TEXT arguments ignore standard input", () => {
    for (const args of [[], ["--input", "/dev/null"]]) {
      const r = scoreFrom("/dev/null", args);
      expect(r.stderr).toMatch(/^gpt2-reward: done: 0 line\(s\): 0 scored, 0 failed, 0 truncated, in [\d.]+ s\n$/);
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0);
    }
    const r = scoreFrom("/dev/zero", ["-q", "hello"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ index: 0, tokens: 1 });
  });
});
