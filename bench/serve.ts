/**
 * The server under load (issue 13): `gpt2-reward serve` on 127.0.0.1, Debian's wrk sending the
 * chat workload's texts (bench/workload-texts.ts: 64 texts, median 100 tokens) to POST /score
 * from 1, 8 and 64 connections, each for a fixed time, against the CLI scoring the same 64 texts
 * in one job. Also: the server's event-loop lag while a long batch computes (the latency of
 * GET /health polled during a 32 × 256-token /score), and its RSS idle and under load.
 *
 * wrk, not an npm load generator: it is C, so its own CPU on the 2 shared cores is negligible,
 * it keeps C connections busy (closed loop: each sends its next request when its answer comes),
 * and it ships in Debian (`apt-get install wrk`), so the package gains no dependency.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuMark, cpuUse } from "./cpu.js";
import { randomIds, rng } from "./random.js";
import { formatTable, fixed } from "./table.js";
import { workloadTexts } from "./workload-texts.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const LUA = join(ROOT, "bench", "serve.lua");
/**
 * The levels, per server: the defaults at 1, 8 and 64 clients, then 64 clients with the former
 * default --max-batch-tokens 4096 (a pass of 4096 tokens of GPT-2 base takes ~10 s on 2 cores),
 * which this comparison replaced by 1024.
 */
export const SERVERS: { maxBatchTokens: number | null; clients: number[] }[] = [
  { maxBatchTokens: null, clients: [1, 8, 64] },
  { maxBatchTokens: 4096, clients: [64] },
];

/**
 * Seconds per level. Answers come in steps of a batch (with 4096-token passes ~35 texts every ~10 s), so
 * the 64-client window must hold many batches for one more or less to matter little.
 */
const levelSeconds = (clients: number, quick: boolean) => (quick ? 20 : clients >= 64 ? 180 : 60);

export interface ServeLevel {
  clients: number;
  /** The server's --max-batch-tokens (null: its default). */
  maxBatchTokens: number | null;
  seconds: number;
  /** Answers (one text each) within the run. */
  requests: number;
  textsPerSec: number;
  /** texts/s over the CLI's. */
  vsCli: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Failed requests: non-2xx, connect, read, write errors and timeouts. */
  errors: number;
  /** The server's largest RSS, sampled every 250 ms. */
  maxRssMiB: number;
  /** CPU the server used over the run, in cores; other processes' (wrk and this one excluded). */
  serverCores: number;
  otherCores: number | null;
}

export interface ServeResults {
  threads: number;
  texts: number;
  tokens: number;
  cli: { textsPerSec: number; seconds: number; runs: number };
  /** RSS of the server with the model loaded, before any request. */
  idleRssMiB: number;
  levels: ServeLevel[];
  /** GET /health polled back to back while one long /score computes. */
  lag: { texts: number; tokens: number; seconds: number; probes: number; p50Ms: number; p99Ms: number; maxMs: number };
  wrk: string;
}

export interface ServeOptions {
  quick: boolean;
  threads: number;
  log: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** RSS and CPU time (ms) of a process, from /proc. */
function proc(pid: number): { rssMiB: number; cpuMs: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th (clock ticks of 10 ms).
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { rssMiB: rssKiB / 1024, cpuMs: (Number(f[11]) + Number(f[12])) * 10 };
}

/** `gpt2-reward score` on the texts, in one job; its own rate (the clock starts after the load). */
function cliRate(modelDir: string, input: string, threads: number): { textsPerSec: number; seconds: number } {
  const r = spawnSync(process.execPath, [CLI, "score", "--model", modelDir, "--input", input, "--output", "/dev/null", "--threads", String(threads)], { encoding: "utf8" });
  const m = /done: ([\d,]+) line\(s\): .* in (?:(\d+) min )?([\d.]+) s/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`serve bench: the CLI failed (${r.status}): ${r.stderr.slice(-500)}`);
  const seconds = Number(m[2] ?? 0) * 60 + Number(m[3]);
  return { textsPerSec: Number(m[1].replace(/,/g, "")) / seconds, seconds };
}

/** Starts `gpt2-reward serve` on a free loopback port; resolves once its model is loaded. */
function startServer(modelDir: string, threads: number, maxBatchTokens: number | null): Promise<{ child: ChildProcess; base: string }> {
  const flags = maxBatchTokens === null ? [] : ["--max-batch-tokens", String(maxBatchTokens)];
  const child = spawn(process.execPath, [CLI, "serve", "--model", modelDir, "--host", "127.0.0.1", "--port", "0", "--threads", String(threads), ...flags], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve bench: the server was not ready in 120 s: ${stderr}`)), 120_000);
    child.stderr!.on("data", (d) => {
      stderr += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m && /ready:/.test(stderr)) {
        clearTimeout(timer);
        resolve({ child, base: `http://127.0.0.1:${m[1]}` });
      }
    });
    child.on("exit", (code) => reject(new Error(`serve bench: the server exited (${code}): ${stderr}`)));
  });
}

async function score(base: string, ids: number[][]): Promise<void> {
  const r = await fetch(`${base}/score`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ids }), signal: AbortSignal.timeout(300_000) });
  const body = await r.text();
  if (r.status !== 200 || body.includes('"error"')) throw new Error(`serve bench: /score answered ${r.status}: ${body.slice(0, 300)}`);
}

/** One wrk run of `seconds` with `clients` connections, sampling the server's RSS and CPU meanwhile. */
async function level(base: string, pid: number, bodies: string, clients: number, maxBatchTokens: number | null, seconds: number, cliRate: number): Promise<ServeLevel> {
  const wrkThreads = Math.min(2, clients);
  const before = proc(pid);
  const mark = cpuMark();
  let maxRss = before.rssMiB;
  const wrk = spawn("wrk", ["-t", String(wrkThreads), "-c", String(clients), "-d", `${seconds}s`, "--timeout", "120s", "-s", LUA, `${base}/`, "--", bodies, String(wrkThreads)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  wrk.stdout.on("data", (d) => (out += d));
  wrk.stderr.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => wrk.on("exit", resolve));
  let running = true;
  void exited.then(() => (running = false));
  while (running) {
    maxRss = Math.max(maxRss, proc(pid).rssMiB);
    await sleep(250);
  }
  const use = cpuUse(mark, cpuMark());
  const after = proc(pid);
  if ((await exited) !== 0) throw new Error(`serve bench: wrk failed: ${out}`);
  const line = out.split("\n").find((l) => l.startsWith('{"requests"'));
  if (!line) throw new Error(`serve bench: no summary from wrk: ${out}`);
  const s = JSON.parse(line) as Record<string, number>;
  const wall = s.durationUs / 1e6;
  const serverCores = (after.cpuMs - before.cpuMs) / (wall * 1000);
  const textsPerSec = s.requests / wall;
  return {
    clients, maxBatchTokens, seconds: wall, requests: s.requests, textsPerSec, vsCli: textsPerSec / cliRate,
    p50Ms: s.p50Us / 1000, p99Ms: s.p99Us / 1000, maxMs: s.maxUs / 1000,
    errors: s.status + s.connect + s.read + s.write + s.timeout, maxRssMiB: maxRss, serverCores,
    otherCores: use.otherCores === null ? null : Math.max(0, use.otherCores - serverCores),
  };
}

/** GET /health back to back while one long /score computes: how long the event loop keeps a request waiting. */
async function lag(base: string): Promise<ServeResults["lag"]> {
  const next = rng(13);
  const ids = Array.from({ length: 32 }, () => randomIds(next, 256));
  const t0 = performance.now();
  let done = false;
  const long = score(base, ids).finally(() => (done = true));
  const probes: number[] = [];
  await sleep(200); // the batch has started computing
  while (!done) {
    const p0 = performance.now();
    const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(60_000) });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`serve bench: /health answered ${r.status} during a batch`);
    if (!done) probes.push(performance.now() - p0);
    await sleep(10);
  }
  await long;
  const sorted = probes.sort((a, b) => a - b);
  if (sorted.length === 0) throw new Error("serve bench: the long batch ended before /health was polled");
  return { texts: 32, tokens: 32 * 256, seconds: (performance.now() - t0) / 1000, probes: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted[sorted.length - 1] };
}

export async function benchServe(modelDir: string, opts: ServeOptions): Promise<ServeResults> {
  const version = spawnSync("wrk", ["--version"], { encoding: "utf8" });
  if (version.error) throw new Error("serve bench: wrk is missing: apt-get install -y wrk");
  const wrkVersion = /wrk (\S+)/.exec(version.stdout)?.[1] ?? "?";
  const texts = workloadTexts("chat");
  const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-serve-bench-"));
  try {
    const input = join(dir, "chat.jsonl");
    writeFileSync(input, texts.map((ids) => JSON.stringify({ ids })).join("\n") + "\n");
    const bodies = join(dir, "bodies.jsonl");
    writeFileSync(bodies, texts.map((ids) => JSON.stringify({ ids: [ids] })).join("\n") + "\n");

    // The CLI, twice: the faster run (a busy neighbour only slows a run down).
    const runs = opts.quick ? 1 : 2;
    let cli = { textsPerSec: 0, seconds: 0 };
    for (let i = 0; i < runs; i++) {
      opts.log(`serve: the CLI scores the ${texts.length} chat texts, ${opts.threads} thread(s), run ${i + 1}/${runs}`);
      const r = cliRate(modelDir, input, opts.threads);
      opts.log(`  ${r.seconds.toFixed(1)} s, ${r.textsPerSec.toFixed(2)} texts/s`);
      if (r.textsPerSec > cli.textsPerSec) cli = r;
    }

    const levels: ServeLevel[] = [];
    let idleRssMiB = 0;
    let lagged: ServeResults["lag"] | null = null;
    for (const { maxBatchTokens, clients } of SERVERS) {
      const flag = maxBatchTokens === null ? "default flags" : `--max-batch-tokens ${maxBatchTokens}`;
      opts.log(`serve: starting the server, ${opts.threads} thread(s), ${flag}`);
      const { child, base } = await startServer(modelDir, opts.threads, maxBatchTokens);
      try {
        const pid = child.pid!;
        if (maxBatchTokens === null) idleRssMiB = proc(pid).rssMiB;
        // One pass over the texts first, so that every level finds the server warm.
        for (let i = 0; i < texts.length; i += 32) await score(base, texts.slice(i, i + 32));
        for (const c of clients) {
          const seconds = levelSeconds(c, opts.quick);
          opts.log(`serve: wrk, ${c} client(s), ${flag}, ${seconds} s`);
          const l = await level(base, pid, bodies, c, maxBatchTokens, seconds, cli.textsPerSec);
          opts.log(`  ${l.textsPerSec.toFixed(2)} texts/s (${(100 * l.vsCli).toFixed(0)}% of the CLI's), p50 ${l.p50Ms.toFixed(0)} ms, p99 ${l.p99Ms.toFixed(0)} ms, ${l.errors} errors, others' CPU ${l.otherCores?.toFixed(2) ?? "—"}`);
          levels.push(l);
        }
        if (maxBatchTokens === null) {
          opts.log("serve: /health during a 32 × 256-token /score");
          lagged = await lag(base);
        }
      } finally {
        child.kill("SIGTERM");
        await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
      }
    }
    return { threads: opts.threads, texts: texts.length, tokens: texts.reduce((n, t) => n + t.length, 0), cli: { ...cli, runs }, idleRssMiB, levels, lag: lagged!, wrk: wrkVersion };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function serveTable(r: ServeResults): string {
  const rows = r.levels.map((l) => [
    String(l.clients), l.maxBatchTokens === null ? "default" : String(l.maxBatchTokens), fixed(l.seconds, 0), fixed(l.textsPerSec, 2), `${fixed(100 * l.vsCli, 0)}%`, fixed(l.p50Ms, 0), fixed(l.p99Ms, 0), fixed(l.maxMs, 0),
    String(l.requests), String(l.errors), fixed(l.maxRssMiB, 0), fixed(l.serverCores, 2), fixed(l.otherCores, 2),
  ]);
  return formatTable(
    `serve: POST /score, one chat text per request (${r.texts} texts, ${r.tokens} tokens), ${r.threads} thread(s), wrk ${r.wrk}`,
    ["clients", "max batch tokens", "seconds", "texts/s", "vs CLI", "p50 ms", "p99 ms", "max ms", "answers", "errors", "max RSS MiB", "server cores", "others' cores"],
    rows,
    [
      `CLI, the same texts in one job (batch 8): ${fixed(r.cli.textsPerSec, 2)} texts/s (${fixed(r.cli.seconds, 1)} s, best of ${r.cli.runs})`,
      `server RSS idle (model loaded): ${fixed(r.idleRssMiB, 0)} MiB`,
      `event-loop lag: GET /health during a ${r.lag.texts} × 256-token /score (${fixed(r.lag.seconds, 1)} s): ${r.lag.probes} probes, p50 ${fixed(r.lag.p50Ms, 1)} ms, p99 ${fixed(r.lag.p99Ms, 1)} ms, max ${fixed(r.lag.maxMs, 1)} ms`,
    ],
  );
}
