/**
 * The work users really do (issue 15), timed end to end: the chat and best-of-N workloads of
 * bench/workload-texts.ts, ours (wasm and pure TS, 1 and 2 threads, bench/workload-child.ts)
 * and onnxruntime's (bench/peer-child.ts, with the model card's padding, batches in input order
 * and sorted by length) where installed, beside the SIMD128 multiply-add ceiling of this machine
 * (bench/ceiling.ts) measured in the same run.
 */
import { fileURLToPath } from "node:url";
import { measureCeiling, type Ceiling } from "./ceiling.js";
import { runTimedChild, type QuietMedian } from "./e2e.js";
import type { PeerChildResult } from "./peer-child.js";
import { notMeasured, type PeerName } from "./peers.js";
import type { KernelName } from "./e2e.js";
import type { WorkloadChildResult } from "./workload-child.js";
import { WORKLOADS, workloadTexts, type WorkloadName } from "./workload-texts.js";

const CHILD = fileURLToPath(new URL("./workload-child.js", import.meta.url));
const PEER_CHILD = fileURLToPath(new URL("./peer-child.js", import.meta.url));

/**
 * How many of a workload's texts a run scores: all of them with the wasm kernels and the peers;
 * the pure-TS kernels take minutes for a whole workload, so their first 16 (two batches). --quick:
 * 16 and 8. --texts N caps all of them at N.
 */
export function textsFor(kernels: "wasm" | "ts" | "peer", quick: boolean, all: number, cap = all): number {
  const n = kernels === "ts" ? (quick ? 8 : 16) : quick ? 16 : all;
  return Math.min(n, all, cap);
}

export interface WorkloadOptions {
  /** Our kernel sets to time. */
  kernels: KernelName[];
  /** The peers to time, where installed. */
  peers: readonly PeerName[];
  /** Score only the first `texts` of each workload. */
  texts?: number;
}

export interface WorkloadRun extends QuietMedian {
  workload: WorkloadName;
  /** "ours" or a peer's name. */
  who: string;
  kernels: string;
  threads: number;
  /** For peers: the batches in input order, or sorted by length (longest first). */
  order: "input" | "sorted" | null;
  texts: number;
  tokens: number;
  /** Rows computed: ours, shared prefixes once; a peer's padded batches. */
  rows: number;
  /** texts / median seconds */
  textsPerSec: number;
  /** Our matmuls' GFLOPS over the workload, and that as a fraction of threads × the ceiling. */
  matmulGflops: number | null;
  ceilingFraction: number | null;
  lastLogit: number | null;
  runs: number;
}

export interface WorkloadResults {
  ceiling: Ceiling[];
  runs: WorkloadRun[];
  notes: string[];
}

export async function benchWorkloads(modelDir: string, onnxFile: string | undefined, opts: WorkloadOptions, threads: number[], quick: boolean,
  log: (msg: string) => void): Promise<WorkloadResults> {
  const ceiling: Ceiling[] = [];
  const ceil = () => {
    ceiling.push(measureCeiling(quick ? 0.5 : 2));
    log(`workloads: SIMD128 ceiling ${ceiling[ceiling.length - 1].gflops.toFixed(1)} GFLOPS (${ceiling[ceiling.length - 1].instruction})`);
  };
  ceil();
  const runs: WorkloadRun[] = [];
  const notes: string[] = [];
  // Ours first, wasm then pure TS, each workload's 1- and 2-thread runs alternating in rounds as
  // in the e2e section; each run is logged as it ends, so a long section shows its numbers early.
  for (const kernels of opts.kernels) {
    for (const workload of WORKLOADS) {
      const rounds = kernels === "ts" || quick ? 1 : 2;
      const texts = textsFor(kernels, quick, workloadTexts(workload).length, opts.texts);
      const got = new Map<number, (WorkloadChildResult & QuietMedian)[]>(threads.map((t) => [t, []]));
      for (let round = 0; round < rounds; round++) {
        for (const t of threads) {
          log(`workloads: ${workload}, ours, ${kernels}, ${t} thread(s), ${texts} texts, round ${round + 1}/${rounds}`);
          const r = await runTimedChild<WorkloadChildResult>(CHILD, ["--model", modelDir, "--workload", workload, "--kernels", kernels,
            "--threads", String(t), "--texts", String(texts)], kernels === "wasm" && !quick ? 2 : 1, quick);
          log(`  ${(r.medianMs / 1000).toFixed(1)} s, ${((r.texts * 1000) / r.medianMs).toFixed(2)} texts/s, ${r.rows} rows for ${r.tokens} tokens, `
            + `matmuls ${(r.matmulFlops / r.matmulMs / 1e6).toFixed(1)} GFLOPS, others' CPU ${r.otherCores?.toFixed(2) ?? "—"}`);
          got.get(t)!.push(r);
        }
      }
      for (const t of threads) {
        const rs = got.get(t)!;
        if (rs.some((r) => r.lastLogit !== rs[0].lastLogit)) throw new Error(`workloads: ${workload} ${kernels} ${t} thread(s): logits differ between runs`);
        // The fastest run: a workload is one long measurement, and a busy neighbour only slows it.
        const best = rs.slice().sort((a, b) => a.medianMs - b.medianMs)[0];
        runs.push({ workload, who: "ours", kernels, threads: t, order: null, texts: best.texts, tokens: best.tokens, rows: best.rows,
          textsPerSec: (best.texts * 1000) / best.medianMs, medianMs: best.medianMs, contended: best.contended, otherCores: best.otherCores,
          matmulGflops: best.matmulFlops / best.matmulMs / 1e6, ceilingFraction: null, lastLogit: best.lastLogit, runs: rs.length });
      }
    }
  }
  // The peers, with the model card's padding, on the texts our wasm runs score.
  for (const workload of WORKLOADS) {
    const texts = textsFor("peer", quick, workloadTexts(workload).length, opts.texts);
    for (const peer of opts.peers) {
      const why = notMeasured(peer, onnxFile);
      if (why !== null || onnxFile === undefined) {
        if (workload === WORKLOADS[0]) notes.push(`${peer}: ${why}: not measured`);
        continue;
      }
      for (const order of ["input", "sorted"] as const) {
        for (const t of threads) {
          log(`workloads: ${workload}, ${peer}, ${t} thread(s), batches in ${order} order`);
          const r = await runTimedChild<PeerChildResult>(PEER_CHILD, ["--peer", peer, "--onnx", onnxFile, "--threads", String(t),
            "--workload", workload, "--order", order, "--texts", String(texts), "--reps", quick ? "1" : "2"], quick ? 1 : 2, quick);
          runs.push({ workload, who: peer, kernels: "onnx", threads: t, order, texts: r.batch, tokens: r.tokens ?? 0, rows: r.paddedTokens ?? 0,
            textsPerSec: (r.batch * 1000) / r.medianMs, medianMs: r.medianMs, contended: r.contended, otherCores: r.otherCores,
            matmulGflops: null, ceilingFraction: null, lastLogit: null, runs: r.batchMs.length });
        }
      }
    }
  }
  ceil(); // once more at the end: the fraction uses the best of the two, the machine at its quietest
  const best = Math.max(...ceiling.map((c) => c.gflops));
  for (const r of runs) if (r.matmulGflops !== null && r.kernels === "wasm") r.ceilingFraction = r.matmulGflops / (best * r.threads);
  return { ceiling, runs, notes };
}
