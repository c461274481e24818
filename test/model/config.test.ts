/** config.json: HF's defaults, and a clear refusal of every setting we do not compute. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/model/config.js";
import { ConfigError } from "../../src/errors.js";

const base = { model_type: "gpt2", n_layer: 2, n_embd: 32, n_head: 4, n_positions: 64, vocab_size: 50257, pad_token_id: 50256 };

describe("config.json", () => {
  it("applies HF's defaults: n_inner null is 4·n_embd, eps 1e-5, gelu_new, 2 labels", () => {
    const c = parseConfig({ ...base, n_inner: null });
    expect(c).toMatchObject({ n_inner: 128, layer_norm_epsilon: 1e-5, activation_function: "gelu_new", num_labels: 2, labels: ["LABEL_0", "LABEL_1"] });
  });

  it("reads labels from id2label and num_labels, and falls back to n_ctx for old configs", () => {
    expect(parseConfig({ ...base, id2label: { "1": "good", "0": "bad" } }).labels).toEqual(["bad", "good"]);
    expect(parseConfig({ ...base, num_labels: 1 }).labels).toEqual(["LABEL_0"]);
    const { n_positions: _, ...old } = base;
    expect(parseConfig({ ...old, n_ctx: 512 }).n_positions).toBe(512);
  });

  it("accepts gelu_pytorch_tanh, the same tanh formula", () => {
    expect(parseConfig({ ...base, activation_function: "gelu_pytorch_tanh" }).activation_function).toBe("gelu_new");
  });

  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["another activation", { activation_function: "gelu" }, /activation_function "gelu" is not supported/],
    ["relu", { activation_function: "relu" }, /activation_function "relu"/],
    ["attention scaled by layer index", { scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx/],
    ["reordered, upcast attention", { reorder_and_upcast_attn: true }, /reorder_and_upcast_attn/],
    ["unscaled attention", { scale_attn_weights: false }, /scale_attn_weights/],
    ["cross-attention", { add_cross_attention: true }, /add_cross_attention/],
    ["another model type", { model_type: "llama" }, /model_type is "llama", only "gpt2"/],
    ["n_head not dividing n_embd", { n_head: 5 }, /n_embd 32 is not divisible by n_head 5/],
    ["a non-integer layer count", { n_layer: 2.5 }, /"n_layer" is 2.5/],
    ["a negative width", { n_embd: -32 }, /"n_embd" is -32/],
    ["a zero eps", { layer_norm_epsilon: 0 }, /layer_norm_epsilon/],
    ["a pad id outside the vocabulary", { pad_token_id: 60000 }, /"pad_token_id" is 60000/],
    ["id2label with holes", { id2label: { "0": "a", "2": "c" } }, /id2label/],
    ["num_labels disagreeing with id2label", { num_labels: 3, id2label: { "0": "a" } }, /"num_labels" is 3/],
  ];
  it.each(refused)("refuses %s with a ConfigError naming the file", (_, change, message) => {
    const f = () => parseConfig({ ...base, ...change }, "/m/config.json");
    expect(f).toThrow(ConfigError);
    expect(f).toThrow(message);
    expect(f).toThrow(/^\/m\/config\.json: /);
  });

  it("refuses JSON that is not an object", () => {
    expect(() => parseConfig([1, 2])).toThrow(/not a JSON object/);
    expect(() => parseConfig(null)).toThrow(ConfigError);
  });
});
