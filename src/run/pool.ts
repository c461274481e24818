/**
 * A pool of worker threads that share the model's memory, so a kernel call is split without
 * copying a byte: the main thread writes the call's arguments (byte offsets into the shared
 * memory, sizes, how many work items and how many per chunk) into a small shared control block,
 * bumps a generation counter and wakes the workers with Atomics.notify; then every thread, the
 * main one included, claims chunks with Atomics.add on a shared counter until none are left, and
 * the main thread waits until all have reported. (A postMessage per kernel call costs about
 * twice as much end to end.)
 *
 * Chunks rather than one fixed share per thread, because the two vCPUs of a VM run at different
 * and wandering speeds: with fixed halves, the faster thread waits at every barrier (measured:
 * 4–11% of a forward pass). Work items are output columns (linear), rows (layernorm),
 * (text, head) pairs (attention) or elements (residual); no output element is ever computed by
 * two threads or in a different order, so the logits are bit-identical for any thread count.
 */
import type { Kernels, PackedLinear } from "../../kernels/contract.js";
import type { WasmKernels } from "../../kernels/wasm/wasm-kernels.js";
import { PANEL } from "../../kernels/matmul.js";
import { workItems, type Runner } from "./runner.js";
import { WEIGHT_DTYPES } from "../../kernels/half.js";
import { Op, CTRL, CTRL_INTS, writeArgs, type Args, type WorkerInit } from "./pool-protocol.js";
import { platform, type Thread } from "../platform/platform.js";
import { ModelBrokenError } from "../errors.js";

/** All cores where threads can share memory (Node; a crossOriginIsolated page), else 1. */
export function defaultThreads(): number {
  return platform().threads.available();
}

/** Chunk size for n work items: about 8 chunks per thread, a multiple of `step`, at least `min`. */
function chunkOf(n: number, threads: number, step: number, min = step): number {
  return Math.max(min, Math.ceil(n / (threads * 8) / step) * step);
}

/**
 * A pool of `threads` threads (this one included). Its threads start in the background; the first
 * kernel call blocks until they are up, or `await pool.started()` waits without blocking: in a
 * browser a worker starts only once the thread that created it returns to its event loop, so
 * there the pool must be awaited before its first call.
 */
export function createPool(kernels: Kernels, backend: "ts" | "wasm", threads: number): Runner & { started(): Promise<void> } {
  const ctrlBuf = new SharedArrayBuffer(CTRL_INTS * 4);
  const ctrl = new Int32Array(ctrlBuf);
  const eps = new Float64Array(new SharedArrayBuffer(8));
  const workers: Thread[] = [];
  // Not re-derived in the workers: whether the engine has relaxed SIMD can change (a V8 flag).
  const wasmOptions = backend === "wasm" && "options" in kernels ? (kernels as WasmKernels).options : undefined;
  for (let t = 1; t < threads; t++) {
    const init: WorkerInit = { memory: kernels.memory, ctrl: ctrlBuf, eps: eps.buffer as SharedArrayBuffer, thread: t, backend, wasmOptions };
    const w = platform().threads.start("pool", init);
    w.unref(); // a pool must never keep the process alive on its own
    workers.push(w);
  }
  // A thread's end reaches us as an event only while this thread is not blocked; one that ends
  // while we wait for it in Atomics.wait (its whole kernel call) is told by CTRL.DEAD, which the
  // platform writes from another thread and which wakes our waits.
  let failure: Error | null = null;
  let closing = false;
  const ended = (t: number, how: string) => new ModelBrokenError(`pool thread ${t} of ${threads - 1} stopped (${how}); the model cannot compute any more: load it again`);
  workers.forEach((w, i) => {
    w.onError((e) => (failure ??= ended(i + 1, `it threw ${e.message}`)));
    w.onExit((code) => {
      if (!closing) failure ??= ended(i + 1, `it exited with code ${code}`);
    });
    w.signalEnd(ctrl, CTRL.DEAD, i + 1, [CTRL.READY, CTRL.DONE]);
  });
  // A thread that ends before it holds its lifeline (in its first milliseconds, before Node hands
  // it its workerData) is not signalled; the start deadline catches that one.
  const notStarted = (ready: number) => (failure = new ModelBrokenError(`only ${ready} of ${threads - 1} pool threads started within 60 s; the model cannot compute: load it again`));
  /** Throws if a thread has ended: the pool cannot finish a call without it. */
  const check = () => {
    if (closing) throw new ModelBrokenError("the pool is closed");
    if (failure) throw failure;
    const dead = Atomics.load(ctrl, CTRL.DEAD);
    if (dead !== 0) throw (failure = ended(dead, "it crashed, ran out of memory or was terminated"));
  };

  const off = (a: Float32Array | Int32Array) => a.byteOffset;

  /** Before the first call: every thread must be up (a blocked main thread would otherwise wait forever). */
  let started = false;
  const awaitStart = () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = Atomics.load(ctrl, CTRL.READY);
      if (ready >= threads - 1) break;
      check();
      if (Date.now() > deadline) throw notStarted(ready);
      Atomics.wait(ctrl, CTRL.READY, ready, 1000);
    }
    started = true;
  };

  /** Claims chunks of [0, n) until none are left, calling work(start, end) for each. */
  const claim = (n: number, chunk: number, work: (start: number, end: number) => void) => {
    for (;;) {
      const start = Atomics.add(ctrl, CTRL.NEXT, 1) * chunk;
      if (start >= n) return;
      work(start, Math.min(start + chunk, n));
    }
  };

  /** Publishes the call, claims chunks here too, waits for the other threads. */
  const run = <O extends Op>(op: O, args: Args<O>, n: number, chunk: number, self: (start: number, end: number) => void) => {
    check();
    if (!started) awaitStart();
    writeArgs(ctrl, op, args);
    ctrl[CTRL.OP] = op;
    ctrl[CTRL.ITEMS] = n;
    ctrl[CTRL.CHUNK] = chunk;
    Atomics.store(ctrl, CTRL.NEXT, 0);
    Atomics.store(ctrl, CTRL.DONE, 0);
    Atomics.add(ctrl, CTRL.GEN, 1);
    Atomics.notify(ctrl, CTRL.GEN);
    claim(n, chunk, self);
    for (;;) {
      const done = Atomics.load(ctrl, CTRL.DONE);
      if (done >= threads - 1) break;
      Atomics.wait(ctrl, CTRL.DONE, done, 1000);
      check();
    }
    if (Atomics.load(ctrl, CTRL.FAILED)) throw new Error("a pool thread failed (its error is printed above)");
  };

  /** Each thread's equal share of a per-thread scratch buffer: thread 0's is the first. */
  const share = (scratch: Float32Array) => Math.floor(scratch.length / threads);

  /** Polls READY from the event loop (Atomics.waitAsync is not in every engine we run on). */
  const startedAsync = async () => {
    const deadline = Date.now() + 60_000;
    while (!started) {
      check();
      const ready = Atomics.load(ctrl, CTRL.READY);
      if (ready >= threads - 1) started = true;
      else if (Date.now() > deadline) throw notStarted(ready);
      else await new Promise((r) => setTimeout(r, 5));
    }
  };

  return {
    kernels,
    threads,
    started: startedAsync,
    linear(out, inp, w: PackedLinear, rows, gelu, scratch) {
      // 16-bit weights: each thread widens panels into its own share of `scratch`.
      const stride = scratch ? share(scratch) : 0;
      const mine = scratch?.subarray(0, stride);
      const n = workItems.linear(w);
      run(Op.Linear, {
        out: off(out), inp: off(inp), packed: w.packed.byteOffset, packedLength: w.packed.length, bias: off(w.bias),
        inDim: w.inDim, outDim: w.outDim, dtype: WEIGHT_DTYPES.indexOf(w.dtype), rows, gelu: gelu ? 1 : 0,
        scratch: scratch ? off(scratch) : 0, scratchStride: stride,
      }, n, chunkOf(n, threads, PANEL), (c0, c1) => kernels.linear(out, inp, w, rows, gelu, mine, c0, c1));
    },
    layernorm(out, inp, weight, bias, rows, C, e) {
      eps[0] = e;
      const n = workItems.layernorm(rows);
      run(Op.LayerNorm, { out: off(out), inp: off(inp), weight: off(weight), bias: off(bias), rows, C }, n, chunkOf(n, threads, 1),
        (r0, r1) => kernels.layernorm(out, inp, weight, bias, rows, C, e, r0, r1));
    },
    attention(out, qkv, plan, nHead, C, scratch) {
      // One (block, head) item per chunk: items differ in cost (∝ keys × queries) and there are few of them.
      const stride = share(scratch);
      const mine = scratch.subarray(0, stride);
      run(Op.Attention, { out: off(out), outLength: out.length, qkv: off(qkv), qkvLength: qkv.length, blocks: off(plan.blocks), blocksLength: plan.blocks.length,
        keyRows: off(plan.keyRows), keyRowsLength: plan.keyRows.length, nHead, C, scratch: off(scratch), scratchStride: stride },
      workItems.attention(plan, nHead), 1, (i0, i1) => kernels.attention(out, qkv, plan, nHead, C, mine, i0, i1));
    },
    residual(out, a, b, n) {
      run(Op.Residual, { out: off(out), a: off(a), b: off(b), n }, workItems.residual(n), chunkOf(n, threads, 16, 4096),
        (i0, i1) => kernels.residual(out, a, b, n, i0, i1));
    },
    async close() {
      closing = true;
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
