/**
 * Fuzzing config.json: objects whose fields hold hostile values (wrong types, huge, negative,
 * fractional, nested 20,000 deep, `__proto__` keys), and raw edits of the fixture configs. Only
 * ConfigErrors may escape, and a config that is accepted describes a model we can compute.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig, readConfig, type GPT2Config } from "../../src/model/config.js";
import { ConfigError } from "../../src/errors.js";
import { applyMutations, fuzzParams, fuzzTimeout, mutationsArb, onlyOurErrors } from "../helpers/fuzz-common.js";
import { deepJson, tempDir } from "../helpers/fuzz-models.js";

const MODELS = join(import.meta.dirname, "..", "..", "fixtures", "models");
const tmp = tempDir("fuzz-config");
afterAll(() => tmp.cleanup());

/** What every accepted config must satisfy. */
function checkAccepted(c: GPT2Config): void {
  for (const k of ["n_layer", "n_head", "n_embd", "n_inner", "n_positions", "vocab_size", "num_labels"] as const) {
    expect(Number.isSafeInteger(c[k]) && c[k] >= 1, k).toBe(true);
  }
  expect(c.n_embd % c.n_head).toBe(0);
  expect(c.layer_norm_epsilon > 0 && Number.isFinite(c.layer_norm_epsilon)).toBe(true);
  expect(c.labels).toHaveLength(c.num_labels);
  for (let i = 0; i < c.labels.length; i++) expect(typeof c.labels[i], `label ${i}`).toBe("string");
  if (c.pad_token_id !== null) expect(Number.isInteger(c.pad_token_id) && c.pad_token_id >= 0 && c.pad_token_id < c.vocab_size).toBe(true);
}

// Raw JSON tokens, so the text can hold what JSON.stringify would not write (1e400, -0, duplicate keys).
const DEEP_MARK = "<deep>";
const junk = fc.constantFrom(
  "null", "true", '"12"', '""', "[]", "{}", "[12]", "-1", "0", "-0", "0.5", "1e400", "-1e400", "1e-400", "9007199254740993", "4294967296",
  "1e308", "65537", "1048577", "16777217", '{"__proto__":12}', DEEP_MARK,
);
const intish = fc.oneof(fc.integer({ min: -2, max: 70 }).map(String), fc.constantFrom("8", "12", "768", "1024", "50257", "3072"));
const value = fc.oneof({ weight: 3, arbitrary: intish }, { weight: 2, arbitrary: junk });
const KEYS = ["n_layer", "n_head", "n_embd", "n_inner", "n_positions", "n_ctx", "vocab_size", "num_labels", "pad_token_id", "layer_norm_epsilon"];
const label = fc.oneof(fc.constantFrom('"LABEL_0"', '""', "0", "null", DEEP_MARK), fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)));
const labelKey = fc.oneof(fc.constantFrom("0", "1", "2", "00", "0.0", "-0", "1e0", " 1", "01", "__proto__", "constructor", "4294967296", "NaN"), fc.nat({ max: 4 }).map(String));

const configCase = fc.record({
  fields: fc.array(fc.tuple(fc.constantFrom(...KEYS, "__proto__"), value), { maxLength: 8 }),
  id2label: fc.option(fc.oneof(
    fc.array(fc.tuple(labelKey, label), { maxLength: 4 }).map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`),
    junk,
  ), { freq: 2 }),
  strings: fc.array(fc.tuple(
    fc.constantFrom("model_type", "activation_function", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"),
    fc.oneof(fc.constantFrom('"gpt2"', '"gelu_new"', '"gelu_pytorch_tanh"', '"gelu"', "true", "false", '"a\\nb"'), junk),
  ), { maxLength: 3 }),
});

function configText(c: typeof configCase extends fc.Arbitrary<infer T> ? T : never): string {
  const members = [...c.fields, ...c.strings].map(([k, v]) => `${JSON.stringify(k)}:${v}`);
  if (c.id2label !== null) members.push(`"id2label":${c.id2label}`);
  return `{${members.join(",")}}`.replaceAll(DEEP_MARK, deepJson(20_000));
}

describe("config.json fuzzing", () => {
  it("parseConfig throws only ConfigErrors, and what it accepts is a model we can compute", () => {
    let accepted = 0;
    fc.assert(
      fc.property(configCase, (c) => {
        const json = JSON.parse(configText(c));
        let config: GPT2Config | undefined;
        onlyOurErrors(() => (config = parseConfig(json, "config.json")), ConfigError);
        if (config) {
          accepted++;
          checkAccepted(config);
        }
      }),
      fuzzParams(5),
    );
    expect(accepted).toBeGreaterThan(0);
  }, fuzzTimeout(5));

  const fixtures = readdirSync(MODELS).map((m) => join(MODELS, m, "config.json"));
  it.each(fixtures.map((f) => [f.split("/").slice(-2).join("/"), f]))("readConfig on raw edits of %s throws only ConfigErrors", (_, file) => {
    const base = Uint8Array.from(readFileSync(file));
    const out = join(tmp.dir, "config.json");
    fc.assert(
      fc.property(mutationsArb(0), (m) => {
        writeFileSync(out, applyMutations(base, m));
        let config: GPT2Config | undefined;
        onlyOurErrors(() => (config = readConfig(out)), ConfigError);
        if (config) checkAccepted(config);
      }),
      fuzzParams(0.5),
    );
  }, fuzzTimeout(0.5));

  it("a value nested 20,000 deep in any field is a ConfigError, not a stack overflow", () => {
    for (const key of [...KEYS, "model_type", "activation_function", "scale_attn_weights"]) {
      const json = JSON.parse(`{"${key}":${deepJson(20_000)}}`);
      expect(onlyOurErrors(() => parseConfig(json, "c.json"), ConfigError)?.message, key).toMatch(/^c\.json: .*an array of 1/);
    }
    const labels = JSON.parse(`{"id2label":{"0":${deepJson(20_000)}}, "num_labels":${deepJson(20_000)}}`);
    expect(onlyOurErrors(() => parseConfig(labels, "c.json"), ConfigError)?.message).toMatch(/^c\.json: "id2label" must map 0\.\.0 to names, found "0": an array of 1$/);
  });

  it("id2label naming one index twice (\"0\" and \"00\") is refused, not read as a label list with a hole", () => {
    const e = onlyOurErrors(() => parseConfig({ id2label: { "0": "good", "00": "bad" } }, "c.json"), ConfigError);
    expect(e?.message).toMatch(/^c\.json: "id2label" must map 0\.\.1 to names/);
  });
});
