/**
 * Every bad input of README's "Bad input: what you see" table, one test per row, named like the
 * row, run through the compiled CLI as a user runs it (`npm test` builds dist/ first).
 *
 * File rows break one thing in a copy of a fixture model and run `score --model <copy> hello`:
 * a non-zero exit, nothing on stdout, and exactly one line on stderr that names the file and the
 * problem, with no stack trace. Warning rows: exit 0, one warning line naming the tensor, normal
 * output. Line rows feed three lines with the bad one in the middle: it gets {"index": 1,
 * "error": ...}, the others are scored, and the exit status is 1.
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deepJson, safetensorsFromText, tempDir } from "../helpers/fuzz-models.js";
import { POISON } from "../helpers/gpt2-bpe.js";
import { PickleWriter, torchZip } from "../helpers/zip-writer.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const MODELS = join(ROOT, "fixtures", "models");
const tmp = tempDir("bad-input");
afterAll(() => tmp.cleanup());

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], input?: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

// ---- breaking a copy of a model ----

let copies = 0;
/** A fresh copy of fixtures/models/<name>. */
function copyModel(name: string): string {
  const dir = join(tmp.dir, `m${copies++}`);
  mkdirSync(dir);
  for (const f of ["config.json", "model.safetensors", "pytorch_model.bin"]) {
    try {
      copyFileSync(join(MODELS, name, f), join(dir, f));
    } catch {
      // the fixture has one weights file or the other
    }
  }
  return dir;
}

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;

/** Reads model.safetensors of `dir`, lets `edit` change the header (and data), writes it back. */
function editSafetensors(dir: string, edit: (header: Header, data: Buffer) => Buffer | void): void {
  const file = join(dir, "model.safetensors");
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")) as Header;
  let data: Buffer = Buffer.from(bytes.subarray(8 + n));
  data = edit(header, data) ?? data;
  writeFileSync(file, safetensorsFromText(JSON.stringify(header), data));
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = join(dir, "config.json");
  const c = JSON.parse(readFileSync(file, "utf8"));
  edit(c);
  writeFileSync(file, JSON.stringify(c, null, 2));
}

type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };
const entry = (h: Header, name: string) => h[name] as Entry;

/** Removes tensor `name` and its bytes, moving the later tensors down. */
function dropTensor(h: Header, data: Buffer, name: string): Buffer {
  const [b, e] = entry(h, name).data_offsets;
  delete h[name];
  for (const [k, v] of Object.entries(h)) {
    if (k === "__metadata__") continue;
    const t = v as Entry;
    if (t.data_offsets[0] >= e) t.data_offsets = [t.data_offsets[0] - (e - b), t.data_offsets[1] - (e - b)];
  }
  return Buffer.concat([data.subarray(0, b), data.subarray(e)]);
}

/** Offset of the first central-directory entry of a zip. */
function firstCentralEntry(bytes: Buffer): number {
  for (let i = bytes.length - 22; i >= 0; i--) if (bytes.readUInt32LE(i) === 0x06054b50) return bytes.readUInt32LE(i + 16);
  throw new Error("no end of central directory");
}

// ---- the rows ----

interface FileRow {
  row: string;
  kind: "error" | "warning";
  model: string;
  /** Breaks the copy; returns the file the message must name (relative to the copy). */
  setup: (dir: string) => string;
  problem: RegExp;
  args?: string[];
}

const fileRows: FileRow[] = [
  {
    row: "truncated file", kind: "error", model: "f16-8head", problem: /tensor transformer\.\S+ ends at data offset \d+, past the \d+ data bytes after the header \(truncated file\?\)/,
    setup: (dir) => {
      const f = join(dir, "model.safetensors");
      const b = readFileSync(f);
      writeFileSync(f, b.subarray(0, Math.floor(b.length * 0.6)));
      return "model.safetensors";
    },
  },
  {
    row: "header length larger than the file", kind: "error", model: "f16-8head", problem: /safetensors header length \d+ runs past the end of the file \(\d+ bytes\): truncated or not a safetensors file/,
    setup: (dir) => {
      const f = join(dir, "model.safetensors");
      const b = readFileSync(f);
      b.writeBigUInt64LE(BigInt(b.length + 1000), 0);
      writeFileSync(f, b);
      return "model.safetensors";
    },
  },
  {
    row: "header not JSON", kind: "error", model: "f16-8head", problem: /safetensors header is not valid JSON \(.+\)/,
    setup: (dir) => {
      const f = join(dir, "model.safetensors");
      const b = readFileSync(f);
      const n = Number(b.readBigUInt64LE(0));
      b.fill(0x20, 8, 8 + n).write("{not json", 8);
      writeFileSync(f, b);
      return "model.safetensors";
    },
  },
  {
    row: "header not a JSON object", kind: "error", model: "f16-8head", problem: /safetensors header is not a JSON object/,
    setup: (dir) => {
      const f = join(dir, "model.safetensors");
      const b = readFileSync(f);
      const n = Number(b.readBigUInt64LE(0));
      b.fill(0x20, 8, 8 + n).write("[]", 8);
      writeFileSync(f, b);
      return "model.safetensors";
    },
  },
  {
    row: "overlapping offsets", kind: "error", model: "f16-8head", problem: /tensor transformer\.h\.0\.ln_1\.(weight|bias) starts at data offset \d+, which overlaps the previous tensor \(offsets must be contiguous from 0\)/,
    setup: (dir) => {
      // The later of two same-sized tensors is given the earlier one's bytes.
      editSafetensors(dir, (h) => {
        const [a, b] = [entry(h, "transformer.h.0.ln_1.weight"), entry(h, "transformer.h.0.ln_1.bias")].sort((x, y) => x.data_offsets[0] - y.data_offsets[0]);
        b.data_offsets = [...a.data_offsets];
      });
      return "model.safetensors";
    },
  },
  {
    row: "out-of-order offsets ([end, begin])", kind: "error", model: "f16-8head", problem: /tensor transformer\.ln_f\.bias has invalid data_offsets\./,
    setup: (dir) => {
      editSafetensors(dir, (h) => {
        const e = entry(h, "transformer.ln_f.bias");
        e.data_offsets = [e.data_offsets[1], e.data_offsets[0]];
      });
      return "model.safetensors";
    },
  },
  {
    row: "unknown dtype", kind: "error", model: "f16-8head", problem: /tensor transformer\.wpe\.weight has unknown or unsupported dtype "Q4_0"/,
    setup: (dir) => {
      editSafetensors(dir, (h) => void (entry(h, "transformer.wpe.weight").dtype = "Q4_0"));
      return "model.safetensors";
    },
  },
  {
    row: "integer dtype for a weight", kind: "error", model: "f16-8head", problem: /tensor transformer\.ln_f\.weight has dtype I16, expected a floating-point dtype \(F32, F16 or BF16\)/,
    setup: (dir) => {
      editSafetensors(dir, (h) => void (entry(h, "transformer.ln_f.weight").dtype = "I16"));
      return "model.safetensors";
    },
  },
  {
    row: "shape that disagrees with the config", kind: "error", model: "f16-8head", problem: /tensor transformer\.h\.0\.mlp\.c_fc\.weight has shape \[32, 48\], config expects \[32, 64\]/,
    setup: (dir) => {
      editConfig(dir, (c) => void (c.n_inner = 64));
      return "model.safetensors";
    },
  },
  {
    row: "missing tensor", kind: "error", model: "f16-8head", problem: /missing tensor transformer\.h\.1\.ln_2\.bias/,
    setup: (dir) => {
      editSafetensors(dir, (h, data) => dropTensor(h, data, "transformer.h.1.ln_2.bias"));
      return "model.safetensors";
    },
  },
  {
    row: "missing score head (a language model, not a reward model)", kind: "error", model: "f16-8head", problem: /missing tensor score\.weight \(is this a GPT2ForSequenceClassification checkpoint\? a language model has no score head\)/,
    setup: (dir) => {
      editSafetensors(dir, (h, data) => dropTensor(h, data, "score.weight"));
      return "model.safetensors";
    },
  },
  {
    row: "extra unknown tensors", kind: "warning", model: "f16-8head", problem: /ignoring 1 tensor\(s\) GPT-2 does not use: transformer\.h\.0\.attn\.rotary\.inv_freq/,
    setup: (dir) => {
      editSafetensors(dir, (h, data) => {
        h["transformer.h.0.attn.rotary.inv_freq"] = { dtype: "F16", shape: [4], data_offsets: [data.length, data.length + 8] };
        return Buffer.concat([data, Buffer.alloc(8)]);
      });
      return "model.safetensors";
    },
  },
  {
    row: "an extra tensor with a hostile name (a newline, a forged JSON line, a terminal title escape, 10,000 characters)", kind: "warning", model: "f16-8head",
    problem: /ignoring 1 tensor\(s\) GPT-2 does not use: x\\n\{"index":0,"logits":\[9\]\}\\u001b\]0;pwned\\u0007a+…a{39}/,
    setup: (dir) => {
      editSafetensors(dir, (h, data) => {
        h[`x\n{"index":0,"logits":[9]}\u001b]0;pwned\u0007${"a".repeat(10_000)}`] = { dtype: "F16", shape: [4], data_offsets: [data.length, data.length + 8] };
        return Buffer.concat([data, Buffer.alloc(8)]);
      });
      return "model.safetensors";
    },
  },
  {
    row: "NaN or Inf in weights", kind: "warning", model: "f16-8head", problem: /tensor transformer\.wpe\.weight holds 2 NaN or infinite value\(s\); scores may be NaN/,
    setup: (dir) => {
      // In the last position's row of wpe, which "hello" (one token) never reads: the score stays finite.
      editSafetensors(dir, (h, data) => {
        const [, end] = entry(h, "transformer.wpe.weight").data_offsets;
        data.writeUInt16LE(0x7e00, end - 2); // NaN
        data.writeUInt16LE(0x7c00, end - 4); // +Inf
      });
      return "model.safetensors";
    },
  },
  {
    row: "config: n_head does not divide n_embd", kind: "error", model: "f16-8head", problem: /n_embd 32 is not divisible by n_head 5/,
    setup: (dir) => {
      editConfig(dir, (c) => void (c.n_head = 5));
      return "config.json";
    },
  },
  {
    row: "config: n_positions smaller than the max length", kind: "error", model: "f16-8head", problem: /max length 256 exceeds the model's n_positions 100 \(it has no position embedding beyond that\)/,
    setup: (dir) => {
      // A consistent model with 100 positions: the config says so and wpe has 100 rows.
      editConfig(dir, (c) => void (c.n_positions = 100));
      editSafetensors(dir, (h, data) => {
        const [b] = entry(h, "transformer.wpe.weight").data_offsets;
        const rows = data.subarray(b, b + 100 * 32 * 2); // F16
        const rest = dropTensor(h, data, "transformer.wpe.weight");
        h["transformer.wpe.weight"] = { dtype: "F16", shape: [100, 32], data_offsets: [rest.length, rest.length + rows.length] };
        return Buffer.concat([rest, rows]);
      });
      return "config.json";
    },
  },
  {
    row: "config: a size field missing (GPT-2's default is used)", kind: "error", model: "f16-8head", problem: /tensor transformer\.wte\.weight has shape \[50257, 32\], config expects \[50257, 768\]/,
    setup: (dir) => {
      editConfig(dir, (c) => void delete c.n_embd);
      return "model.safetensors";
    },
  },
  {
    row: "config: absurd sizes (vocab_size 8,000,000, n_embd 4096)", kind: "error", model: "f16-8head", problem: /tensor transformer\.wte\.weight has shape \[50257, 32\], config expects \[8000000, 4096\]/,
    setup: (dir) => {
      editConfig(dir, (c) => Object.assign(c, { vocab_size: 8_000_000, n_embd: 4096 }));
      return "model.safetensors";
    },
  },
  {
    row: "config: a value of the wrong type", kind: "error", model: "f16-8head", problem: /"n_layer" is "2", expected an integer from 1 to 1000/,
    setup: (dir) => {
      editConfig(dir, (c) => void (c.n_layer = "2"));
      return "config.json";
    },
  },
  {
    row: "config: nested 20,000 deep", kind: "error", model: "f16-8head", problem: /"n_layer" is an array of 1, expected an integer from 1 to 1000/,
    setup: (dir) => {
      const f = join(dir, "config.json");
      writeFileSync(f, readFileSync(f, "utf8").replace(/"n_layer": 2/, `"n_layer": ${deepJson(20_000)}`));
      return "config.json";
    },
  },
  {
    row: "config.json not JSON", kind: "error", model: "f16-8head", problem: /not valid JSON \(.+\)/,
    setup: (dir) => {
      writeFileSync(join(dir, "config.json"), '{"n_layer": 2,');
      return "config.json";
    },
  },
  {
    row: "config.json is a FIFO (a named pipe)", kind: "error", model: "f16-8head", problem: /is a FIFO \(named pipe\), not a file/,
    setup: (dir) => {
      rmSync(join(dir, "config.json"));
      execFileSync("mkfifo", [join(dir, "config.json")]);
      return "config.json";
    },
  },
  {
    row: "config.json is a link to /dev/zero", kind: "error", model: "f16-8head", problem: /is a character device, not a file/,
    setup: (dir) => {
      rmSync(join(dir, "config.json"));
      symlinkSync("/dev/zero", join(dir, "config.json"));
      return "config.json";
    },
  },
  {
    row: "config.json is a directory", kind: "error", model: "f16-8head", problem: /is a directory, not a file/,
    setup: (dir) => {
      rmSync(join(dir, "config.json"));
      mkdirSync(join(dir, "config.json"));
      return "config.json";
    },
  },
  {
    row: "config.json of 40 MB", kind: "error", model: "f16-8head", problem: /is 41943040 bytes, more than the 33554432 this file may have; refusing to read it/,
    setup: (dir) => {
      writeFileSync(join(dir, "config.json"), Buffer.alloc(40 << 20, 0x20));
      return "config.json";
    },
  },
  {
    row: "model.safetensors is a FIFO", kind: "error", model: "f16-8head", problem: /is a FIFO \(named pipe\), not a file/,
    setup: (dir) => {
      rmSync(join(dir, "model.safetensors"));
      execFileSync("mkfifo", [join(dir, "model.safetensors")]);
      return "model.safetensors";
    },
  },
  {
    row: "pickle naming a forbidden global", kind: "error", model: "f16-8head-bin", problem: /pickle refers to the global os\.system, which is not on the allowlist of names a checkpoint may use; refusing to load it/,
    setup: (dir) => {
      const pkl = new PickleWriter().proto(2).global("os", "system").str("echo pwned").raw(0x85).reduce().stop().bytes();
      writeFileSync(join(dir, "pytorch_model.bin"), torchZip(pkl, {}));
      return "pytorch_model.bin";
    },
  },
  {
    row: "zip record outside the file", kind: "error", model: "f16-8head-bin", problem: /zip local header of record pytorch_model\/data\.pkl \(bytes \d+\.\.\d+\) lies outside the file \(\d+ bytes\); the archive is truncated or corrupt/,
    setup: (dir) => {
      const f = join(dir, "pytorch_model.bin");
      const b = readFileSync(f);
      b.writeUInt32LE(b.length + 4096, firstCentralEntry(b) + 42); // the local header offset of the first record
      writeFileSync(f, b);
      return "pytorch_model.bin";
    },
  },
];

interface LineRow {
  row: string;
  line: Buffer;
  error: RegExp;
  args?: string[];
}

const lineRows: LineRow[] = [
  { row: "invalid JSON line", line: Buffer.from('{"text": "hi"'), error: /^invalid JSON: .+/ },
  { row: "invalid UTF-8", line: Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x20, 0x22, 0xff, 0xfe, 0x22, 0x7d]), error: /^line is not valid UTF-8$/ },
  { row: "lone surrogates", line: Buffer.from('{"text": "a\\ud800b"}'), error: /^text contains a lone UTF-16 surrogate \(\\ud800\) at position 1: not valid Unicode$/ },
  { row: "an id outside the vocabulary", line: Buffer.from('{"ids": [464, 50257]}'), error: /^id 50257 is outside the vocabulary \(0 to 50256\)$/ },
  { row: "an empty text", line: Buffer.from('{"text": ""}'), error: /^empty text: it has no tokens to score$/ },
  { row: "neither text nor ids", line: Buffer.from('{"txt": "hi"}'), error: /^expected a JSON object with "text", "messages" or "ids" \(or name the field with --text-field\)$/ },
  {
    row: "a line longer than --max-line-bytes (skipped as it streams by, never held whole)",
    line: Buffer.from(JSON.stringify({ text: "a".repeat(10_000) })),
    args: ["--max-line-bytes", "5000"],
    error: /^line of 10011 bytes is longer than --max-line-bytes 5000; skipped$/,
  },
];

/**
 * Lines that are hostile to a tokenizer but fine for the model: each holds one long run that is
 * a single BPE piece. They score like any other line (ids: test/model/tokenizer.test.ts).
 */
const POISON_ROW = "a long run in one text (300,000 spaces between two letters, 200,000 tabs, 100,000 CRLF, 200,000 U+3000, 400,000 newlines, 300,000 symbols, a 300,000-letter word)";

/** A job that cannot start: one line on stderr, nothing on stdout, nothing written. */
interface JobRow {
  row: string;
  /** The options after --model; `dir` is a fresh folder. */
  args: (dir: string) => string[];
  texts?: string[];
  problem: (dir: string) => RegExp;
}

const jobRows: JobRow[] = [
  { row: "--input a directory", args: (dir) => ["--input", dir], problem: (dir) => new RegExp(`^${escape(dir)}: is a directory, not an input file$`) },
  { row: "--input a device that never ends (/dev/zero)", args: () => ["--input", "/dev/zero"], problem: () => /^\/dev\/zero: is a device, not an input file or a pipe$/ },
  {
    row: "--input that cannot be opened (a symlink loop; a file without read permission alike)",
    args: (dir) => {
      symlinkSync(join(dir, "b"), join(dir, "a"));
      symlinkSync(join(dir, "a"), join(dir, "b"));
      return ["--input", join(dir, "a")];
    },
    problem: (dir) => new RegExp(`^${escape(join(dir, "a"))}: cannot read: too many symbolic links \\(ELOOP\\)$`),
  },
  { row: "--output /dev/full (or /dev/zero, any device but a terminal or /dev/null)", args: () => ["--output", "/dev/full"], texts: ["hello"], problem: () => /^\/dev\/full: is a device, not a file or a pipe; --output takes a file, a pipe or - \(standard output\)$/ },
  { row: "--output a directory", args: (dir) => ["--output", dir], texts: ["hello"], problem: (dir) => new RegExp(`^${escape(dir)}: is a directory; --output takes a file name$`) },
  {
    row: "--output another job is writing (its lock file names it)",
    args: (dir) => {
      writeFileSync(join(dir, "out.jsonl.lock"), JSON.stringify({ pid: 4242, host: "node-7", since: "2026-12-01T10:00:00.000Z" }));
      return ["--output", join(dir, "out.jsonl")];
    },
    texts: ["hello"],
    problem: (dir) => new RegExp(`^${escape(join(dir, "out.jsonl"))}: another job is writing it \\(process 4242 on node-7, since 2026-12-01T10:00:00\\.000Z; lock file ${escape(join(dir, "out.jsonl.lock"))}\\); if that job is gone, remove the lock file$`),
  },
  {
    row: "--output that holds results, without --resume",
    args: (dir) => {
      writeFileSync(join(dir, "out.jsonl"), '{"index":0,"logits":[1]}\n');
      return ["--output", join(dir, "out.jsonl")];
    },
    texts: ["hello"],
    problem: (dir) => new RegExp(`^${escape(join(dir, "out.jsonl"))}: already holds results; use --resume to continue that job, or remove the file$`),
  },
  {
    row: "--batch-size beyond what memory can hold (even for one-token texts)",
    args: () => ["--batch-size", "1000000000"],
    texts: ["hello"],
    problem: () => /^--batch-size 1000000000 does not fit: each text takes at least one token of [\d.]+ KiB, and the 4 GiB WebAssembly memory leaves [\d.]+ MiB beside the weights, room for (\d+) tokens in a batch; use --batch-size \1 or less$/,
  },
];

// All CLI runs start together (each is a separate node process), then each row checks its own.
const results = new Map<string, Promise<{ run: Run; dir: string; file: string }>>();
beforeAll(() => {
  for (const r of fileRows) {
    const dir = copyModel(r.model);
    const file = join(dir, r.setup(dir));
    results.set(r.row, runCli(["score", "--model", dir, ...(r.args ?? []), "hello"]).then((run) => ({ run, dir, file })));
  }
  for (const r of lineRows) {
    const input = Buffer.concat([Buffer.from('{"text": "User: hi\\nBot: hello"}\n'), r.line, Buffer.from('\n{"ids": [464, 3290]}\n')]);
    results.set(r.row, runCli(["score", "--model", join(MODELS, "f16-8head"), ...(r.args ?? [])], input).then((run) => ({ run, dir: "", file: "" })));
  }
  for (const r of jobRows) {
    const dir = join(tmp.dir, `job${copies++}`);
    mkdirSync(dir);
    results.set(r.row, runCli(["score", "--model", join(MODELS, "f16-8head"), ...r.args(dir), ...(r.texts ?? [])]).then((run) => ({ run, dir, file: "" })));
  }
  const poison = Object.values(POISON).map((text) => `${JSON.stringify({ text })}\n`).join("");
  results.set(POISON_ROW, runCli(["score", "--model", join(MODELS, "f16-8head")], Buffer.from(`{"text": "hi"}\n${poison}{"text": "bye"}\n`)).then((run) => ({ run, dir: "", file: "" })));
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("the README's table", () => {
  it("has exactly the rows tested here (a row without a test, or a test without a row, fails)", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Bad input: what you see"));
    const table = section.slice(0, section.indexOf("\n## ", 1));
    // First cell of each body row, code marks dropped (the test names are plain text).
    const rows = table.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| input |")).map((l) => l.slice(2, l.indexOf(" | ")).replace(/`/g, ""));
    const tested = [...fileRows, ...lineRows, ...jobRows].map((r) => r.row).concat(POISON_ROW);
    expect(rows.length).toBeGreaterThan(40);
    expect([...rows].sort()).toEqual([...tested].sort());
  });
});

describe("bad files: one line on stderr naming the file and the problem, non-zero exit", () => {
  it.each(fileRows.filter((r) => r.kind === "error").map((r) => [r.row, r] as const))("%s", async (_, r) => {
    const { run, file } = await results.get(r.row)!;
    expect(run.stdout).toBe("");
    expect(run.stderr).not.toMatch(/\n {4}at /);
    expect(run.stderr.split("\n")).toHaveLength(2); // one line and its newline
    expect(run.stderr).toMatch(new RegExp(`^gpt2-reward: ${escape(file)}: ${r.problem.source}\\n$`));
    expect(run.status).toBe(1);
  });
});

describe("suspicious files: a warning naming the tensor, normal output, exit 0", () => {
  it.each(fileRows.filter((r) => r.kind === "warning").map((r) => [r.row, r] as const))("%s", async (_, r) => {
    const { run, file } = await results.get(r.row)!;
    expect(run.stderr).toMatch(new RegExp(`^gpt2-reward: warning: ${escape(file)}: ${r.problem.source}\\ngpt2-reward: done: 1 line\\(s\\): 1 scored, [^\\n]*\\n$`));
    const out = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ index: 0, tokens: 1, truncated: false });
    expect(Number.isFinite(out[0].logits[0])).toBe(true);
    expect(run.status).toBe(0);
  });
});

describe("jobs that cannot start: one line naming what is wrong, nothing on stdout, exit 1", () => {
  it.each(jobRows.map((r) => [r.row, r] as const))("%s", async (_, r) => {
    const { run, dir } = await results.get(r.row)!;
    expect(run.stdout).toBe("");
    expect(run.stderr).not.toMatch(/\n {4}at /);
    expect(run.stderr.split("\n")).toHaveLength(2);
    expect(run.stderr).toMatch(new RegExp(`^gpt2-reward: ${r.problem(dir).source.slice(1, -1)}\\n$`));
    expect(run.status).toBe(1);
  });
});

describe("bad lines: {index, line, error} for that line, the others scored, exit 1", () => {
  it.each(lineRows.map((r) => [r.row, r] as const))("%s", async (_, r) => {
    const { run } = await results.get(r.row)!;
    expect(run.stderr).toMatch(/^gpt2-reward: done: 3 line\(s\): 2 scored, 1 failed \(first at line 2: [^\n]+\), 0 truncated, [^\n]*\n$/);
    const out = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(out.map((o) => o.index)).toEqual([0, 1, 2]);
    // The record's index, the input line it came from, the reason; then any fields it passes through.
    expect(Object.keys(out[1]).slice(0, 3)).toEqual(["index", "line", "error"]);
    expect(out[1]).not.toHaveProperty("logits");
    expect(out[1].error).toMatch(r.error);
    for (const i of [0, 2]) expect(out[i].logits).toHaveLength(1);
    expect(run.status).toBe(1);
  });
});

describe("lines hostile to the tokenizer: scored like any other line, exit 0", () => {
  it(POISON_ROW, async () => {
    const { run } = await results.get(POISON_ROW)!;
    expect(run.stderr).toMatch(/^gpt2-reward: done: \d+ line\(s\): \d+ scored, 0 failed, [^\n]*\n$/);
    const out = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const n = Object.keys(POISON).length + 2;
    expect(out.map((o) => o.index)).toEqual([...Array(n).keys()]);
    for (const o of out) expect(Object.keys(o).sort()).toEqual(["index", "logits", "scores", "tokens", "truncated"]);
    for (const o of out.slice(1, -1)) expect(o).toMatchObject({ tokens: 256, truncated: true });
    expect(run.status).toBe(0);
  });
});
