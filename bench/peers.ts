/**
 * The issue's yardsticks, onnxruntime-node and onnxruntime-web scoring the same GPT-2 base
 * 8×128 batch. Measured here when the peer is resolvable and an ONNX export of the benchmark's
 * weights is given (--onnx FILE); otherwise the numbers quoted in the issue, labelled as such.
 */
import { fileURLToPath } from "node:url";
import { median, runChild } from "./e2e.js";
import type { PeerChildResult } from "./peer-child.js";

export const PEERS = ["onnxruntime-node", "onnxruntime-web"] as const;
export type PeerName = (typeof PEERS)[number];

/** ms per 8×128 batch of GPT-2 base, by thread count, as quoted in the issue. */
export const ISSUE_NUMBERS: Record<PeerName, Record<number, number>> = {
  "onnxruntime-web": { 1: 10400, 2: 5600 },
  "onnxruntime-node": { 1: 2000, 2: 1050 },
};

export interface PeerResult {
  peer: PeerName;
  threads: number;
  batch: number;
  len: number;
  medianMs: number;
  source: "measured" | "issue";
  maxRss: number | null;
}

const CHILD = fileURLToPath(new URL("./peer-child.js", import.meta.url));

async function resolvable(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

export async function benchPeers(onnxFile: string | undefined, threads: number[], quick: boolean, log: (msg: string) => void): Promise<{ results: PeerResult[]; notes: string[] }> {
  const results: PeerResult[] = [];
  const notes: string[] = [];
  for (const peer of PEERS) {
    const installed = await resolvable(peer);
    if (!installed || !onnxFile) {
      notes.push(`${peer}: ${installed ? "installed, but no --onnx <file> given" : "peer not installed"}; using the issue's reference numbers`);
      for (const t of [1, 2]) results.push({ peer, threads: t, batch: 8, len: 128, medianMs: ISSUE_NUMBERS[peer][t], source: "issue", maxRss: null });
      continue;
    }
    for (const t of threads) {
      log(`peers: ${peer}, ${t} thread(s), 8×128`);
      const r = runChild(CHILD, ["--peer", peer, "--onnx", onnxFile, "--threads", String(t), "--batch", "8", "--len", "128",
        "--reps", quick ? "2" : "5"]) as PeerChildResult;
      results.push({ peer, threads: t, batch: 8, len: 128, medianMs: median(r.batchMs), source: "measured", maxRss: r.maxRss });
    }
  }
  return { results, notes };
}
