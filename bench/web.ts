/**
 * The browser against Node, in one run (`npm run bench:web`): GPT-2 base shape with random
 * weights (bench/fixture.ts, 500 MB F32), a batch of 8 texts of 128 tokens, wasm kernels, 1 and 2
 * threads; the model loaded by Chromium (Debian's, headless) through the demo page's server with
 * COOP/COEP, first downloaded into Cache Storage, then loaded again from it (what a second visit
 * costs); and the size of the browser build, gzipped. Node's and Chromium's batches alternate, so the
 * ratio compares the same minutes of a shared machine. Prints a markdown table.
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

/** One timed batch, in ms, after checking that every text kept exactly LEN tokens. */
async function timedNode(model: RewardModel): Promise<number> {
  const t = performance.now();
  await model.score(texts, { maxLength: LEN, batchSize: BATCH });
  return performance.now() - t;
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
  // The page keeps one model at a time in `globalThis.bench`, so Node's and Chromium's batches can
  // alternate: on a shared machine the speed changes from minute to minute, and a ratio of two
  // medians taken minutes apart measures the minute as much as the engine.
  const pageLoad = (threads: number) =>
    page.evaluate(`(async ({ threads, texts, len }) => {
      const { RewardModel } = await import("/dist/browser/gpt2-reward.js");
      const m = await RewardModel.load("/bench-model/", { threads, kernels: "wasm" });
      const check = await m.score(texts, { maxLength: len });
      if (check.some((r) => r.tokens !== len)) throw new Error("a bench text has fewer than " + len + " tokens");
      globalThis.bench = m;
      return { loadMs: m.loadMs, first: check[0].logits[0], threads: m.threads };
    })(${JSON.stringify({ threads, texts, len: LEN })})`) as Promise<{ loadMs: number; first: number; threads: number }>;
  const pageTimed = () =>
    page.evaluate(`(async ({ texts, len, batch }) => {
      const t = performance.now();
      await globalThis.bench.score(texts, { maxLength: len, batchSize: batch });
      return performance.now() - t;
    })(${JSON.stringify({ texts, len: LEN, batch: BATCH })})`) as Promise<number>;
  const pageClose = () => page.evaluate("globalThis.bench.close()");

  log(`first load in Chromium: ${(fixture.bytes / 1e6).toFixed(0)} MB into Cache Storage...`);
  const first = await pageLoad(1);
  await pageClose();
  const rows: string[] = [];
  const loads: number[] = [];
  for (const threads of [1, 2]) {
    log(`${threads} thread(s): loading in Node and Chromium...`);
    const t0 = performance.now();
    const node = await RewardModel.load(fixture.dir, { threads, kernels: "wasm" });
    const nodeLoadMs = performance.now() - t0;
    try {
      const check = await node.score(texts, { maxLength: LEN });
      if (check.some((r) => r.tokens !== LEN)) throw new Error("a bench text has fewer than 128 tokens");
      const web = await pageLoad(threads);
      loads.push(web.loadMs);
      if (web.threads !== threads) throw new Error(`Chromium ran ${web.threads} threads, asked ${threads}`);
      if (web.first !== check[0].logits[0]) throw new Error(`logits differ: Chromium ${web.first}, Node ${check[0].logits[0]}`);
      const nodeMs: number[] = [];
      const webMs: number[] = [];
      const ratios: number[] = [];
      for (let r = 0; r < REPS; r++) {
        // Which engine goes first alternates too, so neither always gets the warmer or quieter half.
        let n: number, w: number;
        if (r % 2 === 0) {
          n = await timedNode(node);
          w = await pageTimed();
        } else {
          w = await pageTimed();
          n = await timedNode(node);
        }
        nodeMs.push(n);
        webMs.push(w);
        ratios.push(w / n);
        log(`  round ${r + 1}: Node ${n.toFixed(0)} ms, Chromium ${w.toFixed(0)} ms`);
      }
      await pageClose();
      rows.push(`| ${threads} | ${median(nodeMs).toFixed(0)} ms | ${median(webMs).toFixed(0)} ms | ${median(ratios).toFixed(2)}× | ${nodeLoadMs.toFixed(0)} ms | ${web.loadMs.toFixed(0)} ms |`);
    } finally {
      await node.close();
    }
  }
  const dist = join(REPO_ROOT, "dist", "browser");
  const js = readdirSync(dist).filter((f) => f.endsWith(".js"));
  const gz = js.map((f) => [f, gzipSync(readFileSync(join(dist, f)), { level: 9 }).length] as const);
  const total = gz.reduce((n, [, b]) => n + b, 0);
  process.stdout.write(
    [
      `GPT-2 base shape (random F32 weights, ${(fixture.bytes / 1e6).toFixed(0)} MB), ${BATCH} texts × ${LEN} tokens, wasm kernels, ${REPS} rounds, each one Node batch and one Chromium batch back to back (medians); Chromium ${await page.evaluate("navigator.userAgent.match(/Chrome\\/([\\d.]+)/)?.[1]")} headless vs Node ${process.versions.node}; logits equal.`,
      "",
      "| threads | Node | Chromium | Chromium / Node (median of rounds) | load, Node (file) | load, Chromium (Cache Storage) |",
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
