/** What the numbers were measured on: they mean little without it. */
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { enableRelaxedSimd } from "../src/platform/node.js";

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  v8: string;
  platform: string;
  date: string;
  /** The wasm kernels' multiply-add: fused (relaxed SIMD) or a multiply then an add. */
  wasmFma?: boolean;
}

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? "unknown CPU";
  try {
    // /proc/cpuinfo names the model even where os.cpus() reports an empty string (some VMs).
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) cpu = m[1].trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpu,
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    date: new Date().toISOString(),
    wasmFma: enableRelaxedSimd(),
  };
}

export function machineLine(m: Machine): string {
  const fma = m.wasmFma === undefined ? "" : `, wasm multiply-add ${m.wasmFma ? "fused (relaxed SIMD)" : "unfused"}`;
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node} (V8 ${m.v8}), ${m.platform}${fma}, ${m.date}`;
}
