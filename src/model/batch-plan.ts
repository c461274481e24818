/**
 * Which rows a batch computes, and which keys each row attends to: texts that begin with the same
 * token ids share those rows.
 *
 * A token's hidden state in every block depends only on the tokens at or before it (causal
 * attention) and on its position. So texts of a batch that begin with the same ids (at the same
 * positions: the ids after truncation) have the same hidden states over that prefix, to the bit,
 * and the prefix needs computing once; each text's later tokens attend to the shared keys and
 * values as they would to their own. Best-of-N (N replies to one conversation) is the case that
 * pays: the N texts share their whole context.
 *
 * The texts form a tree: a trie of their ids with each chain of single children merged into one
 * node, a run of consecutive tokens (a "segment"). A text is the path from the root to the node
 * where it ends. Rows are laid out node by node, depth first, children in order of the texts that
 * reach them; a batch that shares nothing is therefore its texts end to end, in input order.
 */
import type { AttentionPlan } from "../../kernels/contract.js";

export interface BatchPlan {
  /** R rows: the token id and position of each computed row. */
  ids: Int32Array;
  positions: Int32Array;
  /** Every row as a query: one block per segment, out row = row (blocks 0..n_layer−2). */
  rows: AttentionPlan;
  /** Text s's scored token as query s, out row s (the last block: only those are read). */
  scored: AttentionPlan;
  /** The row holding text s's scored token. */
  scoredRows: Int32Array;
  /** The most keys any query sees: the longest text. */
  maxKeys: number;
}

/**
 * seqs: each text's ids (length ≥ 1); scored: for each text, the position the score head reads.
 * A pure function of its arguments.
 */
export function planBatch(seqs: ArrayLike<number>[], scored: number[]): BatchPlan {
  const S = seqs.length;
  const ids: number[] = [];
  const positions: number[] = [];
  const rowBlocks: number[] = [];
  const rowKeys: number[] = [];
  const scoredRows = new Int32Array(S);
  const scoredBlocks = new Int32Array(S * 5);
  const scoredKeys: number[] = [];
  let maxKeys = 0;

  /** `group`: texts that share ids [0, depth), whose rows are `chain` (one per position). */
  const visit = (group: number[], depth: number, chain: number[]) => {
    // The segment: as far as every text of the group goes, with the same ids.
    let end = depth;
    const first = seqs[group[0]];
    while (group.every((s) => seqs[s].length > end && seqs[s][end] === first[end])) end++;
    const rowStart = ids.length;
    for (let p = depth; p < end; p++) {
      ids.push(first[p]);
      positions.push(p);
      chain.push(ids.length - 1);
    }
    if (end > depth) {
      // Query block of the segment: its first row sees depth + 1 keys, each next one more.
      rowBlocks.push(rowStart, end - depth, rowStart, rowKeys.length, depth + 1);
      rowKeys.push(...chain);
    }
    for (const s of group) {
      const p = scored[s];
      if (p >= depth && p < end) {
        scoredRows[s] = rowStart + p - depth;
        scoredBlocks.set([scoredRows[s], 1, s, scoredKeys.length, p + 1], s * 5);
        scoredKeys.push(...chain.slice(0, p + 1));
      }
      maxKeys = Math.max(maxKeys, seqs[s].length);
    }
    // Texts that go on split by their next id, in order of first appearance.
    const children = new Map<number, number[]>();
    for (const s of group) {
      if (seqs[s].length === end) continue;
      const next = seqs[s][end];
      const child = children.get(next);
      if (child) child.push(s);
      else children.set(next, [s]);
    }
    for (const child of children.values()) visit(child, end, chain.slice());
  };
  if (S > 0) visit(Array.from({ length: S }, (_, s) => s), 0, []);

  return {
    ids: Int32Array.from(ids),
    positions: Int32Array.from(positions),
    rows: { blocks: Int32Array.from(rowBlocks), keyRows: Int32Array.from(rowKeys) },
    scored: { blocks: scoredBlocks, keyRows: Int32Array.from(scoredKeys) },
    scoredRows,
    maxKeys,
  };
}

/**
 * An order of a window's texts (indices into seqs) in which texts that share a prefix are
 * neighbours, so that batches cut from it in order compute each shared prefix once, or once per
 * batch where a batch boundary falls among them: the texts sorted by their ids, as strings are
 * sorted (a text before the texts it is a prefix of). Ties keep input order.
 */
export function prefixOrder(seqs: ArrayLike<number>[]): number[] {
  const compare = (a: number, b: number): number => {
    const x = seqs[a], y = seqs[b];
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length || a - b;
  };
  return Array.from({ length: seqs.length }, (_, i) => i).sort(compare);
}
