/**
 * A pool thread: waits for the generation counter to move, computes its range of the published
 * kernel call on views of the shared memory, reports, and waits again. See src/run/pool.ts.
 */
import { workerData } from "node:worker_threads";
import { Arena } from "../../kernels/arena.js";
import type { Kernels } from "../../kernels/contract.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { createWasmKernels } from "../../kernels/wasm/wasm-kernels.js";
import { WEIGHT_DTYPES } from "../../kernels/half.js";
import { CTRL, Op, type WorkerInit } from "./pool-protocol.js";

const init = workerData as WorkerInit;
const ctrl = new Int32Array(init.ctrl);
const eps = new Float64Array(init.eps);
// This thread never allocates: the arena only gives the kernels the memory to address.
const arena = new Arena(init.memory);
const kernels: Kernels = init.backend === "wasm" ? createWasmKernels(arena, init.wasmOptions) : createTsKernels(arena);

// The memory may have grown since the last call (a longer batch): views are made per call.
const f32 = (offset: number, n: number) => new Float32Array(init.memory.buffer, offset, n);
const i32 = (offset: number, n: number) => new Int32Array(init.memory.buffer, offset, n);

// Generation 0 is the pool's starting value: a worker that starts late sees the first call's
// generation already bumped and runs it at once instead of missing it.
let gen = 0;
Atomics.add(ctrl, CTRL.READY, 1);
Atomics.notify(ctrl, CTRL.READY);
for (;;) {
  // Wait for a generation we have not run. Waking is not proof of one: the main thread may be
  // preempted between bumping GEN and notifying, so its notify can reach us after we already
  // ran that generation (having seen the new value without sleeping). Running it twice would
  // count us twice in DONE and let the main thread go on while another thread still works.
  let next: number;
  while ((next = Atomics.load(ctrl, CTRL.GEN)) === gen) Atomics.wait(ctrl, CTRL.GEN, gen);
  gen = next;
  const a = (i: number) => ctrl[CTRL.ARGS + i];
  const items = ctrl[CTRL.ITEMS];
  const chunk = ctrl[CTRL.CHUNK];
  try {
    for (;;) {
      const start = Atomics.add(ctrl, CTRL.NEXT, 1) * chunk;
      if (start >= items) break;
      runOp(start, Math.min(start + chunk, items), a);
    }
  } catch (e) {
    // The main thread is blocked waiting for us and cannot receive an 'error' event: flag it.
    process.stderr.write(`gpt2-reward: pool thread ${init.thread}: ${(e as Error)?.stack ?? e}\n`);
    Atomics.store(ctrl, CTRL.FAILED, 1);
  }
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
}

function runOp(start: number, end: number, a: (i: number) => number): void {
  switch (ctrl[CTRL.OP] as Op) {
    case Op.Linear: {
      const [rows, inDim, outDim, stride] = [a(5), a(6), a(7), a(11)];
      const dtype = WEIGHT_DTYPES[a(9)];
      const packed = dtype === "F32" ? f32(a(2), a(3)) : new Uint16Array(init.memory.buffer, a(2), a(3));
      const w = { inDim, outDim, dtype, packed, bias: f32(a(4), outDim), nonFinite: 0 };
      const scratch = stride > 0 ? f32(a(10) + 4 * stride * init.thread, stride) : undefined;
      kernels.linear(f32(a(0), rows * outDim), f32(a(1), rows * inDim), w, rows, a(8) === 1, start, end, scratch);
      break;
    }
    case Op.LayerNorm: {
      const [rows, C] = [a(4), a(5)];
      kernels.layernorm(f32(a(0), rows * C), f32(a(1), rows * C), f32(a(2), C), f32(a(3), C), C, eps[0], start, end);
      break;
    }
    case Op.Attention: {
      const [S, nHead, C, maxLen] = [a(3), a(4), a(5), a(7)];
      const seqStarts = i32(a(2), S + 1);
      const N = seqStarts[S];
      kernels.attention(f32(a(0), N * C), f32(a(1), N * 3 * C), seqStarts, nHead, C, f32(a(6) + 4 * maxLen * init.thread, maxLen), start, end);
      break;
    }
    case Op.Residual: {
      const n = a(3);
      kernels.residual(f32(a(0), n), f32(a(1), n), f32(a(2), n), start, end);
      break;
    }
  }
}
