/**
 * The package as a bundler user gets it: the tarball `npm pack` makes, unpacked into a fresh
 * project's node_modules; a file there that imports "gpt2-reward" is bundled by esbuild for the
 * browser (the `browser` export condition), nothing of Node comes along; the bundle is served
 * with the package's dist/browser/ files beside it, as the README says, and scores the demo model
 * in Chromium with Node's logits on 2 threads. Left behind, the worker files give one readable
 * message instead of a hang. The same file bundled for Node finds the installed package's worker
 * scripts. And what `npm run build` put into the browser build: gpt-tokenizer's
 * r50k encoding only, well under the 2 MB (gzip) the issue allows.
 * These tests start Chromium and the server themselves and fail if they cannot.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build, type Metafile } from "esbuild";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RewardModel } from "../../src/index.js";
import { launchChromium } from "../../web/chromium.js";
import { REPO_ROOT, startWebServer, type WebServer } from "../../web/server.js";

const TEXTS = ["User: hi\nBot: hello!", "User: hi\nBot: go away", "User: how are you?\nBot: Great, and you?"];

/** The user's page: loads the demo model beside it, scores, and writes what it got (or the error) into #out. */
const MAIN = `import { RewardModel } from "gpt2-reward";
const out = document.getElementById("out");
try {
  const model = await RewardModel.load("./demo/", { threads: 2, kernels: "wasm" });
  const results = await model.score(${JSON.stringify(TEXTS)});
  out.textContent = JSON.stringify({ threads: model.threads, kernels: model.kernels, logits: results.map((r) => r.logits) });
  await model.close();
} catch (e) {
  out.textContent = JSON.stringify({ error: e.message });
}
document.body.dataset.done = "true";
`;

const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-bundler-"));
const project = join(tmp, "project");
const pkgDir = join(project, "node_modules", "gpt2-reward");
let browser: Browser;
const servers: WebServer[] = [];
const consoleErrors: string[] = [];

const npm = (args: string[], cwd: string) => {
  const r = spawnSync("npm", args, { cwd, encoding: "utf8", timeout: 300_000, env: { ...process.env, npm_config_update_notifier: "false" } });
  if (r.status !== 0) throw new Error(`npm ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
};

beforeAll(() => {
  const tarball = join(tmp, npm(["pack", "--ignore-scripts", "--pack-destination", tmp], REPO_ROOT).trim().split("\n").pop()!);
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
  npm(["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], project);
  writeFileSync(join(project, "main.js"), MAIN);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  for (const s of servers) await s.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A folder served as a site (COOP/COEP): the bundle, an index.html running it, the demo model, and `extra` files. */
async function site(name: string, bundle: string, extra: string[]): Promise<string> {
  const dir = join(tmp, name);
  mkdirSync(join(dir, "demo"), { recursive: true });
  writeFileSync(join(dir, "index.html"), `<!doctype html><html><head><link rel="icon" href="data:,"></head><body><pre id="out"></pre><script type="module" src="main.js"></script></body></html>`);
  copyFileSync(bundle, join(dir, "main.js"));
  const demo = join(pkgDir, "fixtures", "models", "demo");
  for (const f of readdirSync(demo)) copyFileSync(join(demo, f), join(dir, "demo", f));
  for (const f of extra) copyFileSync(f, join(dir, f.split("/").pop()!));
  const server = await startWebServer({ isolation: true, extraMounts: [["/", dir]] });
  servers.push(server);
  return server.url;
}

/** Opens `url` in Chromium and returns what the user's page wrote. */
async function visit(url: string): Promise<{ threads?: number; kernels?: string; logits?: number[][]; error?: string }> {
  browser ??= await launchChromium();
  const page = await browser.newPage();
  page.on("console", (m) => {
    // A worker file left out is meant to 404 in one test; that is the browser's own console line.
    if (m.type() === "error" && !/status of 404/.test(m.text())) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
  try {
    await page.goto(url);
    await page.waitForSelector("body[data-done=true]", { timeout: 60_000 });
    return JSON.parse((await page.textContent("#out")) ?? "");
  } finally {
    await page.close();
  }
}

describe("a bundler user", () => {
  let metafile: Metafile;
  const bundle = join(project, "out", "main.js");
  const browserFiles = () => readdirSync(join(pkgDir, "dist", "browser")).filter((f) => f.endsWith(".js")).map((f) => join(pkgDir, "dist", "browser", f));

  beforeAll(async () => {
    const result = await build({
      absWorkingDir: project, entryPoints: ["main.js"], outfile: bundle,
      bundle: true, platform: "browser", format: "esm", metafile: true, logLevel: "silent",
    });
    metafile = result.metafile;
  });

  it("bundles `import { RewardModel } from \"gpt2-reward\"` for the browser from the package's dist/browser/, nothing of Node", () => {
    const inputs = Object.keys(metafile.inputs);
    expect(inputs).toContain("node_modules/gpt2-reward/dist/browser/gpt2-reward.js");
    expect(inputs.filter((f) => f !== "main.js" && !/^node_modules\/gpt2-reward\/dist\/browser\/[\w.-]+\.js$/.test(f))).toEqual([]);
    expect(readFileSync(bundle, "utf8")).not.toMatch(/["'`]node:|require\(/);
  });

  it("finds every source map the package's browser files name (Vite's dev server complained of each missing one)", () => {
    const dir = join(pkgDir, "dist", "browser");
    const missing = readdirSync(dir)
      .filter((f) => f.endsWith(".js"))
      .flatMap((f) => [...readFileSync(join(dir, f), "utf8").matchAll(/\/\/# sourceMappingURL=(\S+)/g)].map((m) => [f, m[1]]))
      .filter(([, map]) => !existsSync(join(dir, map)));
    expect(missing).toEqual([]);
  });

  it("runs in Chromium with the package's worker files beside it: 2 threads, Node's logits to the bit", async () => {
    const url = await site("with-workers", bundle, browserFiles());
    const got = await visit(url);
    const node = await RewardModel.load(join(pkgDir, "fixtures", "models", "demo"), { threads: 1, kernels: "wasm" });
    const want = (await node.score(TEXTS)).map((r) => r.logits);
    await node.close();
    expect(got).toEqual({ threads: 2, kernels: "wasm", logits: want });
  });

  it("without the worker files, fails the load with one message that says what to serve", async () => {
    const noModelWorker = await visit(await site("no-workers", bundle, []));
    expect(noModelWorker.error).toMatch(/^the model's worker thread stopped while loading \(it threw the model worker's script \(model-worker\.js\) did not load: serve the \.js files of gpt2-reward's dist\/browser\/ together, beside the script that imports gpt2-reward\)$/);
    const noPoolWorker = await visit(await site("no-pool-worker", bundle, browserFiles().filter((f) => !f.endsWith("/pool-worker.js"))));
    expect(noPoolWorker.error).toMatch(/^pool thread 1 of 1 stopped \(it threw the pool worker's script \(pool-worker\.js\) did not load: serve the \.js files of gpt2-reward's dist\/browser\/ together, beside the script that imports gpt2-reward\); the model cannot compute any more: load it again$/);
  });

  it("logged no other console errors", () => {
    expect(consoleErrors).toEqual([]);
  });
});

describe("a Node app bundled with gpt2-reward inside (esbuild --platform=node)", () => {
  it("starts the installed package's worker scripts and scores on 2 threads with Node's logits", async () => {
    writeFileSync(join(project, "server.js"), `import { RewardModel } from "gpt2-reward";
const model = await RewardModel.load(process.argv[2], { threads: 2, kernels: "wasm" });
const results = await model.score(${JSON.stringify(TEXTS)});
console.log(JSON.stringify({ threads: model.threads, logits: results.map((r) => r.logits) }));
await model.close();
`);
    const app = join(project, "out-node", "server.mjs");
    await build({ absWorkingDir: project, entryPoints: ["server.js"], outfile: app, bundle: true, platform: "node", format: "esm", logLevel: "silent" });
    const demo = join(pkgDir, "fixtures", "models", "demo");
    const run = spawnSync(process.execPath, [app, demo], { cwd: project, encoding: "utf8", timeout: 120_000 });
    expect(run.stderr).toBe("");
    const node = await RewardModel.load(demo, { threads: 1, kernels: "wasm" });
    const want = (await node.score(TEXTS)).map((r) => r.logits);
    await node.close();
    expect(JSON.parse(run.stdout)).toEqual({ threads: 2, logits: want });
  });
});

describe("the browser build (npm run build)", () => {
  const dist = join(REPO_ROOT, "dist");

  it("bundles gpt-tokenizer's r50k encoding (GPT-2's) and no other", () => {
    const { inputs } = JSON.parse(readFileSync(join(dist, "browser-build.json"), "utf8")) as { inputs: string[] };
    const ranks = inputs.filter((f) => /gpt-tokenizer\/.*bpeRanks\//.test(f)).map((f) => f.replace(/.*bpeRanks\//, ""));
    expect(ranks).toEqual(["r50k_base.js"]);
    expect(inputs.filter((f) => /gpt-tokenizer\/.*encodings\//.test(f) && !/r50k/.test(f))).toEqual([]);
  });

  it("weighs under 2 MB gzipped, all files together", () => {
    const files = readdirSync(join(dist, "browser")).filter((f) => f.endsWith(".js"));
    const gzipped = files.reduce((n, f) => n + gzipSync(readFileSync(join(dist, "browser", f)), { level: 9 }).length, 0);
    expect(gzipped).toBeLessThanOrEqual(2 * 1024 * 1024);
  });
});
