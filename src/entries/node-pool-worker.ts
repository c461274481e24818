/** The pool thread's script in Node: the Node platform first, then the thread itself (src/run/pool-worker.ts). */
import "../platform/node.js";
import "../run/pool-worker.js";
