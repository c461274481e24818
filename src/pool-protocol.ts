/** The layout of the pool's shared control block (see src/pool.ts). */
export enum Op {
  Linear = 1,
  LayerNorm = 2,
  Attention = 3,
  Residual = 4,
}

export const CTRL = { GEN: 0, DONE: 1, FAILED: 2, READY: 3, OP: 4, ARGS: 5 } as const;
const MAX_ARGS = 16;
/** Thread t's range is [ctrl[RANGES + 2t], ctrl[RANGES + 2t + 1]). */
export const RANGES = CTRL.ARGS + MAX_ARGS;

export function ctrlInts(threads: number): number {
  return RANGES + 2 * threads;
}

export interface WorkerInit {
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  eps: SharedArrayBuffer;
  thread: number;
  backend: "ts" | "wasm";
}
