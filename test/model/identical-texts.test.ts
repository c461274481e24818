/**
 * A batch of identical texts shares all of its rows (src/model/batch-plan.ts), so the last
 * block's S scored queries outnumber the R rows: each text must still score as it does alone
 * (found by test/fuzz/jsonl.test.ts: NaN with the TS kernels, a RangeError with wasm).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SyncRewardModel } from "../../src/model/sync-model.js";
import { FIXTURES } from "../helpers/cli.js";

describe.each(["ref", "ts", "wasm"] as const)("%s kernels", (kernels) => {
  it("score identical texts in one batch as each alone, bit for bit", async () => {
    const model = SyncRewardModel.load(join(FIXTURES, "models", "f16-8head"), { threads: 1, kernels });
    try {
      for (const text of ["\u0000", "User: hi\nBot: hello!"]) {
        const alone = model.score([text])[0].logits;
        const batch = model.score([text, text, text], { batchSize: 3 });
        for (const r of batch) expect(r.logits).toEqual(alone);
      }
    } finally {
      await model.close();
    }
  });
});
