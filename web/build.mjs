// The browser build (run by `npm run build` after tsc): one ESM file for a page or a bundler,
// plus the two worker scripts it starts, in dist/browser/, with the chunks they share (code
// splitting: the page's RewardModel and its worker are the same class and protocol as Node's, and
// both tokenize, so that code is downloaded once). The folder is written anew each time. esbuild bundles our TypeScript and
// gpt-tokenizer's r50k encoding only (the one GPT-2 uses); nothing of Node goes in.
import { build } from "esbuild";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * src/hub/hub.ts is Node's Hub client (a file cache on disk), reachable only through
 * fromPretrained, which the browser never calls: its Hub is src/hub/browser-models.ts.
 */
const nodeHubOut = {
  name: "node-hub-out",
  setup(b) {
    b.onResolve({ filter: /\/hub\/hub\.js$/ }, (args) => ({ path: args.path, namespace: "node-hub-out" }));
    b.onLoad({ filter: /.*/, namespace: "node-hub-out" }, () => ({
      contents: `export const isHubRepoId = () => false;
export async function resolveHubModel() { throw new Error("in a browser, pass the repo id to RewardModel.load"); }`,
      loader: "js",
    }));
  },
};

/** @huggingface/hub's own browser build (its package.json "browser" field, which its "exports" hide from esbuild). */
const hubBrowserBuild = {
  name: "hf-hub-browser",
  setup(b) {
    b.onResolve({ filter: /^@huggingface\/hub$/ }, () => ({ path: join(root, "node_modules/@huggingface/hub/dist/browser/index.mjs") }));
  },
};

// Chunks are named by content hash: a stale one must not linger beside the new ones.
rmSync(join(root, "dist/browser"), { recursive: true, force: true });

const { metafile } = await build({
  absWorkingDir: root,
  entryPoints: {
    "gpt2-reward": "src/index.browser.ts",
    "model-worker": "src/entries/browser-model-worker.ts",
    "pool-worker": "src/entries/browser-pool-worker.ts",
  },
  outdir: "dist/browser",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  // No source maps: the package leaves *.map out (as tsc's output has none), and a file naming a
  // map that is not there makes every bundler and dev server complain about each file.
  sourcemap: false,
  legalComments: "none",
  plugins: [nodeHubOut, hubBrowserBuild],
  logLevel: "warning",
  metafile: true,
});

// What went into the build, beside it (not in the package): test/web/bundler.test.ts reads it to
// check that gpt-tokenizer's r50k encoding is the only one bundled.
writeFileSync(join(root, "dist/browser-build.json"), JSON.stringify({ inputs: Object.keys(metafile.inputs).sort() }, null, 1));
