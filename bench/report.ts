/** The benchmark's results as terminal tables, and the targets checked against them. */
import type { CapacityResult } from "./capacity.js";
import type { Ceiling } from "./ceiling.js";
import { CONTENDED, type DtypeResult, type E2eResult, type LoadResult } from "./e2e.js";
import type { KernelResult } from "./kernels.js";
import type { OpsChildResult } from "./ops-child.js";
import type { PeerResult } from "./peers.js";
import { fixed, formatTable, sci } from "./table.js";
import type { WorkloadResults, WorkloadRun } from "./workloads.js";

export interface Target {
  target: string;
  measured: string;
  required: string;
  met: boolean | null;
}

const MiB = 2 ** 20;
const mib = (bytes: number | null) => (bytes === null ? "—" : (bytes / MiB).toFixed(0));

/** The best of a section's ceiling measurements (the machine at its quietest), or null if none. */
const bestCeiling = (ceiling: Ceiling[]) => (ceiling.length ? Math.max(...ceiling.map((c) => c.gflops)) : null);

export function kernelTables(results: KernelResult[], ceiling: Ceiling[] = []): string {
  const out: string[] = [];
  const ceil = bestCeiling(ceiling);
  const ofCeiling = (r: KernelResult) => (ceil === null || r.rate === null ? "—" : `${((100 * r.rate) / ceil).toFixed(0)}% / ${((100 * r.bestRate!) / ceil).toFixed(0)}%`);
  const row = (r: KernelResult, first: string[]) => [
    ...first, r.kernel, sci(r.maxAbsDiff), sci(r.tolerance), r.status === "timed" ? fixed(1000 / r.hz!, 3) : r.status,
    fixed(r.rate, 2), r.rmePct === null ? "—" : `±${r.rmePct.toFixed(1)}%`, fixed(r.bestRate, 2), String(r.samples), fixed(r.otherCores, 2),
  ];
  const tail = ["kernel", "max|Δ|", "tol", "ms/call"];
  const matmul = results.filter((r) => r.group === "matmul");
  if (matmul.length) {
    out.push(formatTable("matmul, single thread: out[T, out] = inp[T, in] · W + b; GFLOPS = 2·T·in·out / time",
      ["layer", "in→out", "T", ...tail, "GFLOPS", "rme", "best", "runs", "others", "of ceiling (mean / best)"],
      matmul.map((r) => [...row(r, [r.shape.split(" ")[0], r.shape.split(" ")[1], String(r.rows)]), ofCeiling(r)]),
      [...(ceil === null ? [] : [`of ceiling: GFLOPS (mean / best sample) over the SIMD128 multiply-add ceiling of one core, ${ceiling.map((c) => c.gflops.toFixed(1)).join(" / ")} GFLOPS`,
        `  at the start / end of the section (${ceiling[0].instruction}, bench/ceiling.ts); the fraction uses the larger, ${ceil.toFixed(1)}.`]),
        "reference = matmulReference (+ geluReference for c_fc): timed only at T=64 and at the qkv shape, it is ~100× slower.",
        "max|Δ| against the reference on all rows (T=64) or the first and last 32 rows (T=256, 1024); tol = 1e-3·max|reference|.",
        "GFLOPS ± rme: benchmark.js mean and 95% margin; best: the fastest sample; others: cores other processes used meanwhile."]));
    const qkv = matmul.filter((r) => r.rows === 256 && r.shape.startsWith("attn.c_attn") && r.rate !== null);
    const ref = qkv.find((r) => r.kernel === "reference")?.rate ?? null;
    out.push(formatTable("single-thread GFLOPS at the qkv shape 256×768·768×2304", ["kernel", "GFLOPS", "rme", "best", "× reference"],
      qkv.map((r) => [r.kernel, fixed(r.rate, 2), `±${r.rmePct!.toFixed(1)}%`, fixed(r.bestRate, 2), ref ? fixed(r.rate! / ref, 1) : "—"])));
  }
  for (const [group, unit, title] of [
    ["layernorm", "GB/s", "layernorm, single thread; GB/s = (x read + out written) / time"],
    ["attention", "GFLOPS", "causal attention, single thread; GFLOPS = 2·T²·D per (text, head) / time"],
    ["gelu", "GB/s", "gelu_new, single thread; GB/s = 8 bytes per element / time; ts scalar = geluScalar, the path fused into the TS matmul"],
  ] as const) {
    const rs = results.filter((r) => r.group === group);
    if (rs.length) out.push(formatTable(title, ["shape", ...tail, unit, "rme", "best", "runs", "others"], rs.map((r) => row(r, [r.shape]))));
  }
  return out.join("\n");
}

export function e2eTable(results: E2eResult[]): string {
  const one = (r: E2eResult) => results.find((x) => x.kernels === r.kernels && x.batch === r.batch && x.len === r.len && x.threads === 1);
  return formatTable("end to end: GPT-2 base (random F32 weights), child processes in rounds; ms per batch = median after warm-up",
    ["kernels", "threads", "batch", "ms/batch", "min", "runs", "tokens/s", "1→2 (median)", "1→2 (min)", "busy", "CPU×", "others' CPU", "peak RSS MiB", "RSS after load", "logit[0]"],
    results.map((r) => {
      const base = one(r);
      const up = (a: number, b: number) => (r.threads > 1 && base ? `${(a / b).toFixed(2)}×` : "");
      return [r.kernels, String(r.threads), `${r.batch}×${r.len}`, fixed(r.medianMs, 0) + (r.contended ? "*" : ""), fixed(r.minMs, 0),
        String(r.batchMs.length), fixed(r.tokensPerSec, 0), up(base?.medianMs ?? 0, r.medianMs), up(base?.minMs ?? 0, r.minMs),
        busy(r), r.threads > 1 && base ? `${(cpuMs(r) / cpuMs(base)).toFixed(2)}` : "", fixed(r.otherCores, 2), mib(r.maxRss), mib(r.rssAfterLoad), r.firstLogit === null ? "—" : r.firstLogit.toPrecision(8)];
    }),
    ["rounds: each round runs one child process per thread count, one after the other, so a 1→2 speed-up compares timings",
      "  from the same minutes (wasm: 3 rounds of 2 batches, ts: 2 rounds of 1; --quick: 1 round); peak RSS: a row's largest child.",
      "warm-up in each child: wasm one full batch; ts one 32-token text (a full pure-TS batch takes tens of seconds).",
      "busy: our CPU time / (wall time × threads) over the timed batches; below 100% the threads waited for each other.",
      "CPU×: CPU time of a batch (median) relative to 1 thread; above 1 each core did the same work slower (SMT, memory, host).",
      "  So speed-up = threads × busy / CPU×: busy is the pool's share of the loss, CPU× the machine's.",
      `others' CPU: cores other processes used during the timed batches (/proc/stat); batches with more than ${CONTENDED} are left out`,
      "  of the median unless all were (then marked *). The machine is shared: read the 1→2 speed-ups with that column.",
      "peak RSS = process.resourceUsage().maxRSS of the child (load + warm-up + all batches); logit[0] should not depend on threads."]);
}

/** Median CPU time of one batch, all threads, ms. */
function cpuMs(r: E2eResult): number {
  const xs = r.batchMs.map((ms, i) => ms * r.batchCpu[i].ownCores).sort((a, b) => a - b);
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

function busy(r: E2eResult): string {
  const own = r.batchCpu.map((c) => c.ownCores);
  return own.length ? `${((100 * own.reduce((a, b) => a + b, 0)) / own.length / r.threads).toFixed(0)}%` : "—";
}

/** Per-op time of one wasm forward at each thread count, and each op's speed-up. */
export function opsTable(results: OpsChildResult[]): string {
  if (results.length === 0) return "";
  const base = results[0];
  const names = Object.keys(base.ops);
  const rows = [...names, "forward"].map((op) => {
    const ms = (r: OpsChildResult) => (op === "forward" ? r.forwardMs : r.ops[op] ?? 0);
    return [op, String(base.calls[op] ?? 1), ...results.flatMap((r) => [fixed(ms(r), 0), r === base ? `${((100 * ms(r)) / base.forwardMs).toFixed(1)}%` : `${(ms(base) / ms(r)).toFixed(2)}×`])];
  });
  rows.push(["busy (CPU / wall·threads)", "", ...results.flatMap((r) => [`${((100 * r.cpu.ownCores) / r.threads).toFixed(0)}%`, ""])]);
  const cpu = (r: OpsChildResult) => r.cpu.ownCores * r.forwardMs;
  rows.push(["CPU× (CPU time / 1 thread's)", "", ...results.flatMap((r) => [(cpu(r) / cpu(base)).toFixed(2), ""])]);
  rows.push(["others' CPU (cores)", "", ...results.flatMap((r) => [fixed(r.cpu.otherCores, 2), ""])]);
  return formatTable(`one forward pass op by op (fastest of 3): ${base.kernels} ${base.batch}×${base.len}, summed over layers`,
    ["op", "calls", ...results.flatMap((r) => [`ms ${r.threads}t`, r === base ? "share" : `speed-up`])], rows,
    ["other = the forward's time outside kernel calls (embedding, buffer allocation, the score head)."]);
}

export function capacityTable(results: CapacityResult[]): string {
  return formatTable("parallel capacity of this machine: one matmul loop, 1 process alone vs 2 processes at once (no threads, no sharing)",
    ["kernels", "matmul T×in·in×out", "GFLOPS alone", "GFLOPS each, 2 at once", "aggregate speed-up", "others' CPU (1 / 2)"],
    results.map((r) => [r.kernels, `${r.shape[0]}×${r.shape[1]}·${r.shape[1]}×${r.shape[2]}`, fixed(r.alone, 2), r.together.map((g) => g.toFixed(2)).join(" + "), `${r.speedup.toFixed(2)}×`, r.otherCores.map((x) => fixed(x, 2)).join(" / ")]),
    ["the ceiling for any 1→2-thread speed-up here: below ~1.9× the two vCPUs share a core (SMT) or a memory path."]);
}

export function loadTable(results: LoadResult[], fileBytes: number): string {
  return formatTable(`load time: ${(fileBytes / 1e6).toFixed(0)} MB F32 safetensors, warm page cache, one child process per load`,
    ["kernels", "ms (median)", "runs (ms)", "MB/s", "floor ms (median)", "floor runs (ms)", "RSS after load MiB", "peak RSS MiB"],
    results.map((r) => [r.kernels, fixed(r.medianMs, 0), r.loadMs.map((x) => x.toFixed(0)).join(", "), fixed(r.mbPerSec, 0),
      fixed(r.floorMedianMs, 0), r.floorMs?.map((x) => x.toFixed(0)).join(", ") ?? "—", mib(r.rssAfterLoad), mib(r.maxRss)]),
    ["load = RewardModel.load (config, read + check + pack every tensor, 1 thread); a first unmeasured load warms the page cache.",
      "floor = the file read whole into fresh memory by one readSync loop, timed in the same rounds: the page faults of the",
      "model's memory plus the copy out of the page cache, which any loader without mmap pays before checking or packing a byte."]);
}

export function peerTable(results: PeerResult[], notes: string[]): string {
  return formatTable("peers: GPT-2 base, 8×128, one child process per row; ms per batch = median after one warm-up batch",
    ["peer", "threads", "ms/batch", "runs", "others' CPU", "source", "peak RSS MiB"],
    results.map((r) => r.source === "issue"
      ? [r.peer, String(r.threads), fixed(r.medianMs, 0), "—", "—", "issue (not measured here)", "—"]
      : [r.peer, String(r.threads), fixed(r.medianMs, 0) + (r.contended ? "*" : ""), String(r.batchMs.length), fixed(r.otherCores, 2), "measured", mib(r.maxRss)]),
    results.some((r) => r.source === "measured")
      ? [...notes, `others' CPU: as in the end-to-end table; batches with more than ${CONTENDED} are left out of the median unless all were (* = some were).`]
      : notes);
}

/** The targets, each with what was measured; absent inputs (e.g. --only kernels) are skipped. */
export function targets(kernels: KernelResult[], e2e: E2eResult[], peers: PeerResult[], load: LoadResult[] = [], capacity: CapacityResult[] = [],
  workloads: WorkloadResults | null = null, kernelCeiling: Ceiling[] = []): Target[] {
  const t: Target[] = [];
  if (workloads) t.push(...workloadTargets(workloads));
  t.push(...matmulCeilingTargets(kernels, kernelCeiling));
  const qkv = kernels.find((r) => r.kernel === "ts packed" && r.rows === 256 && r.shape.startsWith("attn.c_attn"));
  if (qkv?.rate != null) {
    t.push({ target: "pure-TS matmul at 256×768·768×2304, GFLOPS per thread",
      measured: `${qkv.rate.toFixed(2)} (${(qkv.rate / 2).toFixed(2)}× target; best sample ${fixed(qkv.bestRate, 2)})`, required: "≥ 2.0 (mean)", met: qkv.rate >= 2 });
  }
  const at = (k: string, threads: number, batch = 8, len = 128) => e2e.find((r) => r.kernels === k && r.threads === threads && r.batch === batch && r.len === len);
  for (const r of e2e.filter((x) => x.threads === 2)) {
    const base = at(r.kernels, 1, r.batch, r.len);
    if (!base) continue;
    const s = base.medianMs / r.medianMs;
    const ceiling = capacity.find((c) => c.kernels === r.kernels)?.speedup;
    const context = ceiling ? `; this machine's 2-process ceiling ${ceiling.toFixed(2)}×` : "";
    t.push({ target: `1→2 threads end to end, ${r.kernels} ${r.batch}×${r.len}`, measured: `${s.toFixed(2)}× (${(s / 1.85).toFixed(2)} of target${context})`, required: "≥ 1.85×", met: s >= 1.85 });
  }
  const peer = (name: string, threads: number) => peers.find((p) => p.peer === name && p.threads === threads);
  const vs = (label: string, k: string, threads: number, name: string, factor: number) => {
    const ours = at(k, threads), p = peer(name, threads);
    if (!ours || !p) return;
    const ratio = ours.medianMs / p.medianMs;
    const src = p.source === "issue" ? ", issue's number" : p.contended ? `, ${p.contended} of ${p.batchMs.length} batches contended` : "";
    t.push({ target: `${label}, ${threads} thread${threads > 1 ? "s" : ""}`,
      measured: `${(ours.medianMs / 1000).toFixed(2)} s = ${ratio.toFixed(2)}× ${name} (${(p.medianMs / 1000).toFixed(2)} s${src})`,
      required: factor === 1 ? `< 1× (< ${(p.medianMs / 1000).toFixed(2)} s)` : `≤ ${factor}× (≤ ${((p.medianMs * factor) / 1000).toFixed(2)} s)`,
      met: factor === 1 ? ratio < 1 : ratio <= factor });
  };
  for (const threads of [1, 2]) vs("wasm 8×128 faster than onnxruntime-web", "wasm", threads, "onnxruntime-web", 1);
  for (const threads of [1, 2]) vs("wasm 8×128 within 4× of onnxruntime-node", "wasm", threads, "onnxruntime-node", 4);
  for (const threads of [1, 2]) vs("pure TS 8×128 within 35× of onnxruntime-node", "ts", threads, "onnxruntime-node", 35);
  for (const r of e2e.filter((x) => x.batch === 8 && x.len === 128)) {
    const m = r.maxRss / MiB;
    t.push({ target: `peak RSS, load + score 8×128, ${r.kernels} ${r.threads} thread${r.threads > 1 ? "s" : ""}`, measured: `${m.toFixed(0)} MiB (${(m / 650).toFixed(2)} of limit)`, required: "≤ 650 MiB", met: m <= 650 });
  }
  for (const r of load) {
    const floor = r.floorMedianMs ? `; the floor, reading the file into fresh memory: ${(r.floorMedianMs / 1000).toFixed(2)} s` : "";
    t.push({ target: `load of the 500 MB F32 file, warm page cache, ${r.kernels} kernels`,
      measured: `${(r.medianMs / 1000).toFixed(2)} s${floor}`, required: "≤ 0.5 s", met: r.medianMs <= 500 });
  }
  return t;
}

export function targetTable(t: Target[]): string {
  const met = t.filter((x) => x.met).length;
  return formatTable(`targets (issue 4): ${met} of ${t.length} met`, ["target", "measured", "required", "met"],
    t.map((x) => [x.target, x.measured, x.required, x.met === null ? "—" : x.met ? "yes" : "NO"]));
}

export function dtypeTable(results: DtypeResult[]): string {
  return formatTable("--dtype: GPT-2 base stored as BF16 (the same random weights, rounded), wasm, 8×128; f32 widens the weights at load, bf16 keeps them",
    ["dtype", "threads", "ms/batch", "min", "runs", "load ms", "RSS after load MiB", "peak RSS MiB", "others' CPU", "logit[0]"],
    results.map((r) => [r.dtype, String(r.threads), fixed(r.medianMs, 0) + (r.contended ? "*" : ""), fixed(r.minMs, 0), String(r.batchMs.length),
      fixed(r.loadMs, 0), mib(r.rssAfterLoad), mib(r.maxRss), fixed(r.otherCores, 2), r.firstLogit === null ? "—" : r.firstLogit.toPrecision(8)]),
    ["child processes in rounds, the four configurations alternating; ms/batch = median after a full warm-up batch.",
      "logit[0] must be the same bits for both dtypes (the bench stops otherwise): widening a panel is exact."]);
}

/** The realistic workloads (issue 15): texts/s, ours against the peers, and the matmuls against the SIMD128 ceiling. */
export function workloadTable(w: WorkloadResults): string {
  const best = Math.max(...w.ceiling.map((c) => c.gflops));
  const oursWasm = (r: WorkloadRun) => w.runs.find((x) => x.workload === r.workload && x.who === "ours" && x.kernels === "wasm" && x.threads === r.threads);
  return formatTable("workloads: whole workloads in input order, batches of 8, left-truncated to 256 tokens; one child process per run",
    ["workload", "who", "kernels", "threads", "batches", "texts", "tokens", "rows computed", "s", "texts/s", "÷ ours wasm", "matmul GFLOPS", "of ceiling", "others' CPU"],
    w.runs.map((r) => {
      const base = oursWasm(r);
      return [r.workload, r.who, r.kernels, String(r.threads), r.order ?? "input", String(r.texts), String(r.tokens), String(r.rows),
        fixed(r.medianMs / 1000, 1) + (r.contended ? "*" : ""), fixed(r.textsPerSec, 2), base && r.who !== "ours" ? `${(r.textsPerSec / base.textsPerSec).toFixed(2)}×` : "",
        fixed(r.matmulGflops, 1), r.ceilingFraction === null ? "" : `${(100 * r.ceilingFraction).toFixed(0)}%`, fixed(r.otherCores, 2)];
    }),
    [`ceiling: a wasm loop of independent f32x4 multiply-adds (${w.ceiling[0]?.instruction ?? "—"}, bench/ceiling.ts), one core: ${w.ceiling.map((c) => c.gflops.toFixed(1)).join(" / ")} GFLOPS`,
      `  (start / end of the section); "of ceiling" = the workload's matmul GFLOPS / (threads × ${best.toFixed(1)}), wasm only.`,
      "chat: 64 texts, log-normal lengths (median 100 tokens); best-of-N: 32 conversations, a 180–220-token context + 8 replies of",
      "  20–40 tokens each (bench/workload-texts.ts). Ours: no padding, a prefix shared in a batch computed once (rows computed);",
      "  the first `texts` of the workload (pure TS: 16, --quick 8; wasm --quick: 16). Peers: the model card's padding (rows computed = padded tokens), batches in",
      "  input order or after sorting the texts by length. s = wall time of the whole workload after a warm-up batch (* = contended).",
      ...w.notes]);
}

/**
 * Issue 15: every GPT-2 base matmul shape ≥ 85% of the SIMD128 ceiling on one thread. Judged on
 * the best sample against the best ceiling measurement, like for like (both are what the core does
 * when nothing slows it); the mean is shown beside it.
 */
function matmulCeilingTargets(kernels: KernelResult[], ceiling: Ceiling[]): Target[] {
  const ceil = bestCeiling(ceiling);
  if (ceil === null) return [];
  const wasm = kernels.filter((r) => r.group === "matmul" && r.kernel === "wasm" && r.bestRate !== null);
  return [...new Set(wasm.map((r) => r.shape))].map((shape) => {
    const rs = wasm.filter((r) => r.shape === shape);
    const pct = (g: number) => `${((100 * g) / ceil).toFixed(0)}%`;
    return { target: `wasm matmul ${shape}, 1 thread, T = ${rs.map((r) => r.rows).join(" / ")}, against the SIMD128 ceiling (${ceil.toFixed(1)} GFLOPS)`,
      measured: `best ${rs.map((r) => pct(r.bestRate!)).join(" / ")} (mean ${rs.map((r) => pct(r.rate!)).join(" / ")})`,
      required: "≥ 85%", met: rs.every((r) => r.bestRate! >= 0.85 * ceil) };
  });
}

/** Issue 15's targets on the workloads: against onnxruntime-node's padded batches in input order, and the ceiling. */
function workloadTargets(w: WorkloadResults): Target[] {
  const t: Target[] = [];
  const find = (workload: string, who: string, threads: number) =>
    w.runs.find((r) => r.workload === workload && r.who === who && r.threads === threads && (who === "ours" ? r.kernels === "wasm" : r.order === "input"));
  for (const [workload, threads, factor] of [["best-of-n", 2, 1], ["best-of-n", 1, 1], ["chat", 1, 1.8], ["chat", 2, 1.55]] as const) {
    const ours = find(workload, "ours", threads), ort = find(workload, "onnxruntime-node", threads);
    if (!ours || !ort) continue;
    // Time per text: the same texts unless a run scored fewer (then the ratio says so).
    const ratio = ort.textsPerSec / ours.textsPerSec;
    const texts = ours.texts === ort.texts ? `${ours.texts} texts` : `ours ${ours.texts} texts, onnxruntime-node ${ort.texts}`;
    t.push({ target: `${workload} workload, wasm ${threads} thread${threads > 1 ? "s" : ""}, against onnxruntime-node padded in input order`,
      measured: `${(ours.medianMs / 1000).toFixed(1)} s = ${ratio.toFixed(2)}× (${(ort.medianMs / 1000).toFixed(1)} s; ${texts})`,
      required: factor === 1 ? "< 1×" : `≤ ${factor}×`, met: factor === 1 ? ratio < 1 : ratio <= factor });
  }
  for (const r of w.runs.filter((x) => x.ceilingFraction !== null && x.threads === 1)) {
    t.push({ target: `${r.workload} workload: wasm matmuls on 1 thread against the SIMD128 multiply-add ceiling`,
      measured: `${fixed(r.matmulGflops, 1)} GFLOPS = ${(100 * r.ceilingFraction!).toFixed(0)}%`, required: "≥ 85%", met: r.ceilingFraction! >= 0.85 });
  }
  return t;
}
