/**
 * `score --shard I/N` in N local processes, then `merge`: the merged file is the single run's,
 * byte for byte, sidecar included; and merge refuses what is not N finished shards of one job.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, FIXTURES, jsonLines, ROOT, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/fuzz-models.js";

const SMALL = join(FIXTURES, "models", "f16-8head");
const texts: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8"));
const tmp = tempDir("shard");
afterAll(() => tmp.cleanup());

const N = 3;
const input = join(tmp.dir, "in.jsonl");
const single = join(tmp.dir, "single.jsonl");
const shardOut = (i: number) => join(tmp.dir, `part-${i}-of-${N}.jsonl`);

function run(args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: "ignore" });
    child.on("error", reject).on("close", resolve);
  });
}

beforeAll(async () => {
  // 200 lines: the golden texts (long ones truncated), ids, and a few bad lines, so errors shard too.
  const lines = Array.from({ length: 200 }, (_, i) =>
    i % 41 === 9 ? "{not json" : i % 5 === 0 ? JSON.stringify({ ids: [464 + i, 3290, 318] }) : JSON.stringify({ text: texts[i % texts.length] }));
  writeFileSync(input, lines.join("\n") + "\n");
  // The single run and the N shards run at the same time, as N machines would.
  const codes = await Promise.all([
    run(["score", "--model", SMALL, "--input", input, "--output", single, "--threads", "1"]),
    ...Array.from({ length: N }, (_, i) => run(["score", "--model", SMALL, "--input", input, "--output", shardOut(i), "--shard", `${i}/${N}`, "--threads", "1"])),
  ]);
  expect(codes).toEqual([1, 1, 1, 1]); // every shard holds some of the bad lines
}, 120_000);

describe("score --shard I/N + merge", () => {
  it("each shard holds every N-th line under its global index", () => {
    for (let i = 0; i < N; i++) {
      const idx = jsonLines(readFileSync(shardOut(i), "utf8")).map((o) => o.index);
      expect(idx).toEqual(Array.from({ length: Math.ceil((200 - i) / N) }, (_, k) => i + k * N));
    }
  });

  it("merged, the N shard outputs are the single run's file byte for byte, and its sidecar", () => {
    const merged = join(tmp.dir, "merged.jsonl");
    const r = runCli(["merge", "--output", merged, ...Array.from({ length: N }, (_, i) => shardOut(N - 1 - i))]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe(`merged 200 lines from ${N} file(s) into ${merged}\n`);
    expect(readFileSync(merged)).toEqual(readFileSync(single));
    expect(JSON.parse(readFileSync(`${merged}.job.json`, "utf8"))).toEqual(JSON.parse(readFileSync(`${single}.job.json`, "utf8")));
    // And to stdout.
    expect(Buffer.from(runCli(["merge", ...Array.from({ length: N }, (_, i) => shardOut(i))]).stdout)).toEqual(readFileSync(single));
  });

  it("refuses a missing shard, a shard given twice, an unfinished shard, another job's shard and an existing output, in one line", () => {
    const dir = join(tmp.dir, "bad");
    mkdirSync(dir);
    const copy = (i: number, name: string, edit?: (s: Record<string, unknown>) => void, keepLines?: number) => {
      const f = join(dir, name);
      const body = readFileSync(shardOut(i), "utf8");
      writeFileSync(f, keepLines === undefined ? body : body.split("\n").slice(0, keepLines).join("\n") + "\n");
      const side = JSON.parse(readFileSync(`${shardOut(i)}.job.json`, "utf8"));
      edit?.(side);
      writeFileSync(`${f}.job.json`, JSON.stringify(side));
      return f;
    };
    const [a, b, c] = [0, 1, 2].map((i) => copy(i, `s${i}.jsonl`));
    const unfinished = copy(2, "unfinished.jsonl", (s) => delete s.done, 10);
    const otherJob = copy(2, "other.jsonl", (s) => ((s.options as Record<string, unknown>)["--max-length"] = 64));
    const cases: [string[], RegExp][] = [
      [[a, b], /^gpt2-reward: shard 2\/3 is missing: give all 3 shard outputs$/],
      [[a, b, b], /both shard 1\/3$/],
      [[a, b, unfinished], /unfinished\.jsonl: shard 2\/3 has not finished \(its sidecar has no "done"\); run it again with --resume$/],
      [[a, b, otherJob], /other\.jsonl: not of the same job as .*s0\.jsonl: it was written with --max-length 64, this job has 256$/],
      [["--output", single, a, b, c], /single\.jsonl: already exists; merge never overwrites \(remove it first\)$/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(["merge", ...args]);
      expect(r.status, args.join(" ")).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.split("\n"), r.stderr).toHaveLength(2);
      expect(r.stderr.trimEnd()).toMatch(message);
    }
  });

  it("without sidecars, checks that every index appears exactly once", () => {
    const dir = join(tmp.dir, "bare");
    mkdirSync(dir);
    const files = [0, 1, 2].map((i) => {
      const f = join(dir, `s${i}.jsonl`);
      copyFileSync(shardOut(i), f);
      return f;
    });
    expect(existsSync(`${files[0]}.job.json`)).toBe(false);
    expect(Buffer.from(runCli(["merge", ...files]).stdout)).toEqual(readFileSync(single));
    // "-": one shard output from standard input, named so in messages; it has no sidecar.
    expect(Buffer.from(runCli(["merge", files[0], "-", files[2]], readFileSync(files[1])).stdout)).toEqual(readFileSync(single));
    const mixed = runCli(["merge", shardOut(0), "-", shardOut(2)], readFileSync(shardOut(1)));
    expect([mixed.status, mixed.stderr]).toEqual([1, "gpt2-reward: standard input: has no sidecar while the others do; cannot tell it is of the same job\n"]);
    const lines = readFileSync(files[1], "utf8").split("\n");
    writeFileSync(files[1], [...lines.slice(0, 5), ...lines.slice(6)].join("\n")); // index 16 lost
    const missing = runCli(["merge", ...files]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^gpt2-reward: index 16 is in none of the files \(the next one, 17, is in .*s2\.jsonl\): a shard is missing or unfinished\n$/);
    const twice = runCli(["merge", files[0], files[0], files[2]]);
    expect(twice.stderr).toMatch(/^gpt2-reward: index 0 appears twice: in .*s0\.jsonl and in .*s0\.jsonl\n$/);
  });
});

/**
 * deploy/score-indexed-job.yaml's own shell scripts, run here as its pods would run them: the
 * score script once per completion index (one index twice, as a replacement pod after a failure
 * that left its lock), then the merge Job's command. /work is a temp folder and `npx --yes
 * gpt2-reward` the built CLI; nothing else of the scripts is changed.
 */
describe("deploy/score-indexed-job.yaml", () => {
  const yaml = readFileSync(join(ROOT, "deploy", "score-indexed-job.yaml"), "utf8");
  const work = join(tmp.dir, "work");
  const local = (script: string) => script.replaceAll("/work", work).replaceAll("npx --yes gpt2-reward", `"${process.execPath}" "${CLI}"`);
  const sh = (script: string, env: Record<string, string>) => spawnSync("sh", ["-c", local(script)], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 120_000 });

  it("its pods' scripts, with a replacement pod resuming past a dead pod's lock, and its merge Job write the single run's file", () => {
    // The score container's script: the block scalar under `args: - |`, dedented.
    const block = /\n( +)args:\n +- \|\n((?:\1 +.*\n)+)/.exec(yaml);
    expect(block, "the score Job's args block").not.toBeNull();
    const lines = block![2].split("\n").filter((l) => l.trim() !== "");
    const indent = Math.min(...lines.map((l) => /^ */.exec(l)![0].length));
    const scoreScript = lines.map((l) => l.slice(indent)).join("\n");
    const shards = Number(/- \{ name: SHARDS, value: "(\d+)" \}/.exec(yaml)?.[1]);
    expect(Number(/completions: (\d+)/.exec(yaml)?.[1])).toBe(shards);
    const mergeScript = JSON.parse(/args: (\["npx --yes gpt2-reward merge [^\n]*\])/.exec(yaml)![1])[0] as string;
    expect(mergeScript).toContain(`part-*-of-${shards}.jsonl`);

    mkdirSync(join(work, "model"), { recursive: true });
    for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(SMALL, f), join(work, "model", f));
    copyFileSync(input, join(work, "input.jsonl"));
    const env = (i: number) => ({ JOB_COMPLETION_INDEX: String(i), SHARDS: String(shards), MODEL: join(work, "model") });
    for (let i = 0; i < shards; i++) {
      const r = sh(scoreScript, env(i));
      expect(r.status, r.stderr).toBe(0); // exit status 1 of score (its bad lines) is a finished shard
    }
    // Index 2's pod died holding its lock; the replacement pod removes it and resumes: nothing changes.
    const part2 = join(work, "out", `part-2-of-${shards}.jsonl`);
    const before = readFileSync(part2);
    writeFileSync(`${part2}.lock`, JSON.stringify({ pid: 1, host: "pod-2-dead", since: new Date().toISOString() }));
    const again = sh(scoreScript, env(2));
    expect(again.status, again.stderr).toBe(0);
    expect(readFileSync(part2)).toEqual(before);

    const merged = sh(mergeScript, {});
    expect(merged.status, merged.stderr).toBe(0);
    expect(readFileSync(join(work, "out", "scores.jsonl"))).toEqual(readFileSync(single));
  }, 300_000);
});
