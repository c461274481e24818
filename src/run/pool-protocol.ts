/** The layout of the pool's shared control block (see src/run/pool.ts). */
import type { KernelModuleOptions } from "../../kernels/wasm/module.js";

export enum Op {
  Linear = 1,
  LayerNorm = 2,
  Attention = 3,
  Residual = 4,
}

export const CTRL = { GEN: 0, DONE: 1, FAILED: 2, READY: 3, OP: 4, ITEMS: 5, CHUNK: 6, NEXT: 7, ARGS: 8 } as const;
const MAX_ARGS = 16;

/** The call's work items [0, ITEMS) are claimed CHUNK at a time by Atomics.add on NEXT. */
export function ctrlInts(_threads: number): number {
  return CTRL.ARGS + MAX_ARGS;
}

export interface WorkerInit {
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  eps: SharedArrayBuffer;
  thread: number;
  backend: "ts" | "wasm";
  /** The main thread's wasm kernel options (tile, fused multiply-add): the workers build the same. */
  wasmOptions?: KernelModuleOptions;
}
