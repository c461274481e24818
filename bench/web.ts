/**
 * The browser against Node, in one run (`npm run bench:web`): GPT-2 base shape with random
 * weights (bench/fixture.ts, 500 MB F32), a batch of 8 texts of 128 tokens, wasm kernels, 1 and 2
 * threads; the model loaded by Chromium (Debian's, headless) through the demo page's server with
 * COOP/COEP, first downloaded into Cache Storage, then loaded again from it (what a second visit
 * costs); and the size of the browser build, gzipped. Prints a markdown table.
 *   node dist/bench/web.js [--reps N]
 */
import "../src/platform/node.js";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { RewardModel } from "../src/index.js";
import { launchChromiumProfile } from "../web/chromium.js";
import { startWebServer, REPO_ROOT } from "../web/server.js";
import { ensureRandomGpt2Base } from "./fixture.js";

const repsAt = process.argv.indexOf("--reps");
const REPS = repsAt > 0 ? Number(process.argv[repsAt + 1]) : 5;
const BATCH = 8;
const LEN = 128;
const log = (m: string) => process.stderr.write(`bench:web: ${m}\n`);

/** 8 different texts, each longer than 128 tokens, so left truncation keeps exactly 128. */
const texts = Array.from({ length: BATCH }, (_, i) =>
  Array.from({ length: 200 }, (_, w) => `word${(i * 7919 + w * 104729) % 5000}`).join(" "),
);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function nodeRun(dir: string, threads: number): Promise<{ loadMs: number; ms: number; first: number }> {
  const t0 = performance.now();
  const model = await RewardModel.load(dir, { threads, kernels: "wasm" });
  const loadMs = performance.now() - t0;
  try {
    const check = await model.score(texts, { maxLength: LEN });
    if (check.some((r) => r.tokens !== LEN)) throw new Error("a bench text has fewer than 128 tokens");
    const times: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const t = performance.now();
      await model.score(texts, { maxLength: LEN, batchSize: BATCH });
      times.push(performance.now() - t);
    }
    return { loadMs, ms: median(times), first: check[0].logits[0] };
  } finally {
    await model.close();
  }
}

const fixture = ensureRandomGpt2Base(log);
const server = await startWebServer({ isolation: true, extraMounts: [["/bench-model/", fixture.dir]] });
// A profile on disk: an incognito context keeps Cache Storage in memory, too small for 500 MB.
const profile = mkdtempSync(join(tmpdir(), "gpt2-reward-bench-chromium-"));
const browser = await launchChromiumProfile(profile);
try {
  const page = await browser.newPage();
  page.on("console", (m) => m.type() === "error" && log(`page console: ${m.text()}`));
  await page.goto(server.url);
  const inPage = (threads: number) =>
    page.evaluate(`(async ({ threads, texts, reps, len, batch }) => {
      const { RewardModel } = await import("/dist/browser/gpt2-reward.js");
      const m = await RewardModel.load("/bench-model/", { threads, kernels: "wasm" });
      try {
        const check = await m.score(texts, { maxLength: len });
        const times = [];
        for (let r = 0; r < reps; r++) {
          const t = performance.now();
          await m.score(texts, { maxLength: len, batchSize: batch });
          times.push(performance.now() - t);
        }
        times.sort((a, b) => a - b);
        return { loadMs: m.loadMs, ms: times[Math.floor(times.length / 2)], first: check[0].logits[0], threads: m.threads };
      } finally {
        await m.close();
      }
    })(${JSON.stringify({ threads, texts, reps: REPS, len: LEN, batch: BATCH })})`) as Promise<{ loadMs: number; ms: number; first: number; threads: number }>;

  log(`first load in Chromium: ${(fixture.bytes / 1e6).toFixed(0)} MB into Cache Storage...`);
  const first = await inPage(1);
  const rows: string[] = [];
  const loads: number[] = [];
  for (const threads of [1, 2]) {
    log(`${threads} thread(s): Node...`);
    const node = await nodeRun(fixture.dir, threads);
    log(`${threads} thread(s): Chromium...`);
    const web = await inPage(threads);
    loads.push(web.loadMs);
    if (web.threads !== threads) throw new Error(`Chromium ran ${web.threads} threads, asked ${threads}`);
    if (web.first !== node.first) throw new Error(`logits differ: Chromium ${web.first}, Node ${node.first}`);
    rows.push(`| ${threads} | ${node.ms.toFixed(0)} ms | ${web.ms.toFixed(0)} ms | ${(web.ms / node.ms).toFixed(2)}× | ${node.loadMs.toFixed(0)} ms | ${web.loadMs.toFixed(0)} ms |`);
  }
  const dist = join(REPO_ROOT, "dist", "browser");
  const js = readdirSync(dist).filter((f) => f.endsWith(".js"));
  const gz = js.map((f) => [f, gzipSync(readFileSync(join(dist, f)), { level: 9 }).length] as const);
  const total = gz.reduce((n, [, b]) => n + b, 0);
  process.stdout.write(
    [
      `GPT-2 base shape (random F32 weights, ${(fixture.bytes / 1e6).toFixed(0)} MB), ${BATCH} texts × ${LEN} tokens, wasm kernels, median of ${REPS}; Chromium ${await page.evaluate("navigator.userAgent.match(/Chrome\\/([\\d.]+)/)?.[1]")} headless vs Node ${process.versions.node}; logits equal.`,
      "",
      "| threads | Node | Chromium | Chromium / Node | load, Node (file) | load, Chromium (Cache Storage) |",
      "| --- | --- | --- | --- | --- | --- |",
      ...rows,
      "",
      `First load in Chromium (download from 127.0.0.1 into Cache Storage, then load): ${first.loadMs.toFixed(0)} ms. Later loads from Cache Storage: ${loads.map((l) => `${l.toFixed(0)} ms`).join(", ")}.`,
      `Browser build, gzip -9: ${gz.map(([f, b]) => `${f} ${(b / 1024).toFixed(0)} kB`).join(", ")}; total ${(total / 1024).toFixed(0)} kB.`,
      "",
    ].join("\n"),
  );
} finally {
  await browser.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
}
