/**
 * docs/walkthrough.md shows only numbers `gpt2-reward trace` prints: regenerating its marked
 * blocks from fresh traces (through the built CLI, as `npm run walkthrough` does) must give the
 * file as committed.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WALKTHROUGH, fillBlocks, renderBlocks } from "../../docs/walkthrough.js";

describe("docs/walkthrough.md", () => {
  const committed = readFileSync(WALKTHROUGH, "utf8");
  const blocks = renderBlocks();

  it("holds exactly the numbers a fresh trace gives (else: npm run walkthrough)", () => {
    expect(fillBlocks(committed, blocks)).toBe(committed);
  });

  it("has every generated block, and a number typed over in one is rewritten from the trace", () => {
    expect(Object.keys(blocks).sort()).toEqual(["block0", "command", "embeddings", "kernels", "layers", "mask", "pooling", "score", "tokens"]);
    const layers = committed.slice(committed.indexOf("<!-- trace:layers -->"), committed.indexOf("<!-- trace:pooling -->"));
    const cell = layers.match(/\| `h\.0` \| ([^|]+) \|/)![1];
    const edited = committed.replace(cell, "1.000 / 2.000 / 3.000");
    expect(edited).not.toBe(committed);
    expect(fillBlocks(edited, blocks)).toBe(committed);
  });

  it("names only files and functions that exist", () => {
    const files = [...committed.matchAll(/`((?:src|kernels|fixtures)\/[\w/.-]+\.(?:ts|json))`/g)].map((m) => m[1]);
    expect(files.length).toBeGreaterThan(5);
    for (const f of new Set(files)) expect(() => readFileSync(new URL(`../../${f}`, import.meta.url)), f).not.toThrow();
    const refKernels = readFileSync(new URL("../../kernels/ref-kernels.ts", import.meta.url), "utf8");
    for (const fn of ["matmulReference", "layernormReference", "attentionReference", "softmaxReference", "residualReference", "geluReference"]) {
      expect(refKernels, fn).toContain(`export function ${fn}(`);
    }
  });
});
