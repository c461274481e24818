/**
 * Where one forward pass spends its time, op by op, in a process of its own:
 *   node dist/bench/ops-child.js --model DIR --kernels ts|wasm --threads N --batch S --len T [--forwards F]
 * Runs src/model/gpt2.ts's forward through a Runner that times each call it forwards to the model's
 * own runner (serial or pool), after one untimed warm-up batch, F times (default 3), and prints
 * the fastest of them as one JSON line (OpsChildResult): ms per op summed over the 12 layers,
 * and the whole forward. The fastest, because a virtual core's speed wanders from second to second.
 */
import "../src/platform/node.js";
import type { PackedLinear } from "../kernels/contract.js";
import { forward } from "../src/model/gpt2.js";
import { SyncRewardModel } from "../src/model/sync-model.js";
import type { Runner } from "../src/run/runner.js";
import { cpuMark, cpuUse, type CpuUse } from "./cpu.js";
import { randomIds, rng } from "./random.js";
import { childArg } from "./child-args.js";

export interface OpsChildResult {
  kernels: string;
  threads: number;
  batch: number;
  len: number;
  /** ms per op, summed over layers; "other" is the forward's time outside runner calls. */
  ops: Record<string, number>;
  /** Runner calls per op in one forward. */
  calls: Record<string, number>;
  forwardMs: number;
  cpu: CpuUse;
}

const arg = (name: string, fallback?: string): string => childArg("ops-child", name, fallback);

const kernels = arg("kernels") as "ts" | "wasm";
const threads = Number(arg("threads"));
const batch = Number(arg("batch"));
const len = Number(arg("len"));
const model = SyncRewardModel.load(arg("model"), { kernels, threads });
const inner = model.runner;

let ops: Record<string, number> = {};
let calls: Record<string, number> = {};
const time = (op: string, f: () => void) => {
  const t = performance.now();
  f();
  ops[op] = (ops[op] ?? 0) + performance.now() - t;
  calls[op] = (calls[op] ?? 0) + 1;
};
/** GPT-2's four linear layers, told apart by shape (C→3C, C→C, C→4C + GELU, 4C→C). */
const linearName = (w: PackedLinear, gelu: boolean) =>
  gelu ? "mlp.c_fc+gelu" : w.outDim === 3 * w.inDim ? "attn.c_attn" : w.inDim > w.outDim ? "mlp.c_proj" : "attn.c_proj";

const timed: Runner = {
  kernels: inner.kernels,
  threads: inner.threads,
  linear: (out, inp, w, rows, gelu, scratch) => time(linearName(w, gelu), () => inner.linear(out, inp, w, rows, gelu, scratch)),
  layernorm: (out, inp, weight, bias, rows, C, eps) => time("layernorm", () => inner.layernorm(out, inp, weight, bias, rows, C, eps)),
  attention: (out, qkv, plan, nHead, C, scratch) => time("attention", () => inner.attention(out, qkv, plan, nHead, C, scratch)),
  residual: (out, a, b, n) => time("residual", () => inner.residual(out, a, b, n)),
  close: () => inner.close(),
};

const next = rng(7);
const seqs = Array.from({ length: batch }, () => randomIds(next, len));
const scored = seqs.map((s) => s.length - 1);
forward(model, inner, seqs, scored); // warm-up: JIT / wasm tier-up, pool threads started
let best: Omit<OpsChildResult, "kernels" | "threads" | "batch" | "len"> | null = null;
for (let f = 0; f < Number(arg("forwards", "3")); f++) {
  ops = {};
  calls = {};
  const before = cpuMark();
  forward(model, timed, seqs, scored);
  const after = cpuMark();
  const forwardMs = after.wallMs - before.wallMs;
  ops.other = forwardMs - Object.values(ops).reduce((a, b) => a + b, 0);
  if (!best || forwardMs < best.forwardMs) best = { ops, calls, forwardMs, cpu: cpuUse(before, after) };
}
await model.close();
const result: OpsChildResult = { kernels, threads, batch, len, ...best! };
process.stdout.write(JSON.stringify(result) + "\n");
