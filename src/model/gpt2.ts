/**
 * The GPT-2 forward pass of GPT2ForSequenceClassification, top to bottom:
 *
 *   x = wte[ids] + wpe[positions]                                  (R, C)
 *   for each of n_layer blocks:
 *     x = x + attn.c_proj(attention(attn.c_attn(ln_1(x))))
 *     x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
 *   logits = score(ln_f(x at the scored token of each text))      (S, num_labels)
 *
 * The texts of a batch are packed end to end (no padding; see kernels/contract.ts), a prefix that
 * texts share computed once (src/model/batch-plan.ts): x holds R rows, the batch's distinct
 * tokens. The last block, ln_f and score run only at the S scored positions: a reward model
 * never needs hidden states anywhere else, let alone an LM head over the vocabulary.
 *
 * Reading path: every `runner.X(...)` below is one kernel call. With the reference kernels
 * (`--kernels ref`, `RewardModel.load(path, { kernels: "ref" })`) it is two hops to a plain loop:
 * runner.linear → serialRunner in src/run/runner.ts (adds the range "all columns") →
 * kernels/ref-kernels.ts, whose linear calls matmulReference, a triple loop in that file; likewise
 * layernormReference, attentionReference, geluReference, residualReference. The default
 * kernels compute the same with packed weights, tiles, threads and WebAssembly (see
 * docs/walkthrough.md, and `gpt2-reward trace` for each layer's numbers).
 *
 * Shapes: R rows (the batch's tokens, a shared prefix counted once), S texts, C = n_embd,
 * H = n_head; 4C stands for n_inner, which is 4·n_embd unless config.json sets n_inner.
 */
import { LINEAR_SCRATCH_COLS, type AttentionPlan } from "../../kernels/contract.js";
import { embedding } from "../../kernels/embedding.js";
import type { GPT2Config } from "./config.js";
import { Gpt2RewardError } from "../errors.js";
import type { Runner } from "../run/runner.js";
import type { GPT2Weights } from "./weights.js";
import { planBatch } from "./batch-plan.js";

export interface GPT2Model {
  config: GPT2Config;
  weights: GPT2Weights;
}

export interface ForwardOptions {
  /**
   * Called with the residual stream after the embeddings (0) and after each block (1..n_layer),
   * then once more with ln_f applied to every token (n_layer + 1), as HF's output_hidden_states:
   * (R, C), one row per distinct token (for a batch of one text: its tokens in order).
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

  // Texts that begin alike share rows (src/model/batch-plan.ts): R ≤ the batch's total tokens.
  const plan = planBatch(seqs, scored);
  const R = plan.ids.length;
  const arenaMark = kernels.mark();
  try {
    // Buffers for this batch: allocated once, reused by every layer.
    const int32 = (a: Int32Array) => {
      const k = kernels.allocInt32(Math.max(1, a.length));
      k.set(a);
      return k;
    };
    let x: Float32Array, xn: Float32Array, qkv: Float32Array, att: Float32Array, proj: Float32Array, fc: Float32Array, scratch: Float32Array;
    let panels: Float32Array | undefined;
    let ids: Int32Array, positions: Int32Array, everyRow: AttentionPlan, scoredOnly: AttentionPlan;
    try {
      ids = int32(plan.ids);
      positions = int32(plan.positions);
      everyRow = { blocks: int32(plan.rows.blocks), keyRows: int32(plan.rows.keyRows) };
      scoredOnly = { blocks: int32(plan.scored.blocks), keyRows: int32(plan.scored.keyRows) };
      // The last block's queries are the S scored tokens, which can outnumber the R rows (identical
      // texts share all their rows): the buffers it writes hold max(R, S) rows.
      const Q = Math.max(R, S);
      x = kernels.alloc(R * C); // the residual stream
      xn = kernels.alloc(Q * C); // layernorm output
      qkv = kernels.alloc(R * 3 * C); // attn.c_attn output: q | k | v
      att = kernels.alloc(Q * C); // attention output, heads side by side
      proj = kernels.alloc(Q * C); // c_proj outputs, before the residual add
      fc = kernels.alloc(Q * n_inner); // mlp.c_fc output after GELU
      scratch = kernels.alloc(plan.maxKeys * runner.threads); // one attention score row per thread
      // 16-bit weights (--dtype): one widened weight panel per thread (kernels/half.ts).
      if (weights.h.some((b) => b.attn.c_attn.dtype !== "F32")) panels = kernels.alloc(runner.threads * LINEAR_SCRATCH_COLS * Math.max(C, n_inner));
    } catch (e) {
      // All buffers live in one wasm32 memory (4 GiB at most): a huge batch is a user's choice.
      if (e instanceof RangeError) throw new Gpt2RewardError(`a batch of ${S} texts (${R} distinct tokens) does not fit in memory next to the weights: use a smaller batch size`);
      throw e;
    }

    /**
     * One transformer block. ln_1 and c_attn, so the keys and values, run on all R rows; `queries`
     * says which rows attend, and xq (Q, C) is the residual stream at those rows, which the rest
     * of the block updates: x itself (Q = R) when every row is a query.
     */
    const block = (l: number, queries: AttentionPlan, xq: Float32Array, Q: number) => {
      const b = weights.h[l];
      runner.layernorm(xn, x, b.ln_1.weight, b.ln_1.bias, R, C, eps); //  (R, C) -> (R, C)
      runner.linear(qkv, xn, b.attn.c_attn, R, false, panels); //         (R, C) -> (R, 3C)
      runner.attention(att, qkv, queries, n_head, C, scratch); //         (R, 3C) -> (Q, C), H heads side by side
      runner.linear(proj, att, b.attn.c_proj, Q, false, panels); //       (Q, C) -> (Q, C)
      runner.residual(xq, xq, proj, Q * C); //                            (Q, C) + (Q, C) -> (Q, C)

      runner.layernorm(xn, xq, b.ln_2.weight, b.ln_2.bias, Q, C, eps); // (Q, C) -> (Q, C)
      runner.linear(fc, xn, b.mlp.c_fc, Q, true, panels); //              (Q, C) -> (Q, 4C), GELU fused into c_fc
      runner.linear(proj, fc, b.mlp.c_proj, Q, false, panels); //         (Q, 4C) -> (Q, C)
      runner.residual(xq, xq, proj, Q * C); //                            (Q, C) + (Q, C) -> (Q, C)
    };

    embedding(x, ids, positions, weights.wte, weights.wpe, C, weights.wteDType); // (R) ids -> (R, C)
    opts.onHiddenState?.(0, x);

    // The last block's output is read at the scored tokens only: it needs keys and values at
    // every row, but queries, attention output, c_proj, MLP and residual only there (1/12 of
    // GPT-2 base's layers, ~7% of the work). The query columns of c_attn still run on every row,
    // fused with the keys and values: splitting them off would save < 1%.
    // (onHiddenState reports every row, so then every block runs on every row.)
    const everyRowBlocks = opts.onHiddenState ? n_layer : Math.max(0, n_layer - 1);
    for (let l = 0; l < everyRowBlocks; l++) {
      block(l, everyRow, x, R);
      opts.onHiddenState?.(l + 1, x);
    }

    if (opts.onHiddenState) {
      runner.layernorm(xn, x, weights.ln_f.weight, weights.ln_f.bias, R, C, eps); // (R, C) -> (R, C)
      opts.onHiddenState(n_layer + 1, xn);
    }

    // The residual stream at the scored token of each text, through the last block if not done yet.
    const picked = kernels.alloc(S * C);
    for (let s = 0; s < S; s++) picked.set(x.subarray(plan.scoredRows[s] * C, (plan.scoredRows[s] + 1) * C), s * C); // (R, C) -> (S, C)
    if (everyRowBlocks < n_layer) block(n_layer - 1, scoredOnly, picked, S); // (S, C) -> (S, C), keys and values from all R rows

    // ln_f and the score head at the scored tokens only.
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
