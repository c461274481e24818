/**
 * The issue's yardsticks, onnxruntime-node and onnxruntime-web scoring the same GPT-2 base
 * 8×128 batch. Measured here when the peer is resolvable and an ONNX export of the benchmark's
 * weights is given (--onnx FILE); otherwise the numbers quoted in the issue, labelled as such.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runTimedChild, type QuietMedian, type TimedBatches } from "./e2e.js";
import { RANDOM_GPT2_BASE_DIR } from "./fixture.js";
import type { PeerChildResult } from "./peer-child.js";

export const PEERS = ["onnxruntime-node", "onnxruntime-web"] as const;
export type PeerName = (typeof PEERS)[number];

/** ms per 8×128 batch of GPT-2 base, by thread count, as quoted in the issue. */
export const ISSUE_NUMBERS: Record<PeerName, Record<number, number>> = {
  "onnxruntime-web": { 1: 10400, 2: 5600 },
  "onnxruntime-node": { 1: 2000, 2: 1050 },
};

/** batchMs and batchCpu are empty, maxRss and otherCores null, for the issue's numbers. */
export interface PeerResult extends TimedBatches, QuietMedian {
  peer: PeerName;
  threads: number;
  batch: number;
  len: number;
  source: "measured" | "issue";
  maxRss: number | null;
}

const CHILD = fileURLToPath(new URL("./peer-child.js", import.meta.url));

/**
 * Whether `name` resolves from here, without importing it: onnxruntime-node's native library
 * belongs in the child that times it, not in the parent that times everything else.
 */
function resolvable(name: string): boolean {
  try {
    import.meta.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Why a peer cannot be measured, or null if it can (then onnxFile is given). */
export function notMeasured(peer: PeerName, onnxFile: string | undefined): string | null {
  if (!resolvable(peer)) return "not installed (see bench/README.md, peers)";
  if (!onnxFile) return "installed, but no --onnx FILE given";
  if (!existsSync(onnxFile)) return `--onnx ${onnxFile}: no such file`;
  return null;
}

export async function benchPeers(onnxFile: string | undefined, which: readonly PeerName[], threads: number[], quick: boolean, log: (msg: string) => void): Promise<{ results: PeerResult[]; notes: string[] }> {
  const results: PeerResult[] = [];
  const notes: string[] = [];
  const base = { batch: 8, len: 128, batchMs: [], batchCpu: [], contended: 0, otherCores: null, maxRss: null };
  const reps = quick ? 2 : 5;
  for (const peer of which) {
    const why = notMeasured(peer, onnxFile);
    if (why !== null || onnxFile === undefined) {
      notes.push(`${peer}: ${why}; using the issue's reference numbers`);
      for (const t of [1, 2]) results.push({ ...base, peer, threads: t, medianMs: ISSUE_NUMBERS[peer][t], source: "issue" });
      continue;
    }
    for (const t of threads) {
      log(`peers: ${peer}, ${t} thread(s), 8×128, ${reps} rep(s) after a warm-up`);
      // Batches take seconds: a child whose every batch was contended is run again, as for wasm e2e.
      const r = await runTimedChild<PeerChildResult>(CHILD, ["--peer", peer, "--onnx", onnxFile, "--threads", String(t),
        "--batch", "8", "--len", "128", "--reps", String(reps)], quick ? 1 : 3, quick);
      results.push({ peer, threads: t, batch: r.batch, len: r.len, batchMs: r.batchMs, batchCpu: r.batchCpu, medianMs: r.medianMs,
        contended: r.contended, otherCores: r.otherCores, source: "measured", maxRss: r.maxRss });
    }
  }
  if (onnxFile === undefined && PEERS.some(resolvable)) {
    notes.push(`to measure them: python bench/export_onnx.py ${RANDOM_GPT2_BASE_DIR} FILE (the benchmark's random GPT-2 base,`
      + " written by the e2e, ops and load sections), then run the bench with --onnx FILE");
  }
  return { results, notes };
}
