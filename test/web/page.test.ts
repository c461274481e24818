/**
 * The browser build in real Chromium (Debian's, through playwright-core), served by the demo
 * page's own server: every fixture model scores in the page with the same logits as Node to the
 * bit (same wasm kernels) and within 2e-5 of Hugging Face's goldens, on 1 and 2 threads under
 * COOP/COEP and on 1 thread without; the page's three ways to load a model (the bundled demo, a
 * Hub repo through a local fake endpoint then offline from Cache Storage, picked files: a .bin
 * through the file input, a corrupt file); and no console errors anywhere.
 * These tests start Chromium and the servers themselves and fail if they cannot.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RewardModel } from "../../src/index.js";
import { startWebServer, REPO_ROOT, type WebServer } from "../../web/server.js";
import { launchChromium } from "../../web/chromium.js";
import { filesFromFolder, startFakeHub, type FakeHub } from "../helpers/fake-hub.js";

const FIXTURES = join(REPO_ROOT, "fixtures");
const MODELS = readdirSync(join(FIXTURES, "models")).sort();
const texts: string[] = JSON.parse(readFileSync(join(FIXTURES, "golden", "texts.json"), "utf8"));
const BUNDLE = "/dist/browser/gpt2-reward.js";

interface Golden {
  /** A checkpoint of the same weights in another format has its golden there. */
  same_as?: string;
  max_length: number;
  singles: { text_index: number; logits: Record<string, number[]> }[];
}
function golden(model: string): Golden {
  const g = JSON.parse(readFileSync(join(FIXTURES, "golden", `${model}.json`), "utf8")) as Golden;
  return g.same_as ? golden(g.same_as) : g;
}

let browser: Browser;
let isolated: WebServer;
let plain: WebServer;
const consoleErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(REPO_ROOT, "dist", "browser", "gpt2-reward.js"))) throw new Error("dist/browser is missing: run `npm run build` first");
  browser = await launchChromium();
  isolated = await startWebServer({ isolation: true });
  plain = await startWebServer({ isolation: false });
});

afterAll(async () => {
  await browser?.close();
  await isolated?.close();
  await plain?.close();
});

/** A page of `server`, its console errors collected for the last test. */
async function open(context: BrowserContext, server: WebServer): Promise<Page> {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(`${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
  await page.goto(server.url);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

/**
 * Loads `/fixtures/models/<model>/` in the page and scores `batch` there. The page's code is a
 * string: vitest would rewrite an import() in a function body into its own loader.
 */
function scoreInPage(page: Page, model: string, threads: number | undefined, batch: string[], maxLength: number) {
  const args = JSON.stringify({ model, threads, batch, maxLength });
  return page.evaluate(`(async ({ model, threads, batch, maxLength }) => {
    const { RewardModel } = await import(${JSON.stringify(BUNDLE)});
    const warnings = [];
    const m = await RewardModel.load("/fixtures/models/" + model + "/", { threads, kernels: "wasm", onWarning: (w) => warnings.push(w) });
    try {
      const results = await m.score(batch, { maxLength });
      return { logits: results.map((r) => r.logits), threads: m.threads, kernels: m.kernels, warnings };
    } finally {
      await m.close();
    }
  })(${args})`) as Promise<{ logits: number[][]; threads: number; kernels: string; warnings: string[] }>;
}

async function scoreInNode(dir: string, batch: string[], maxLength = 256): Promise<number[][]> {
  const model = await RewardModel.load(dir, { threads: 1, kernels: "wasm" });
  try {
    return (await model.score(batch, { maxLength })).map((r) => r.logits);
  } finally {
    await model.close();
  }
}

describe("every fixture model in Chromium", () => {
  let context: BrowserContext;
  let page: Page;
  beforeAll(async () => {
    context = await browser.newContext();
    page = await open(context, isolated);
  });
  afterAll(() => context.close());

  it("the page is cross-origin isolated (COOP/COEP), so threads can share memory", async () => {
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  });

  for (const model of MODELS) {
    it(`${model}: the same logits as Node to the bit on 1 and 2 threads, HF's within 2e-5`, async () => {
      const g = golden(model);
      const batch = g.singles.map((s) => texts[s.text_index]);
      const node = await scoreInNode(join(FIXTURES, "models", model), batch, g.max_length);
      for (const threads of [1, 2]) {
        const web = await scoreInPage(page, model, threads, batch, g.max_length);
        expect([web.threads, web.kernels]).toEqual([threads, "wasm"]);
        expect(web.logits).toEqual(node);
        web.logits.forEach((logits, i) => {
          const want = g.singles[i].logits["last-non-pad"];
          logits.forEach((x, k) => expect(Math.abs(x - want[k])).toBeLessThanOrEqual(2e-5));
        });
      }
    });
  }

  it("computes in the model's worker: the page's event loop keeps turning while a batch is scored", async () => {
    // A batch that takes a while on one thread; meanwhile the page counts how often it gets to run a
    // task of its own (setTimeout 0). Were the forward pass on the page's thread, no task could run
    // between the batch's start and its end: the first turn would find the batch done.
    const got = (await page.evaluate(`(async (batch) => {
      const { RewardModel } = await import(${JSON.stringify(BUNDLE)});
      const m = await RewardModel.load("/fixtures/models/demo/", { threads: 1, kernels: "wasm" });
      try {
        let done = false;
        let turns = 0;
        const scored = m.score(batch, { maxLength: 256 }).finally(() => (done = true));
        while (!done && turns < 10) {
          await new Promise((r) => setTimeout(r, 0));
          turns++;
        }
        const results = await scored;
        return { turns, logits: results.map((r) => r.logits) };
      } finally {
        await m.close();
      }
    })(${JSON.stringify(Array.from({ length: 4 }, () => texts).flat())})`)) as { turns: number; logits: number[][] };
    expect(got.turns).toBe(10); // ten turns (~20 ms) while the batch (252 texts) takes far longer
    expect(got.logits).toEqual(await scoreInNode(join(FIXTURES, "models", "demo"), Array.from({ length: 4 }, () => texts).flat()));
  });

  it("is Node's RewardModel: tokenize, prepareIds, scoreIds, rank and its errors give Node's results", async () => {
    const context = "User: my laptop gets hot when I play games. Is that normal?\nBot:";
    const replies = [" Yes, keep the vents clear.", " idk lol", " Laptops are not meant for games."];
    const node = await RewardModel.load(join(FIXTURES, "models", "bf16-3label"), { threads: 1, kernels: "wasm" });
    const ids = node.tokenize(context + replies[0]).ids;
    const want = {
      tokenize: node.tokenize(context + replies[0], 8),
      prepared: node.prepareIds(ids, 5),
      scoreIds: (await node.scoreIds([ids, ids.slice(3)])).map((r) => r.logits),
      rank: await node.rank(context, replies),
      errors: await Promise.all([node.scoreIds([[50257]]), node.score([""])].map((p) => p.then(() => "resolved", (e: Error) => `${e.name}: ${e.message}`))),
    };
    await node.close();
    const got = await page.evaluate(`(async ({ context, replies, ids }) => {
      const { RewardModel } = await import(${JSON.stringify(BUNDLE)});
      const m = await RewardModel.fromPretrained("/fixtures/models/bf16-3label/", { threads: 1, kernels: "wasm" });
      try {
        return {
          tokenize: m.tokenize(context + replies[0], 8),
          prepared: m.prepareIds(ids, 5),
          scoreIds: (await m.scoreIds([ids, ids.slice(3)])).map((r) => r.logits),
          rank: await m.rank(context, replies),
          errors: await Promise.all([m.scoreIds([[50257]]), m.score([""])].map((p) => p.then(() => "resolved", (e) => e.name + ": " + e.message))),
        };
      } finally {
        await m.close();
      }
    })(${JSON.stringify({ context, replies, ids })})`);
    expect(got).toEqual(want);
    expect(want.errors).toEqual(["InputError: ids 0: id 50257 is outside the vocabulary (0 to 50256)", "InputError: text 0: empty text: it has no tokens to score"]);
  });
});

describe("a page without COOP/COEP", () => {
  it("is not cross-origin isolated, computes on one thread (saying so if more were asked) with the same logits", async () => {
    const context = await browser.newContext();
    try {
      const page = await open(context, plain);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
      const batch = texts.slice(0, 6);
      const node = await scoreInNode(join(FIXTURES, "models", "demo"), batch);
      const byDefault = await scoreInPage(page, "demo", undefined, batch, 256);
      expect([byDefault.threads, byDefault.warnings]).toEqual([1, []]);
      expect(byDefault.logits).toEqual(node);
      const asked = await scoreInPage(page, "demo", 2, batch, 256);
      expect(asked.threads).toBe(1);
      expect(asked.warnings).toEqual([expect.stringMatching(/threads: 2 needs a cross-origin isolated page.*using 1 thread/)]);
      expect(asked.logits).toEqual(node);
    } finally {
      await context.close();
    }
  });
});

describe("a page served over plain http from a host other than this one (not a secure context)", () => {
  it("scores on one thread with Node's logits, without Cache Storage, and says the files are not kept", async () => {
    // The name resolves to 127.0.0.1 inside this browser only: nothing leaves the machine.
    const remote = await launchChromium(["--host-resolver-rules=MAP gpt2-reward.test 127.0.0.1"]);
    try {
      const context = await remote.newContext();
      const page = await context.newPage();
      page.on("console", (m) => m.type() === "error" && consoleErrors.push(`${m.text()} (${m.location().url})`));
      page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
      await page.goto(plain.url.replace("127.0.0.1", "gpt2-reward.test"));
      await page.waitForSelector("body[data-ready=true]");
      expect(await page.evaluate(() => [isSecureContext, typeof caches])).toEqual([false, "undefined"]);
      const batch = texts.slice(0, 4);
      const web = await scoreInPage(page, "demo", undefined, batch, 256);
      expect(web.threads).toBe(1);
      expect(web.warnings).toEqual([expect.stringMatching(/^this page has no Cache Storage \(it is not a secure context.*downloaded again on every visit$/)]);
      expect(web.logits).toEqual(await scoreInNode(join(FIXTURES, "models", "demo"), batch));
    } finally {
      await remote.close();
    }
  });
});

describe("the demo page", () => {
  let context: BrowserContext;
  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  });
  afterAll(() => context.close());

  /**
   * What Node's RewardModel.rank gives for the page's conversation and replies: each reply's score
   * (the reward of a one-label model, P(last label) for several), by reply index.
   */
  async function rankInNode(dir: string, page: Page): Promise<number[]> {
    const { context, replies } = await page.evaluate(() => ({
      context: (document.getElementById("context") as HTMLTextAreaElement).value,
      replies: Array.from(document.querySelectorAll<HTMLTextAreaElement>(".reply"), (t) => t.value),
    }));
    const model = await RewardModel.load(dir, { threads: 1, kernels: "wasm" });
    try {
      return (await model.rank(context, replies)).scores;
    } finally {
      await model.close();
    }
  }

  /** Clicks Rank; returns the ranked list as shown: reply index and score, top to bottom. */
  async function rank(page: Page): Promise<{ index: number; score: number }[]> {
    await page.click("#rank");
    await page.waitForSelector("#rank:not([disabled])", { timeout: 60_000 });
    const error = await page.$eval("#error", (e) => ((e as HTMLElement).hidden ? "" : e.textContent));
    if (error) throw new Error(`the page shows an error: ${error}`);
    return page.$$eval("#results .result", (els) => els.map((e) => ({ index: Number(e.dataset.index), score: Number(e.dataset.score) })));
  }

  /** The ranked list is every reply once, best first, with Node's scores. */
  function expectRanked(shown: { index: number; score: number }[], node: number[]): void {
    expect(shown.map((r) => r.index).sort()).toEqual(node.map((_, i) => i));
    expect(shown.map((r) => r.score)).toEqual(shown.map((r) => node[r.index]));
    for (let i = 1; i < shown.length; i++) expect(shown[i - 1].score).toBeGreaterThanOrEqual(shown[i].score);
  }

  it("ranks the replies with the bundled demo model; the screenshot's list is the ranking", async () => {
    const page = await open(context, isolated);
    const shown = await rank(page);
    const node = await rankInNode(join(FIXTURES, "models", "demo"), page);
    expect(shown).toHaveLength(4);
    expectRanked(shown, node);
    const rows = await page.$$eval("#results .result", (els) =>
      els.map((e) => [e.querySelector(".rank")!.textContent, e.querySelector(".value")!.textContent]),
    );
    expect(rows).toEqual(shown.map((r, i) => [String(i + 1), r.score.toFixed(4)]));
    expect(await page.textContent("#meta")).toMatch(/4 replies · \d+ tokens · \d+ ms · wasm kernels · \d+ threads? · ranked by reward$/);
    expect(await page.textContent("#status")).toMatch(/^Loaded the demo model: 12 layers × 32, wasm kernels/);
    expect(await page.isVisible("#results-note")).toBe(true); // random weights: the order means nothing
    // The README's picture is rewritten only when asked (UPDATE_SCREENSHOT=1 npx vitest run test/web/page.test.ts),
    // so a test run leaves the work tree as it found it; otherwise it goes to a temp folder.
    const shotDir = process.env.UPDATE_SCREENSHOT ? join(REPO_ROOT, "docs") : mkdtempSync(join(tmpdir(), "gpt2-reward-shot-"));
    const png = await page.screenshot({ path: join(shotDir, "web-demo.png"), fullPage: true });
    if (!process.env.UPDATE_SCREENSHOT) rmSync(shotDir, { recursive: true, force: true });

    // The picture, read back: each ranked row lies inside it, below the one before; only the
    // first row's badge is filled with the accent colour; each bar's filled length, measured in
    // pixels along its middle, is the length the scores call for (the best one full), shrinking
    // down the list.
    const seen = await page.evaluate(async (b64) => {
      const image = await createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: "image/png" }));
      const g = new OffscreenCanvas(image.width, image.height).getContext("2d")!;
      g.drawImage(image, 0, 0);
      const pixels = g.getImageData(0, 0, image.width, image.height).data;
      // The accent (#4f46e5, the bars' #818cf8) is blue well above red; greys and white are not.
      const accent = (x: number, y: number) => {
        const at = 4 * (Math.round(y) * image.width + Math.round(x));
        return pixels[at + 2] - pixels[at] > 60;
      };
      const onPage = (e: Element) => {
        const r = e.getBoundingClientRect();
        return { left: r.left + scrollX, right: r.right + scrollX, top: r.top + scrollY, bottom: r.bottom + scrollY, height: r.height };
      };
      return {
        width: image.width,
        height: image.height,
        rows: Array.from(document.querySelectorAll("#results .result"), (row) => {
          const box = onPage(row);
          const bar = onPage(row.querySelector(".bar")!);
          const badge = onPage(row.querySelector(".rank")!);
          let filled = 0;
          for (let x = Math.ceil(bar.left) + 1; x < Math.floor(bar.right) - 1; x++) if (accent(x, bar.top + bar.height / 2)) filled++;
          return { box, barWidth: Math.floor(bar.right) - Math.ceil(bar.left) - 2, filled, badgeFilled: accent(badge.left + 4, badge.top + badge.height / 2) };
        }),
      };
    }, png.toString("base64"));
    expect(seen.rows).toHaveLength(4);
    const scores = shown.map((r) => r.score);
    const [lo, hi] = [Math.min(...scores), Math.max(...scores)];
    seen.rows.forEach((row, i) => {
      expect(row.box.right).toBeLessThanOrEqual(seen.width);
      expect(row.box.bottom).toBeLessThanOrEqual(seen.height);
      if (i > 0) expect(row.box.top).toBeGreaterThanOrEqual(seen.rows[i - 1].box.bottom);
      expect(row.badgeFilled).toBe(i === 0);
      const share = 0.08 + (0.92 * (scores[i] - lo)) / (hi - lo);
      expect(Math.abs(row.filled - share * row.barWidth)).toBeLessThanOrEqual(3);
    });
    expect(seen.rows[0].filled).toBeGreaterThanOrEqual(seen.rows[0].barWidth - 3);
    await page.close();
  });

  it("takes files dropped on the page as the model (sharded safetensors and their index)", async () => {
    const page = await open(context, isolated);
    const dir = join(FIXTURES, "models", "sharded-st");
    const files = readdirSync(dir).map((name) => ({ name, b64: readFileSync(join(dir, name)).toString("base64") }));
    const dropped = await page.evaluateHandle((files) => {
      const data = new DataTransfer();
      for (const f of files) data.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
      return data;
    }, files);
    await page.dispatchEvent("main", "drop", { dataTransfer: dropped });
    expect(await page.isChecked("#source-files")).toBe(true);
    expect(await page.textContent("#files-chosen")).toContain("model-00002-of-00002.safetensors");
    expectRanked(await rank(page), await rankInNode(dir, page));
    expect(await page.textContent("#status")).toMatch(/^Loaded config\.json \+ model-00001-of-00002\.safetensors \+ model-00002-of-00002\.safetensors \+ model\.safetensors\.index\.json: 1 layers/);
    await page.close();
  });

  it("loads a pytorch_model.bin picked with the file input", async () => {
    const page = await open(context, isolated);
    await page.click("label:has(#source-files)");
    const dir = join(FIXTURES, "models", "f16-8head-bin");
    await page.setInputFiles("#files", [join(dir, "config.json"), join(dir, "pytorch_model.bin")]);
    const shown = await rank(page);
    expectRanked(shown, await rankInNode(dir, page));
    expect(await page.textContent("#status")).toContain("config.json + pytorch_model.bin");
    expect(await page.isHidden("#results-note")).toBe(true);
    await page.close();
  });

  it("shows a readable message for a corrupt file, and no longer the model or the list of an earlier Rank", async () => {
    const page = await open(context, isolated);
    expect(await rank(page)).toHaveLength(4);
    await page.click("label:has(#source-files)");
    const dir = join(FIXTURES, "models", "demo");
    const weights = readFileSync(join(dir, "model.safetensors"));
    await page.setInputFiles("#files", [
      { name: "config.json", mimeType: "application/json", buffer: readFileSync(join(dir, "config.json")) },
      { name: "model.safetensors", mimeType: "application/octet-stream", buffer: weights.subarray(0, weights.length - 1000) },
    ]);
    await page.click("#rank");
    await page.waitForSelector("#error:not([hidden])", { timeout: 60_000 });
    expect(await page.textContent("#error")).toMatch(/^chosen files\/model\.safetensors: tensor transformer\.wte\.weight ends at data offset \d+, past the \d+ data bytes after the header \(truncated file\?\)$/);
    expect(await page.textContent("#status")).toBe("No model loaded.");
    expect(await page.isHidden("#results-card")).toBe(true);
    expect(await page.$eval("#error", (e) => e.getBoundingClientRect().bottom <= innerHeight)).toBe(true); // scrolled into view
    await page.close();
  });

  describe("a Hub repo through a local endpoint", () => {
    let hub: FakeHub;
    beforeAll(async () => {
      hub = await startFakeHub({ repos: { "tester/demo": { files: filesFromFolder(join(FIXTURES, "models", "demo")) } } });
    });
    afterAll(() => hub.close());

    it("downloads it with progress, then loads it again from Cache Storage with the network blocked", async () => {
      const page = await open(context, isolated);
      await page.click("label:has(#source-hub)");
      await page.fill("#hub-repo", "tester/demo");
      await page.click("#model-card summary");
      await page.fill("#hub-endpoint", hub.url);
      const node = await rankInNode(join(FIXTURES, "models", "demo"), page);
      expectRanked(await rank(page), node);
      // The safetensors header (two Range requests) before the body; the big file from the "CDN".
      const gets = hub.requests.filter((r) => r.method === "GET").map((r) => `${r.path.replace(/\?.*/, "").replace(/[0-9a-f]{64}/, "<sha256>")} ${r.range ?? "whole"}`);
      const header = `bytes=0-${readFileSync(join(FIXTURES, "models", "demo", "model.safetensors")).readBigUint64LE(0) + 7n}`;
      expect(gets.sort()).toEqual([
        `/lfs-cdn/<sha256> ${header}`,
        "/lfs-cdn/<sha256> bytes=0-7",
        "/lfs-cdn/<sha256> whole",
        "/tester/demo/resolve/main/config.json whole",
        `/tester/demo/resolve/main/model.safetensors ${header}`,
        "/tester/demo/resolve/main/model.safetensors bytes=0-7",
        "/tester/demo/resolve/main/model.safetensors whole",
      ]);
      const body = hub.requests.findIndex((r) => r.method === "GET" && r.path.startsWith("/lfs-cdn/") && r.range === undefined);
      expect(hub.requests.slice(body).some((r) => r.range !== undefined)).toBe(false);
      await page.close();

      // A second visit, offline: every request to the Hub is refused, and none is made.
      const before = hub.requests.length;
      await context.route(`${hub.url}/**`, (route) => route.abort());
      await context.route(`${hub.cdnUrl}/**`, (route) => route.abort());
      const again = await open(context, isolated);
      await again.click("label:has(#source-hub)");
      await again.fill("#hub-repo", "tester/demo");
      await again.click("#model-card summary");
      await again.fill("#hub-endpoint", hub.url);
      const progress: string[] = [];
      await again.exposeFunction("seen", (s: string) => progress.push(s));
      await again.evaluate(() => {
        const label = document.getElementById("progress-label")!;
        new MutationObserver(() => (window as unknown as { seen: (s: string) => void }).seen(label.textContent ?? "")).observe(label, { childList: true, characterData: true, subtree: true });
      });
      expectRanked(await rank(again), node);
      expect(hub.requests.length).toBe(before);
      expect(progress.some((p) => p.includes("model.safetensors") && p.includes("(from the cache)"))).toBe(true);
      await again.close();
      await context.unrouteAll();
    });
  });
});

describe("the console", () => {
  it("showed no errors on any page above", () => {
    expect(consoleErrors).toEqual([]);
  });
});
