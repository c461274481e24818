/**
 * The job's batches are bounded by the tokens they hold, not by assuming every text is at
 * --max-length: a large --batch-size of short texts is accepted (GPT-2 base, --batch-size 1024),
 * a batch closes early when its texts are long, and a --batch-size no batch could ever hold
 * (even texts of one token) is refused before any line is read. Splitting never changes a logit.
 */
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkBatchFits, runScoreJob, type OutputRecord } from "../../src/cli/job.js";
import type { InputItem } from "../../src/cli/input.js";
import { RewardModel } from "../../src/model/async-model.js";
import type { GPT2Config } from "../../src/model/config.js";

const SMALL = join(import.meta.dirname, "..", "..", "fixtures", "models", "f16-8head");

/** GPT-2 base (124M): the sizes of ChaiML's reward model. */
const GPT2_BASE = { n_embd: 768, n_inner: 3072, n_layer: 12, vocab_size: 50257, n_positions: 1024, num_labels: 1 } as GPT2Config;

async function* lines(texts: string[]): AsyncIterable<InputItem> {
  for (const text of texts) yield { kind: "text", text };
}

describe("the batch bound counts the tokens a batch holds", () => {
  it("GPT-2 base takes --batch-size 1024 at --max-length 256 (short texts fill a batch; long ones close it early)", () => {
    const tokens = checkBatchFits(GPT2_BASE, 1024, 256);
    // Room for at least one batch of 1024 one-token texts, and for one text at the max length.
    expect(tokens).toBeGreaterThanOrEqual(1024);
    expect(tokens).toBeGreaterThanOrEqual(256);
    // Fewer than 1024 texts of 256 tokens: a batch of long texts must be split.
    expect(tokens).toBeLessThan(1024 * 256);
  });

  it("refuses a --batch-size that even one-token texts could not fill, naming the most it can take", () => {
    const most = checkBatchFits(GPT2_BASE, 1, 256);
    expect(() => checkBatchFits(GPT2_BASE, most, 256)).not.toThrow();
    expect(() => checkBatchFits(GPT2_BASE, most + 1, 256)).toThrow(
      new RegExp(`^--batch-size ${most + 1} does not fit: each text takes at least one token of [\\d.]+ KiB, and the 4 GiB WebAssembly memory leaves [\\d.]+ MiB beside the weights, room for ${most} tokens in a batch; use --batch-size ${most} or less$`),
    );
  });

  it("refuses a --max-length whose one text cannot fit beside the weights", () => {
    const huge = { ...GPT2_BASE, n_embd: 4096, n_inner: 16384, n_layer: 40 } as GPT2Config; // ~8 GiB of f32 weights
    expect(() => checkBatchFits(huge, 1, 256)).toThrow(/^--max-length 256 does not fit: a token takes [\d.]+ KiB, and the 4 GiB WebAssembly memory leaves 0\.0 MiB beside the weights, room for 0 tokens in a batch; use a smaller --max-length$/);
  });

  it("closes a batch at the token bound: every forward pass holds at most that many tokens, and the records are the same bytes", async () => {
    const model = await RewardModel.load(SMALL, { threads: 1, kernels: "ts" });
    afterAll(() => model.close());
    const texts = Array.from({ length: 40 }, (_, i) => (i % 5 === 0 ? `A longer text number ${i}, with more words in it than the others have.` : `short ${i}`));
    const run = async (opts: { batchSize: number; maxLength: number; maxBatchTokens?: number }) => {
      const passes: number[][] = [];
      const spy = new Proxy(model, {
        get: (m, key) =>
          key === "scoreTokenized"
            ? (items: { ids: number[] }[], o: object) => (passes.push(items.map((it) => it.ids.length)), m.scoreTokenized(items as never, o as never))
            : Reflect.get(m, key, m),
      });
      const out: OutputRecord[] = [];
      await runScoreJob(spy, lines(texts), (r) => void out.push(r), opts);
      return { out, passes };
    };
    const whole = await run({ batchSize: 64, maxLength: 32 });
    expect(whole.passes).toHaveLength(1); // one batch of all 40 texts: the bound is far away
    const bounded = await run({ batchSize: 64, maxLength: 32, maxBatchTokens: 40 });
    for (const pass of bounded.passes) expect(pass.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(40);
    expect(bounded.passes.flat().sort()).toEqual(whole.passes.flat().sort()); // every text scored once
    expect(bounded.passes.length).toBeGreaterThan(3);
    expect(JSON.stringify(bounded.out)).toBe(JSON.stringify(whole.out));
  });

  it("refuses a token bound below the max length (a text could never be scored)", async () => {
    const model = await RewardModel.load(SMALL, { threads: 1, kernels: "ts" });
    afterAll(() => model.close());
    await expect(runScoreJob(model, lines(["a"]), () => {}, { maxBatchTokens: 100, maxLength: 256 })).rejects.toThrow(
      "max batch tokens must be an integer of at least the max length 256, got 100",
    );
  });
});
