/**
 * The GPT-2 forward pass of GPT2ForSequenceClassification, top to bottom:
 *
 *   x = wte[ids] + wpe[positions]                                  (N, C)
 *   for each of n_layer blocks:
 *     x = x + attn.c_proj(attention(attn.c_attn(ln_1(x))))
 *     x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
 *   logits = score(ln_f(x at the scored token of each text))      (S, num_labels)
 *
 * The texts of a batch are packed end to end (N = total tokens, no padding; see
 * kernels/contract.ts), and ln_f and score run only at the S scored positions: a reward model
 * never needs hidden states anywhere else, let alone an LM head over the vocabulary.
 *
 * Reading path: every `runner.X(...)` below is one kernel call. With the reference kernels
 * (`--kernels ref`, `RewardModel.load(path, { kernels: "ref" })`) it is two hops to a plain loop:
 * runner.linear → serialRunner in src/run/runner.ts (adds the range "all columns") →
 * kernels/ref-kernels.ts → matmulReference in kernels/matmul.ts, a triple loop; likewise
 * layernormReference, attentionReference, geluReference, residualReference. The default
 * kernels compute the same with packed weights, tiles, threads and WebAssembly (see
 * docs/walkthrough.md, and `gpt2-reward trace` for each layer's numbers).
 *
 * Shapes: N tokens in the batch, S texts, C = n_embd, H = n_head; 4C stands for n_inner, which
 * is 4·n_embd unless config.json sets n_inner.
 */
import { LINEAR_SCRATCH_COLS } from "../../kernels/contract.js";
import { embedding } from "../../kernels/embedding.js";
import type { GPT2Config } from "./config.js";
import { Gpt2RewardError } from "../errors.js";
import type { Runner } from "../run/runner.js";
import type { GPT2Weights } from "./weights.js";

export interface GPT2Model {
  config: GPT2Config;
  weights: GPT2Weights;
}

export interface ForwardOptions {
  /**
   * Called with the residual stream after the embeddings (0) and after each block (1..n_layer),
   * then once more with ln_f applied to every token (n_layer + 1), as HF's output_hidden_states.
   * Only for debugging and the golden tests: it costs an ln_f over all tokens.
   */
  onHiddenState?: (index: number, x: Float32Array) => void;
}

/**
 * seqs: each text's token ids (1 ≤ length ≤ n_positions); scored: for each text, the position
 * (inside that text) whose hidden state the score head reads. Returns (S, num_labels) logits.
 */
export function forward(model: GPT2Model, runner: Runner, seqs: ArrayLike<number>[], scored: number[], opts: ForwardOptions = {}): Float32Array[] {
  const { config, weights } = model;
  const { kernels } = runner;
  const { n_embd: C, n_head, n_inner, n_layer, layer_norm_epsilon: eps, num_labels } = config;
  const S = seqs.length;

  const arenaMark = kernels.mark();
  try {
    // Buffers for this batch: allocated once, reused by every layer.
    const seqStarts = kernels.allocInt32(S + 1);
    let maxLen = 0;
    for (let s = 0; s < S; s++) {
      seqStarts[s + 1] = seqStarts[s] + seqs[s].length;
      maxLen = Math.max(maxLen, seqs[s].length);
    }
    const N = seqStarts[S];
    const ids = kernels.allocInt32(N);
    for (let s = 0; s < S; s++) ids.set(seqs[s], seqStarts[s]);
    let x: Float32Array, xn: Float32Array, qkv: Float32Array, att: Float32Array, proj: Float32Array, fc: Float32Array, scratch: Float32Array;
    let panels: Float32Array | undefined;
    try {
      x = kernels.alloc(N * C); // the residual stream
      xn = kernels.alloc(N * C); // layernorm output
      qkv = kernels.alloc(N * 3 * C); // attn.c_attn output: q | k | v
      att = kernels.alloc(N * C); // attention output, heads side by side
      proj = kernels.alloc(N * C); // c_proj outputs, before the residual add
      fc = kernels.alloc(N * n_inner); // mlp.c_fc output after GELU
      scratch = kernels.alloc(maxLen * runner.threads); // one attention score row per thread
      // 16-bit weights (--dtype): one widened weight panel per thread (kernels/half.ts).
      if (weights.h.some((b) => b.attn.c_attn.dtype !== "F32")) panels = kernels.alloc(runner.threads * LINEAR_SCRATCH_COLS * Math.max(C, n_inner));
    } catch (e) {
      // All buffers live in one wasm32 memory (4 GiB at most): a huge batch is a user's choice.
      if (e instanceof RangeError) throw new Gpt2RewardError(`a batch of ${S} texts (${N} tokens) does not fit in memory next to the weights: use a smaller batch size`);
      throw e;
    }

    embedding(x, ids, seqStarts, weights.wte, weights.wpe, C, weights.wteDType); // (N) ids -> (N, C)
    opts.onHiddenState?.(0, x);

    for (let l = 0; l < n_layer; l++) {
      const block = weights.h[l];
      runner.layernorm(xn, x, block.ln_1.weight, block.ln_1.bias, N, C, eps); //  (N, C) -> (N, C)
      runner.linear(qkv, xn, block.attn.c_attn, N, false, panels); //             (N, C) -> (N, 3C)
      runner.attention(att, qkv, seqStarts, n_head, C, scratch); //               (N, 3C) -> (N, C), H heads side by side
      runner.linear(proj, att, block.attn.c_proj, N, false, panels); //           (N, C) -> (N, C)
      runner.residual(x, x, proj, N * C); //                                      (N, C) + (N, C) -> (N, C)

      runner.layernorm(xn, x, block.ln_2.weight, block.ln_2.bias, N, C, eps); //  (N, C) -> (N, C)
      runner.linear(fc, xn, block.mlp.c_fc, N, true, panels); //                  (N, C) -> (N, 4C), GELU fused into c_fc
      runner.linear(proj, fc, block.mlp.c_proj, N, false, panels); //             (N, 4C) -> (N, C)
      runner.residual(x, x, proj, N * C); //                                      (N, C) + (N, C) -> (N, C)
      opts.onHiddenState?.(l + 1, x);
    }

    if (opts.onHiddenState) {
      runner.layernorm(xn, x, weights.ln_f.weight, weights.ln_f.bias, N, C, eps); // (N, C) -> (N, C)
      opts.onHiddenState(n_layer + 1, xn);
    }

    // ln_f and the score head at the scored token of each text only.
    const picked = kernels.alloc(S * C);
    for (let s = 0; s < S; s++) picked.set(x.subarray((seqStarts[s] + scored[s]) * C, (seqStarts[s] + scored[s] + 1) * C), s * C); // (N, C) -> (S, C)
    runner.layernorm(picked, picked, weights.ln_f.weight, weights.ln_f.bias, S, C, eps); // (S, C) -> (S, C)
    // score: (S, C) · (num_labels, C)ᵀ -> (S, num_labels); nn.Linear without bias, so no transpose here.
    const logits: Float32Array[] = [];
    for (let s = 0; s < S; s++) {
      const out = new Float32Array(num_labels);
      for (let k = 0; k < num_labels; k++) {
        let sum = 0;
        for (let c = 0; c < C; c++) sum += picked[s * C + c] * weights.score[k * C + c];
        out[k] = sum;
      }
      logits.push(out);
    }
    return logits;
  } finally {
    // Batch buffers are bump-allocated after the weights and given back when the batch is done.
    kernels.release(arenaMark);
  }
}
