/** The model's thread in Node: the Node platform first, then the thread itself (src/model/model-worker.ts). */
import "../platform/node.js";
import "../model/model-worker.js";
