/**
 * The pool's shared control block (see src/run/pool.ts): a header of counters, then the
 * arguments of the kernel call being run. Each op's arguments have one named layout here, which
 * the main thread writes (pool.ts) and the workers read (pool-worker.ts): the kernel's arguments
 * (kernels/contract.ts) in the kernel's order, arrays as byte offsets into the shared memory,
 * with the lengths a worker needs to build its views. (eps, a float64, travels beside the
 * block, in its own shared Float64Array.)
 */
import type { KernelModuleOptions } from "../../kernels/wasm/module.js";

export enum Op {
  Linear = 1,
  LayerNorm = 2,
  Attention = 3,
  Residual = 4,
}

/**
 * The call's work items [0, ITEMS) are claimed CHUNK at a time by Atomics.add on NEXT. DEAD is the
 * number of a pool thread that ended (0 while all live), written by the platform's watcher.
 */
export const CTRL = { GEN: 0, DONE: 1, FAILED: 2, READY: 3, DEAD: 4, OP: 5, ITEMS: 6, CHUNK: 7, NEXT: 8, ARGS: 9 } as const;

/** Names → their slots after CTRL.ARGS, in the order given. */
function layout<K extends string>(...names: K[]): Readonly<Record<K, number>> {
  return Object.fromEntries(names.map((n, i) => [n, CTRL.ARGS + i])) as Record<K, number>;
}

/** One layout per op. `packed` is a PackedLinear's weights (F32 or 16-bit, by `dtype`), `w` spelled out in place. */
export const ARGS = {
  [Op.Linear]: layout("out", "inp", "packed", "packedLength", "bias", "inDim", "outDim", "dtype", "rows", "gelu", "scratch", "scratchStride"),
  [Op.LayerNorm]: layout("out", "inp", "weight", "bias", "rows", "C"),
  [Op.Attention]: layout("out", "outLength", "qkv", "qkvLength", "blocks", "blocksLength", "keyRows", "keyRowsLength", "nHead", "C", "scratch", "scratchStride"),
  [Op.Residual]: layout("out", "a", "b", "n"),
} as const;

export type Args<O extends Op> = { [K in keyof (typeof ARGS)[O]]: number };

/** Int32 slots of the control block: the header and the longest argument layout. */
export const CTRL_INTS = CTRL.ARGS + Math.max(...Object.values(ARGS).map((l) => Object.keys(l).length));

export function writeArgs<O extends Op>(ctrl: Int32Array, op: O, args: Args<O>): void {
  const slots = ARGS[op] as Record<string, number>;
  for (const name in slots) ctrl[slots[name]] = (args as Record<string, number>)[name];
}

export function readArgs<O extends Op>(ctrl: Int32Array, op: O): Args<O> {
  const slots = ARGS[op] as Record<string, number>;
  const args: Record<string, number> = {};
  for (const name in slots) args[name] = ctrl[slots[name]];
  return args as Args<O>;
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
