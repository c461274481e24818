/**
 * A pool thread: waits for the generation counter to move, computes its range of the published
 * kernel call on views of the shared memory, reports, and waits again. See src/run/pool.ts.
 * Started through the platform (src/entries/*-pool-worker.ts install theirs, then import this).
 */
import { platform } from "../platform/platform.js";
import { Arena } from "../../kernels/arena.js";
import type { Kernels } from "../../kernels/contract.js";
import { createTsKernels } from "../../kernels/ts-kernels.js";
import { createWasmKernels } from "../../kernels/wasm/wasm-kernels.js";
import { WEIGHT_DTYPES } from "../../kernels/half.js";
import { CTRL, Op, readArgs, type WorkerInit } from "./pool-protocol.js";

const port = await platform().threads.parent();
const init = port.data as WorkerInit;
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
  const items = ctrl[CTRL.ITEMS];
  const chunk = ctrl[CTRL.CHUNK];
  try {
    for (;;) {
      const start = Atomics.add(ctrl, CTRL.NEXT, 1) * chunk;
      if (start >= items) break;
      runOp(start, Math.min(start + chunk, items));
    }
  } catch (e) {
    // The main thread is blocked waiting for us and cannot receive an 'error' event: flag it.
    port.report(`pool thread ${init.thread}: ${(e as Error)?.stack ?? e}`);
    Atomics.store(ctrl, CTRL.FAILED, 1);
  }
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
}

/** Computes items [start, end) of the published call: the kernel's arguments, read by name. */
function runOp(start: number, end: number): void {
  const op = ctrl[CTRL.OP] as Op;
  switch (op) {
    case Op.Linear: {
      const a = readArgs(ctrl, op);
      const dtype = WEIGHT_DTYPES[a.dtype];
      const packed = dtype === "F32" ? f32(a.packed, a.packedLength) : new Uint16Array(init.memory.buffer, a.packed, a.packedLength);
      const w = { inDim: a.inDim, outDim: a.outDim, dtype, packed, bias: f32(a.bias, a.outDim), nonFinite: 0 };
      const scratch = a.scratchStride > 0 ? f32(a.scratch + 4 * a.scratchStride * init.thread, a.scratchStride) : undefined;
      kernels.linear(f32(a.out, a.rows * a.outDim), f32(a.inp, a.rows * a.inDim), w, a.rows, a.gelu === 1, scratch, start, end);
      break;
    }
    case Op.LayerNorm: {
      const a = readArgs(ctrl, op);
      kernels.layernorm(f32(a.out, a.rows * a.C), f32(a.inp, a.rows * a.C), f32(a.weight, a.C), f32(a.bias, a.C), a.rows, a.C, eps[0], start, end);
      break;
    }
    case Op.Attention: {
      const a = readArgs(ctrl, op);
      const plan = { blocks: i32(a.blocks, a.blocksLength), keyRows: i32(a.keyRows, a.keyRowsLength) };
      const scratch = f32(a.scratch + 4 * a.scratchStride * init.thread, a.scratchStride);
      kernels.attention(f32(a.out, a.outLength), f32(a.qkv, a.qkvLength), plan, a.nHead, a.C, scratch, start, end);
      break;
    }
    case Op.Residual: {
      const a = readArgs(ctrl, op);
      kernels.residual(f32(a.out, a.n), f32(a.a, a.n), f32(a.b, a.n), a.n, start, end);
      break;
    }
  }
}
