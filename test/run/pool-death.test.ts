/**
 * A pool thread that ends while the thread owning the pool is blocked in Atomics.wait (every
 * kernel call) cannot tell it through 'exit' or 'error', which wait for the owner's event loop.
 * The platform's watcher writes CTRL.DEAD instead (src/platform/node.ts), so the call fails with a
 * clear ModelBrokenError rather than hanging, and so does every later one.
 *
 * The owner blocks, so the scenario runs in a child process (the built dist/, as the pool's
 * threads do) with a timeout: a regression is a failure after at most 60 s, never a hung run.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/cli.js";

const dist = (p: string) => JSON.stringify(join(ROOT, "dist", p));

/**
 * Loads the demo model with 3 threads through a platform that keeps the pool's threads, scores
 * once, then stops pool thread 1 from outside as a crash would (terminate() starts the stop and
 * returns; this thread blocks in the very next kernel call before any event can reach it), and
 * scores twice more. Prints what each call did.
 */
const SCRIPT = `
import { nodePlatform } from ${dist("src/platform/node.js")};
import { setPlatform } from ${dist("src/platform/platform.js")};
import { SyncRewardModel } from ${dist("src/model/sync-model.js")};
const pool = [];
setPlatform({ ...nodePlatform, threads: { ...nodePlatform.threads, start(script, data) {
  const t = nodePlatform.threads.start(script, data);
  if (script === "pool") pool.push(t);
  return t;
} } });
const model = SyncRewardModel.load(${JSON.stringify(join(ROOT, "fixtures", "models", "demo"))}, { threads: 3, kernels: "wasm" });
const texts = Array.from({ length: 16 }, (_, i) => "User: tell me a story\\nBot: " + "once upon a time ".repeat(5 + 5 * i));
const outcome = () => { try { return { scored: model.score(texts).length }; } catch (e) { return { name: e.name, message: e.message }; } };
const calls = [outcome()];
void pool[0].terminate();
calls.push(outcome(), outcome());
process.stdout.write(JSON.stringify({ threads: pool.length + 1, calls }));
process.exit(0);
`;

describe("a pool thread that dies while the pool's owner waits for it", () => {
  it("fails that call and every later one with ModelBrokenError, instead of hanging", () => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", SCRIPT], { timeout: 60_000, encoding: "utf8" });
    expect(r.signal, `the scoring call hung: killed after 60 s\n${r.stderr}`).toBe(null);
    expect(r.status, r.stderr).toBe(0);
    const { threads, calls } = JSON.parse(r.stdout);
    expect(threads).toBe(3);
    const broken = {
      name: "ModelBrokenError",
      message: "pool thread 1 of 2 stopped (it crashed, ran out of memory or was terminated); the model cannot compute any more: load it again",
    };
    expect(calls).toEqual([{ scored: 16 }, broken, broken]);
  });
});
