/**
 * Long jobs through the built CLI: where the lines go (files, streams, devices refused), who may
 * write a file (one job at a time), what happens when the disk fails, what --resume accepts, how
 * long a line may be, and that a job with poison lines loses nothing else.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, copyFileSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, FIXTURES, jsonLines, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/fuzz-models.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const BIN = join(FIXTURES, "models", "f16-8head-bin");
const tmp = tempDir("job");
afterAll(() => tmp.cleanup());
const fresh = tmp.fresh;

/** n JSON lines of short texts (with a bad one every 97), as a file. */
function inputFile(dir: string, count: number, name = "in.jsonl"): string {
  const file = join(dir, name);
  const lines = Array.from({ length: count }, (_, i) => (i % 97 === 13 ? "{broken" : JSON.stringify({ text: `User: message number ${i}\nBot: reply ${i % 7}` })));
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

const oneLine = (stderr: string) => {
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr.split("\n")).toHaveLength(2);
};

describe("the output sink: a file or a stream, nothing in between", () => {
  it("a FIFO as --output is a stream: written as the lines come, never read, and --resume on it is refused", async () => {
    const dir = fresh();
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const job = startCli(["score", "--model", SMALL, "--output", fifo, "one", "two", "three"]);
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => createReadStream(fifo).on("data", (d) => got.push(d as Buffer)).on("end", resolve).on("error", reject));
    const r = await job.done;
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLines(Buffer.concat(got).toString("utf8")).map((o) => o.index)).toEqual([0, 1, 2]);
    expect(existsSync(`${fifo}.job.json`)).toBe(false);
    expect(existsSync(`${fifo}.lock`)).toBe(false);

    const resume = runCli(["score", "--model", SMALL, "--output", fifo, "--resume", "one"]);
    expect(resume.status).toBe(1);
    oneLine(resume.stderr);
    expect(resume.stderr).toMatch(/--resume needs a regular file as --output, not a stream/);
  });

  it("--output /dev/stdout into a pipe writes to stdout and ends (no emptiness check that reads the pipe)", () => {
    const r = runCli(["score", "--model", SMALL, "--output", "/dev/stdout", "one", "two"]);
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).map((o) => o.index)).toEqual([0, 1]);
  });

  it("a second job on the same --output is refused while the first runs; the lock goes with the first", async () => {
    const dir = fresh();
    const out = join(dir, "out.jsonl");
    const first = startCli(["score", "--model", SMALL, "--output", out]);
    first.child.stdin.write(JSON.stringify({ text: "first job" }) + "\n");
    for (let i = 0; i < 400 && !(existsSync(out) && statSync(out).size > 0); i++) await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(`${out}.lock`)).toBe(true);
    const second = runCli(["score", "--model", SMALL, "--output", out, "--resume", "second job"]);
    expect(second.status).toBe(1);
    oneLine(second.stderr);
    expect(second.stderr).toMatch(new RegExp(`another job is writing it \\(process ${first.child.pid} on .*; lock file .*out\\.jsonl\\.lock\\); if that job is gone, remove the lock file`));
    first.child.stdin.end(JSON.stringify({ text: "still the first job" }) + "\n");
    const r = await first.done;
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLines(readFileSync(out, "utf8")).map((o) => o.index)).toEqual([0, 1]);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("a lock left by a killed job on this host is stale and taken over; one from another host is refused", () => {
    const dir = fresh();
    const out = join(dir, "out.jsonl");
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!; // a process that has exited
    writeFileSync(`${out}.lock`, JSON.stringify({ pid: dead, host: hostname(), since: "2026-01-01T00:00:00.000Z" }));
    const r = runCli(["score", "--model", SMALL, "--output", out, "hello"]);
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(readFileSync(out, "utf8"))).toHaveLength(1);
    expect(existsSync(`${out}.lock`)).toBe(false);

    writeFileSync(`${out}.lock`, JSON.stringify({ pid: 1, host: "another-host", since: "2026-01-01T00:00:00.000Z" }));
    const other = runCli(["score", "--model", SMALL, "--output", out, "--resume", "hello"]);
    expect(other.status).toBe(1);
    oneLine(other.stderr);
    expect(other.stderr).toMatch(/another job is writing it \(process 1 on another-host, since 2026-01-01T00:00:00\.000Z; lock file/);
    expect(existsSync(`${out}.lock`)).toBe(true); // not ours to remove
  });

  it("a write that fails (EFBIG under ulimit -f) leaves only whole lines, says so in one line, and --resume completes the job", () => {
    const dir = fresh();
    const input = inputFile(dir, 300);
    const full = join(dir, "full.jsonl");
    expect(runCli(["score", "--model", SMALL, "--input", input, "--output", full]).status).toBe(1); // its broken lines
    const out = join(dir, "out.jsonl");
    // 16 KiB: a limit reached in the middle of some line.
    const limited = spawnSync("bash", ["-c", `ulimit -f 16; exec "$0" "$@"`, process.execPath, CLI, "score", "--model", SMALL, "--input", input, "--output", out], { encoding: "utf8" });
    expect(limited.status).toBe(1);
    oneLine(limited.stderr);
    expect(limited.stderr).toMatch(/out\.jsonl: cannot write: file too large for this file system or limit \(EFBIG\); the file ends with its last whole line \(index \d+\); free space and run again with --resume/);
    const partial = readFileSync(out);
    expect(partial.length).toBeLessThanOrEqual(16 * 1024);
    expect(partial[partial.length - 1]).toBe(10);
    expect(existsSync(`${out}.lock`)).toBe(false);
    const kept = jsonLines(partial.toString("utf8"));
    expect(kept.map((o) => o.index)).toEqual(kept.map((_, i) => i));
    expect(Number(/index (\d+)\)/.exec(limited.stderr)![1])).toBe(kept.length - 1);

    expect(runCli(["score", "--model", SMALL, "--input", input, "--output", out, "--resume"]).status).toBe(1);
    expect(readFileSync(out)).toEqual(readFileSync(full));
  });

  it("stdout failing with anything but EPIPE (a full disk behind it) is one line and exit 1", () => {
    const full = openSync("/dev/full", "w");
    try {
      const r = spawnSync(process.execPath, [CLI, "score", "--model", SMALL, "hello"], { stdio: ["ignore", full, "pipe"], encoding: "utf8" });
      expect(r.status).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toBe("gpt2-reward: stdout: cannot write: no space left on the device (ENOSPC)\n");
    } finally {
      closeSync(full);
    }
  });

  it("--resume reads the output as bytes: a partial last line holding invalid UTF-8 is cut by bytes, not by decoded length", () => {
    const dir = fresh();
    const input = inputFile(dir, 40);
    const full = join(dir, "full.jsonl");
    runCli(["score", "--model", SMALL, "--input", input, "--output", full]);
    const bytes = readFileSync(full);
    const out = join(dir, "out.jsonl");
    let cut = 0;
    for (let i = 0; i < 10; i++) cut = bytes.indexOf(10, cut) + 1;
    // Ten whole lines, then a partial line of bytes that do not decode (a crash mid-write on another system).
    writeFileSync(out, Buffer.concat([bytes.subarray(0, cut), Buffer.from('{"index":10,"logits":[\xff\xfe\xfd', "latin1")]));
    writeFileSync(`${out}.job.json`, readFileSync(`${full}.job.json`));
    expect(runCli(["score", "--model", SMALL, "--input", input, "--output", out, "--resume"]).status).toBe(1);
    expect(readFileSync(out)).toEqual(bytes);
  });
});

describe("--resume continues only the job that wrote the file", () => {
  const dir = fresh();
  const input = inputFile(dir, 30);
  const out = join(dir, "out.jsonl");
  beforeAll(() => {
    runCli(["score", "--model", SMALL, "--input", input, "--output", out, "--max-length", "64"]);
    writeFileSync(out, readFileSync(out).subarray(0, 500)); // as if killed early
  });

  it.each([
    ["another model", ["--model", BIN, "--input", input, "--max-length", "64"], /it was written with the model .*f16-8head, not .*f16-8head-bin/],
    ["another --max-length", ["--model", SMALL, "--input", input, "--max-length", "32"], /it was written with --max-length 64, this job has 32/],
    ["another --pooling", ["--model", SMALL, "--input", input, "--max-length", "64", "--pooling", "non-pad-count"], /it was written with --pooling "last-non-pad", this job has "non-pad-count"/],
    ["another shard", ["--model", SMALL, "--input", input, "--max-length", "64", "--shard", "0/2"], /it was written for a whole \(unsharded\) job, this job is shard 0\/2/],
  ])("refuses %s, in one line naming the difference, and leaves the file as it was", (_, args, message) => {
    const before = readFileSync(out);
    const r = runCli(["score", ...args, "--output", out, "--resume"]);
    expect(r.status).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/out\.jsonl: cannot resume: /);
    expect(r.stderr).toMatch(message);
    expect(readFileSync(out)).toEqual(before);
  });

  it("refuses another input (an output longer than its input included), named by size and first-MiB hash", () => {
    const shorter = join(dir, "short.jsonl");
    writeFileSync(shorter, readFileSync(input, "utf8").split("\n").slice(0, 3).join("\n") + "\n");
    const r = runCli(["score", "--model", SMALL, "--input", shorter, "--max-length", "64", "--output", out, "--resume"]);
    expect(r.status).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/cannot resume: the input differs: it was written for a file of \d+ bytes whose first MiB has sha256 [0-9a-f]{12}…, this job reads a file of \d+ bytes/);
  });

  it("accepts the same bytes through a pipe, and refuses a file with no sidecar", () => {
    const other = join(dir, "other.jsonl");
    writeFileSync(other, readFileSync(out));
    writeFileSync(`${other}.job.json`, readFileSync(`${out}.job.json`));
    const r = runCli(["score", "--model", SMALL, "--max-length", "64", "--output", other, "--resume"], readFileSync(input));
    expect(r.status).toBe(1); // its broken lines
    expect(jsonLines(readFileSync(other, "utf8")).map((o) => o.index)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const bare = join(dir, "bare.jsonl");
    writeFileSync(bare, readFileSync(out));
    const refused = runCli(["score", "--model", SMALL, "--input", input, "--max-length", "64", "--output", bare, "--resume"]);
    expect(refused.status).toBe(1);
    oneLine(refused.stderr);
    expect(refused.stderr).toMatch(/bare\.jsonl: cannot resume: no readable bare\.jsonl\.job\.json beside it says which job wrote it/);
  });
});

describe("--resume on a model changed in place, other options, and an output longer than its input", () => {
  const dir = fresh();
  const input = inputFile(dir, 30);
  const model = join(dir, "model");
  const out = join(dir, "out.jsonl");
  beforeAll(() => {
    mkdirSync(model);
    for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(SMALL, f), join(model, f));
    expect(runCli(["score", "-q", "--model", model, "--input", input, "--output", out]).status).toBe(1); // its one bad line
  });
  /** A copy of the finished output and its sidecar, cut to `lines` lines or with lines added, as a job left it. */
  const partial = (name: string, edit: (lines: string[]) => string[]) => {
    const f = join(dir, name);
    writeFileSync(f, edit(readFileSync(out, "utf8").split("\n").slice(0, -1)).map((l) => l + "\n").join(""));
    copyFileSync(`${out}.job.json`, `${f}.job.json`);
    return f;
  };
  const resume = (file: string, ...args: string[]) => runCli(["score", "-q", "--model", model, "--input", input, "--output", file, "--resume", ...args]);
  const refused = (file: string, r: ReturnType<typeof runCli>, message: RegExp) => {
    expect(r.status).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(message);
    expect(readFileSync(file, "utf8").split("\n").length).toBeLessThan(31);
  };

  it("refuses a config.json or a weights file saved again in place (same path and size, other bytes), and resumes once they are back", () => {
    const file = partial("changed.jsonl", (l) => l.slice(0, 10));
    const config = readFileSync(join(SMALL, "config.json"), "utf8");
    writeFileSync(join(model, "config.json"), config.replace('"n_layer"', '"note": "retrained", "n_layer"'));
    refused(file, resume(file), /changed\.jsonl: cannot resume: the model's config\.json has changed since it was written \(sha256 [0-9a-f]{12}…, now [0-9a-f]{12}…\)$/m);
    writeFileSync(join(model, "config.json"), config);
    const weights = readFileSync(join(SMALL, "model.safetensors"));
    const retrained = Buffer.from(weights);
    retrained[retrained.length - 2] ^= 0x40; // one weight's bits, in the last tensor's data: same size
    writeFileSync(join(model, "model.safetensors"), retrained);
    refused(file, resume(file), /cannot resume: the model's weights files have changed since it was written \(model\.safetensors: \d+ bytes, sha256 ([0-9a-f]{12})…, now model\.safetensors: \d+ bytes, sha256 (?!\1)[0-9a-f]{12}…\)$/m);
    writeFileSync(join(model, "model.safetensors"), weights);
    expect(resume(file).status).toBe(1); // its bad line
    expect(readFileSync(file)).toEqual(readFileSync(out));
  });

  it("resumes with --activation naming the default it ran with, refuses another one, and names an option given in one run only without printing null", () => {
    const file = partial("activation.jsonl", (l) => l.slice(0, 10));
    refused(file, resume(file, "--activation", "none"), /cannot resume: it was written with --activation "sigmoid", this job has "none"$/m);
    refused(file, resume(file, "--text-field", "text"), /cannot resume: it was written without --text-field, this job has "text"$/m);
    expect(resume(file, "--activation", "sigmoid").status).toBe(1); // its bad line
    expect(readFileSync(file)).toEqual(readFileSync(out));
  });

  it("refuses an output holding more lines than this same input has", () => {
    const file = partial("longer.jsonl", (l) => [...l, JSON.stringify({ index: 30, logits: [0], tokens: 1, truncated: false })]);
    const r = resume(file);
    expect(r.status).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/longer\.jsonl: holds 31 lines, but this job's input has only 30; it is not the output of this input$/m);
  });
});

describe("bounds", () => {
  /** Peak RSS (KB) of a job over `file`, measured inside the process that runs it. */
  const peakRss = (file: string, args: string[]) => {
    const script = `import(${JSON.stringify(CLI)}).then(async (m) => {
      const code = await m.main(["score", "--model", ${JSON.stringify(SMALL)}, "--input", ${JSON.stringify(file)}, ...${JSON.stringify(args)}]);
      process.stderr.write("maxRSS " + process.resourceUsage().maxRSS + "\\n"); process.exitCode = code; })`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", maxBuffer: 1 << 26 });
    return { status: r.status, stdout: r.stdout, rss: Number(/maxRSS (\d+)/.exec(r.stderr)?.[1]) };
  };

  it("a 50 MB line over --max-line-bytes is skipped as it streams by (never held whole), with an error line; the others are scored", () => {
    const dir = fresh();
    const good = JSON.stringify({ text: "User: hi\nBot: hello" });
    const small = join(dir, "small.jsonl");
    writeFileSync(small, [good, good, good].join("\n") + "\n");
    const big = join(dir, "big.jsonl");
    writeFileSync(big, [good, JSON.stringify({ text: "word ".repeat(10_000_000) }), good].join("\n") + "\n");
    const base = peakRss(small, ["--max-line-bytes", "1000000"]);
    const r = peakRss(big, ["--max-line-bytes", "1000000"]);
    expect(r.status).toBe(1);
    const out = jsonLines(r.stdout);
    expect(out.map((o) => o.index)).toEqual([0, 1, 2]);
    expect(out[1]).toEqual({ index: 1, line: 2, error: "line of 50000011 bytes is longer than --max-line-bytes 1000000; skipped" });
    expect(out[2].logits).toEqual(out[0].logits);
    // KB. Held whole, the line would cost 150 MB and more (its bytes, joined, decoded, parsed); skipped,
    // what remains is garbage not yet collected from the 64 KiB chunks it streamed through.
    expect(r.rss - base.rss).toBeLessThan(64 * 1024);
  });
});

describe("one bad line never takes down a job", () => {
  it("poison lines sprinkled among 1,500 good ones: nothing else lost, and a job killed mid-way resumes to the same bytes", async () => {
    const dir = fresh();
    const goodText = (i: number) => `User: question ${i}?\nBot: answer ${i % 13}`;
    const poison: Buffer[] = [
      Buffer.from(JSON.stringify({ text: `a${" ".repeat(300_000)}b` })),
      Buffer.from(JSON.stringify({ text: `a${"\n".repeat(100_000)}b` })),
      Buffer.from(JSON.stringify({ text: `a${"\u3000".repeat(200_000)}b` })),
      Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), // invalid UTF-8
      Buffer.from('{"text": "unterminated'),
      Buffer.from('{"text": ""}'),
      Buffer.from('{"ids": [1, 2, 99999999]}'),
    ];
    const lines: Buffer[] = [];
    const goodAt: number[] = [];
    for (let i = 0; i < 1_500; i++) {
      if (i % 150 === 7) lines.push(poison[Math.floor(i / 150) % poison.length]);
      goodAt.push(lines.length);
      lines.push(Buffer.from(JSON.stringify({ text: goodText(i) })));
    }
    const input = join(dir, "in.jsonl");
    writeFileSync(input, Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")])));
    const goodOnly = join(dir, "good.jsonl");
    writeFileSync(goodOnly, Array.from({ length: 1_500 }, (_, i) => JSON.stringify({ text: goodText(i) })).join("\n") + "\n");

    const reference = jsonLines(runCli(["score", "--model", SMALL, "--input", goodOnly]).stdout);
    const out = join(dir, "out.jsonl");
    const { child, done } = startCli(["score", "--model", SMALL, "--input", input, "--output", out, "--batch-size", "4"]);
    for (let i = 0; i < 800 && !(existsSync(out) && statSync(out).size > 8_000); i++) await new Promise((r) => setTimeout(r, 25));
    child.kill("SIGKILL");
    expect((await done).signal).toBe("SIGKILL");
    expect(existsSync(`${out}.lock`)).toBe(true); // left by the killed job: stale, taken over below
    const resumed = runCli(["score", "--model", SMALL, "--input", input, "--output", out, "--resume", "--batch-size", "4"]);
    expect(resumed.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(resumed.status).toBe(1);

    const got = jsonLines(readFileSync(out, "utf8"));
    expect(got.map((o) => o.index)).toEqual(lines.map((_, i) => i));
    goodAt.forEach((at, i) => expect(got[at], `good line ${i}`).toEqual({ ...reference[i], index: at }));
    const errors = got.filter((o) => "error" in o).map((o) => String(o.error));
    expect(errors).toHaveLength(4); // invalid UTF-8, bad JSON, an empty text, an id outside the vocabulary
    expect(errors.join("\n")).not.toMatch(/internal error/);
    expect(readFileSync(out)).toEqual(Buffer.from(runCli(["score", "--model", SMALL, "--input", input, "--batch-size", "4"]).stdout));
  }, 240_000);
});
