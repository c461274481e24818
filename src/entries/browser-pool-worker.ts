/** The pool thread's script in a browser (bundled as dist/browser/pool-worker.js). */
import "../platform/browser.js";
import "../run/pool-worker.js";
