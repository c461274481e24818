/**
 * config.json of a GPT-2 reward model, read with Hugging Face's defaults, and refused when it
 * asks for a computation we do not implement: silently computing something else would produce
 * plausible but wrong scores.
 */
// Values are quoted with `quote`, not JSON.stringify: a config value nested 10,000 deep would
// overflow the stack while we describe it.
import { ConfigError, FormatError, quote } from "../errors.js";
import { MAX_JSON_BYTES } from "../formats/checkpoint.js";
import { platform } from "../platform/platform.js";

export interface GPT2Config {
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** MLP width; config `n_inner: null` means 4·n_embd. */
  n_inner: number;
  n_positions: number;
  vocab_size: number;
  layer_norm_epsilon: number;
  activation_function: "gelu_new";
  num_labels: number;
  /** Label names in index order ("LABEL_0"... when the config has none). */
  labels: string[];
  /** The id the pooling rules treat as padding; null when the config has none. */
  pad_token_id: number | null;
}

/** `gelu_pytorch_tanh` is the same tanh formula as `gelu_new`, computed by torch in one kernel. */
const TANH_GELUS = new Set(["gelu_new", "gelu_pytorch_tanh"]);

export function readConfig(file: string): GPT2Config {
  let text: string;
  try {
    text = platform().files.readText(file, MAX_JSON_BYTES);
  } catch (e) {
    if (e instanceof FormatError) throw e; // a FIFO, a device, too large: it says so
    throw new ConfigError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, `not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, file);
}

export function parseConfig(json: unknown, file = "config.json"): GPT2Config {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ConfigError(file, "not a JSON object");
  const c = json as Record<string, unknown>;
  const fail = (msg: string): never => {
    throw new ConfigError(file, msg);
  };
  const int = (key: string, fallback: number | undefined, min: number, max: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) return fail(`missing "${key}"`);
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      return fail(`"${key}" is ${quote(v)}, expected an integer from ${min} to ${max}`);
    }
    return v;
  };

  if (c.model_type !== undefined && c.model_type !== "gpt2") fail(`model_type is ${quote(c.model_type)}, only "gpt2" is supported`);
  const n_layer = int("n_layer", 12, 1, 1000);
  const n_embd = int("n_embd", 768, 1, 65536);
  const n_head = int("n_head", 12, 1, 4096);
  if (n_embd % n_head !== 0) fail(`n_embd ${n_embd} is not divisible by n_head ${n_head}`);
  const n_inner = c.n_inner === null || c.n_inner === undefined ? 4 * n_embd : int("n_inner", undefined, 1, 1 << 20);
  const n_positions = int("n_positions", (c.n_ctx as number | undefined) ?? 1024, 1, 1 << 20);
  const vocab_size = int("vocab_size", 50257, 1, 1 << 24);

  const eps = c.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) fail(`"layer_norm_epsilon" is ${quote(eps)}, expected a positive number`);

  const act = c.activation_function ?? "gelu_new";
  if (typeof act !== "string" || !TANH_GELUS.has(act)) {
    fail(`activation_function ${quote(act)} is not supported (GPT-2 uses "gelu_new", the tanh approximation)`);
  }
  const unsupported: [string, unknown, unknown][] = [
    ["scale_attn_weights", c.scale_attn_weights, true],
    ["scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx, false],
    ["reorder_and_upcast_attn", c.reorder_and_upcast_attn, false],
    ["add_cross_attention", c.add_cross_attention, false],
  ];
  for (const [key, value, ours] of unsupported) {
    if (value !== undefined && value !== ours) fail(`"${key}": ${quote(value)} is not supported (we compute ${key} = ${ours})`);
  }

  // HF: id2label wins; else num_labels; else PretrainedConfig's default of 2 labels.
  let labels: string[];
  if (c.id2label !== undefined) {
    if (typeof c.id2label !== "object" || c.id2label === null || Array.isArray(c.id2label)) fail(`"id2label" is not an object`);
    const entries = Object.entries(c.id2label as Record<string, unknown>);
    if (entries.length === 0) fail(`"id2label" is empty: a reward model has at least one label`);
    labels = new Array<string>(entries.length);
    for (const [k, v] of entries) {
      const i = Number(k);
      // labels[i] already set: two keys for one index ("0" and "00"), which would leave a hole.
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== "string" || labels[i] !== undefined) fail(`"id2label" must map 0..${entries.length - 1} to names, found ${quote(k)}: ${quote(v)}`);
      labels[i] = v as string;
    }
    if (c.num_labels !== undefined && c.num_labels !== labels.length) fail(`"num_labels" is ${quote(c.num_labels)} but "id2label" has ${labels.length} labels`);
  } else {
    const n = int("num_labels", 2, 1, 1 << 16);
    labels = Array.from({ length: n }, (_, i) => `LABEL_${i}`);
  }

  let pad_token_id: number | null = null;
  if (c.pad_token_id !== undefined && c.pad_token_id !== null) pad_token_id = int("pad_token_id", undefined, 0, vocab_size - 1);

  return {
    n_layer, n_head, n_embd, n_inner, n_positions, vocab_size,
    layer_norm_epsilon: eps as number,
    activation_function: "gelu_new",
    num_labels: labels.length, labels, pad_token_id,
  };
}
