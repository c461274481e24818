/**
 * A pool of worker threads that share the model's memory, so a kernel call is split without
 * copying a byte: the main thread writes the call's arguments (byte offsets into the shared
 * memory, sizes, and one range of work items per thread) into a small shared control block,
 * bumps a generation counter and wakes the workers with Atomics.notify; everyone computes its
 * range, and the main thread, which takes range 0 itself, waits until all have reported.
 * (A postMessage per kernel call costs about twice as much end to end.)
 *
 * Ranges split output columns (linear), rows (layernorm), (text, head) items (attention) or
 * elements (residual); no output element is ever computed by two threads or in a different
 * order, so the logits are bit-identical for any thread count.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Kernels, PackedLinear } from "../kernels/backend.js";
import { PANEL } from "../kernels/matmul.js";
import type { Runner } from "./runner.js";
import { Op, CTRL, RANGES, ctrlInts, type WorkerInit } from "./pool-protocol.js";

/**
 * The compiled worker beside this module; when this module runs from TypeScript source (vitest),
 * the build in dist/ (npm test compiles first: a worker thread cannot load .ts on Node 20).
 */
function workerScript(): URL {
  const beside = new URL("./pool-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL("../dist/src/pool-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error("worker script not found: run `npm run build` first");
}

export function defaultThreads(): number {
  return availableParallelism();
}

/** Splits [0, n) into `parts` ranges whose ends are multiples of `step` (except the last). */
function evenCuts(n: number, parts: number, step: number): number[] {
  const cuts = [0];
  for (let t = 1; t < parts; t++) cuts.push(Math.min(n, Math.round((n * t) / parts / step) * step));
  cuts.push(n);
  return cuts;
}

export function createPool(kernels: Kernels, backend: "ts" | "wasm", threads: number): Runner {
  const ctrlBuf = new SharedArrayBuffer(ctrlInts(threads) * 4);
  const ctrl = new Int32Array(ctrlBuf);
  const eps = new Float64Array(new SharedArrayBuffer(8));
  const workers: Worker[] = [];
  const workerFile = workerScript();
  for (let t = 1; t < threads; t++) {
    const init: WorkerInit = { memory: kernels.memory, ctrl: ctrlBuf, eps: eps.buffer as SharedArrayBuffer, thread: t, backend };
    // No node options for workers: `node -e <script>` would make each worker run the script again.
    // V8 flags (e.g. --experimental-wasm-relaxed-simd) are process-wide and reach workers anyway,
    // so every thread compiles the same wasm.
    const w = new Worker(workerFile, { workerData: init, execArgv: [] });
    w.unref(); // a pool must never keep the process alive on its own
    workers.push(w);
  }
  let failure: Error | null = null;
  for (const w of workers) w.on("error", (e) => (failure = e));

  const off = (a: Float32Array | Int32Array) => a.byteOffset;

  /** Before the first call: every thread must be up (a blocked main thread would otherwise wait forever). */
  let started = false;
  const awaitStart = () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = Atomics.load(ctrl, CTRL.READY);
      if (ready >= threads - 1) break;
      if (Date.now() > deadline) throw new Error(`only ${ready} of ${threads - 1} pool threads started within 60 s`);
      Atomics.wait(ctrl, CTRL.READY, ready, 1000);
    }
    started = true;
  };

  /** Publishes the call, runs range 0 here, waits for the others. */
  const run = (op: Op, args: number[], cuts: number[], self: () => void) => {
    if (failure) throw failure;
    if (!started) awaitStart();
    for (let i = 0; i < args.length; i++) ctrl[CTRL.ARGS + i] = args[i];
    for (let t = 0; t < threads; t++) {
      ctrl[RANGES + 2 * t] = cuts[t];
      ctrl[RANGES + 2 * t + 1] = cuts[t + 1];
    }
    ctrl[CTRL.OP] = op;
    Atomics.store(ctrl, CTRL.DONE, 0);
    Atomics.add(ctrl, CTRL.GEN, 1);
    Atomics.notify(ctrl, CTRL.GEN);
    self();
    for (;;) {
      const done = Atomics.load(ctrl, CTRL.DONE);
      if (done >= threads - 1) break;
      Atomics.wait(ctrl, CTRL.DONE, done, 1000);
      if (failure) throw failure;
    }
    if (Atomics.load(ctrl, CTRL.FAILED)) throw new Error("a pool thread failed (its error is printed above)");
  };

  return {
    kernels,
    threads,
    linear(out, inp, w: PackedLinear, rows, gelu) {
      const cuts = evenCuts(w.outDim, threads, PANEL);
      run(Op.Linear, [off(out), off(inp), off(w.packed), w.packed.length, off(w.bias), rows, w.inDim, w.outDim, gelu ? 1 : 0], cuts, () =>
        kernels.linear(out, inp, w, rows, gelu, cuts[0], cuts[1]));
    },
    layernorm(out, inp, weight, bias, rows, C, e) {
      const cuts = evenCuts(rows, threads, 1);
      eps[0] = e;
      run(Op.LayerNorm, [off(out), off(inp), off(weight), off(bias), rows, C], cuts, () =>
        kernels.layernorm(out, inp, weight, bias, C, e, cuts[0], cuts[1]));
    },
    attention(out, qkv, seqStarts, nHead, C, scratch, maxLen) {
      // Balance by cost: a (text, head) item of length T costs ~T²/2 dot products.
      const S = seqStarts.length - 1;
      const items = S * nHead;
      const cost = new Float64Array(items + 1);
      for (let i = 0; i < items; i++) {
        const s = Math.floor(i / nHead);
        const T = seqStarts[s + 1] - seqStarts[s];
        cost[i + 1] = cost[i] + T * (T + 1);
      }
      const cuts = [0];
      for (let t = 1; t < threads; t++) {
        const target = (cost[items] * t) / threads;
        let i = cuts[t - 1];
        while (i < items && cost[i] < target) i++;
        cuts.push(i);
      }
      cuts.push(items);
      run(Op.Attention, [off(out), off(qkv), off(seqStarts), S, nHead, C, off(scratch), maxLen], cuts, () =>
        kernels.attention(out, qkv, seqStarts, nHead, C, scratch.subarray(0, maxLen), cuts[0], cuts[1]));
    },
    residual(out, a, b, n) {
      const cuts = evenCuts(n, threads, 16);
      run(Op.Residual, [off(out), off(a), off(b), n], cuts, () => kernels.residual(out, a, b, cuts[0], cuts[1]));
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
