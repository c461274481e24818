/**
 * The benchmark of issue 4: kernels, end-to-end scoring, load time, and the issue's targets.
 *   npm run bench            (= npm run build && node dist/bench/run.js)
 *   node dist/bench/run.js [--quick] [--only kernels|capacity|e2e|ops|load|dtype|peers|workloads[,...]] [--json out.json] [--onnx model.onnx]
 *        [--kernels wasm,ts] [--peers onnxruntime-node,onnxruntime-web] [--texts N]
 *   node dist/bench/run.js --only serve      (the HTTP server under wrk: bench/serve.ts)
 *   node dist/bench/run.js --from bench/results/latest.json     (print a saved run's tables again)
 * Prints tables as each section finishes and writes everything, with the machine, to
 * bench/results/latest.json (or --json). Exits 1 if a kernel disagrees with its reference.
 * The machine is assumed noisy: compare ratios within one run, not numbers across runs.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchCapacity, type CapacityResult } from "./capacity.js";
import { benchDtype, benchE2e, benchLoad, benchOps, type DtypeResult, type E2eResult, type KernelName, type LoadResult } from "./e2e.js";
import { ensureRandomGpt2Base, ensureRandomGpt2BaseBF16, type Fixture } from "./fixture.js";
import { measureCeiling, type Ceiling } from "./ceiling.js";
import { benchKernels, type KernelResult } from "./kernels.js";
import { machine, machineLine, type Machine } from "./machine.js";
import { PEERS, benchPeers, type PeerName, type PeerResult } from "./peers.js";
import type { OpsChildResult } from "./ops-child.js";
import { capacityTable, dtypeTable, e2eTable, kernelTables, loadTable, opsTable, peerTable, targetTable, targets, workloadTable } from "./report.js";
import { benchWorkloads, type WorkloadResults } from "./workloads.js";
import { benchServe, serveTable, type ServeResults } from "./serve.js";

const SECTIONS = ["kernels", "capacity", "e2e", "ops", "load", "dtype", "peers", "workloads", "serve"] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  only: Set<Section>;
  json: string;
  onnx?: string;
  from?: string;
  /** Our kernel sets to time end to end (e2e, ops, load, workloads). */
  kernels: KernelName[];
  /** The peers to time, where installed. */
  peers: PeerName[];
  /** Workloads: score only the first N texts of each (ours and the peers alike). */
  texts?: number;
}

/** A comma-separated list, each item one of `allowed`. */
function listOf<T extends string>(option: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(",");
  for (const n of items) if (!(allowed as readonly string[]).includes(n)) usage(`${option}: unknown "${n}" (one of ${allowed.join(", ")})`);
  return items as T[];
}

function parseArgs(argv: string[]): Args {
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  let quick = false, json = resolve(repoRoot, "bench/results/latest.json"), onnx: string | undefined, from: string | undefined;
  let only = new Set<Section>(SECTIONS);
  let kernels: KernelName[] = ["wasm", "ts"], peers: PeerName[] = [...PEERS], texts: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--quick") quick = true;
    else if (a === "--json") json = resolve(value());
    else if (a === "--onnx") onnx = resolve(value());
    else if (a === "--from") from = resolve(value());
    else if (a === "--only") only = new Set(listOf(a, value(), SECTIONS));
    else if (a === "--kernels") kernels = listOf(a, value(), ["wasm", "ts"] as const);
    else if (a === "--peers") peers = listOf(a, value(), PEERS);
    else if (a === "--texts") {
      texts = Number(value());
      if (!Number.isInteger(texts) || texts < 1) usage(`--texts: expected a whole number ≥ 1, got ${argv[i]}`);
    } else usage(`unknown argument ${a}`);
  }
  return { quick, only, json, onnx, from, kernels, peers, texts };
}

function usage(problem: string): never {
  process.stderr.write(`bench: ${problem}\nusage: node dist/bench/run.js [--quick] [--only ${SECTIONS.join("|")}[,...]] [--json out.json] [--onnx model.onnx]`
    + ` [--kernels wasm,ts] [--peers ${PEERS.join(",")}] [--texts N] | --from saved.json\n`);
  process.exit(2);
}

const started = performance.now();
const log = (msg: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

const args = parseArgs(process.argv.slice(2));
if (args.from) {
  reprint(args.from);
  process.exit(0);
}
const m = machine();
const loadAvgStart = loadavg();
console.log(`machine: ${machineLine(m)}; load average ${loadAvgStart.map((x) => x.toFixed(2)).join(" ")}\n`);

const kernelNames = args.kernels;
// 1 and all cores (2 on the reference machine).
const threads = [...new Set([1, 2, availableParallelism()])].filter((t) => t <= Math.max(2, availableParallelism()));
const e2eOpts = { quick: args.quick, kernels: kernelNames, threads, log };

let kernels: KernelResult[] = [];
/** The SIMD128 multiply-add ceiling at the start and the end of the kernels section. */
let kernelCeiling: Ceiling[] = [];
let e2e: E2eResult[] = [];
let capacity: CapacityResult[] = [];
let ops: OpsChildResult[] = [];
let load: LoadResult[] = [];
let dtype: DtypeResult[] = [];
let peers: PeerResult[] = [];
let peerNotes: string[] = [];
let workloads: WorkloadResults | null = null;
let serve: ServeResults | null = null;
let fixture: Fixture | null = null;
const getFixture = () => (fixture ??= ensureRandomGpt2Base(log));

const save = () => {
  mkdirSync(dirname(args.json), { recursive: true });
  const t = targets(kernels, e2e, peers, load, capacity, workloads, kernelCeiling);
  writeFileSync(args.json, JSON.stringify({ machine: { ...m, loadAvgStart, loadAvgEnd: loadavg() }, quick: args.quick,
    seconds: (performance.now() - started) / 1000, fixture, kernels, kernelCeiling, capacity, e2e, ops, load, dtype, peers, peerNotes, workloads, serve, targets: t }, null, 2) + "\n");
};

if (args.only.has("kernels")) {
  // The matmuls' yardstick, measured on both sides of the section: the fraction uses the quieter one.
  const ceiling = () => {
    kernelCeiling.push(measureCeiling(args.quick ? 0.5 : 2));
    log(`kernels: SIMD128 ceiling ${kernelCeiling[kernelCeiling.length - 1].gflops.toFixed(1)} GFLOPS`);
  };
  ceiling();
  kernels = benchKernels({ maxTime: args.quick ? 0.3 : 1, minSamples: args.quick ? 2 : 5, attempts: args.quick ? 1 : 3, log });
  ceiling();
  console.log(kernelTables(kernels, kernelCeiling));
  save();
}
if (args.only.has("capacity")) {
  capacity = await benchCapacity(args.quick, log);
  console.log(capacityTable(capacity));
  save();
}
if (args.only.has("e2e")) {
  e2e = await benchE2e(getFixture().dir, e2eOpts);
  console.log(e2eTable(e2e));
  save();
}
if (args.only.has("ops")) {
  ops = await benchOps(getFixture().dir, e2eOpts);
  console.log(opsTable(ops));
  save();
}
if (args.only.has("peers") || args.only.has("e2e")) {
  ({ results: peers, notes: peerNotes } = await benchPeers(args.onnx, args.peers, threads, args.quick, log));
  console.log(peerTable(peers, peerNotes));
}
if (args.only.has("load")) {
  const f = getFixture();
  load = benchLoad(f.dir, f.file, f.bytes, e2eOpts);
  console.log(loadTable(load, f.bytes));
}
if (args.only.has("dtype")) {
  dtype = await benchDtype(ensureRandomGpt2BaseBF16(log).dir, e2eOpts);
  console.log(dtypeTable(dtype));
}
if (args.only.has("workloads")) {
  workloads = await benchWorkloads(getFixture().dir, args.onnx, { kernels: args.kernels, peers: args.peers, texts: args.texts }, threads, args.quick, log);
  console.log(workloadTable(workloads));
  save();
}
if (args.only.has("serve")) {
  serve = await benchServe(getFixture().dir, { quick: args.quick, threads: availableParallelism(), log });
  console.log(serveTable(serve));
  save();
}
console.log(targetTable(targets(kernels, e2e, peers, load, capacity, workloads, kernelCeiling)));
save();
const seconds = (performance.now() - started) / 1000;
console.log(`results: ${args.json}; ${seconds.toFixed(0)} s; load average at the end ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
const bad = kernels.filter((r) => r.status === "aborted");
if (bad.length) {
  console.error(`bench: ${bad.length} kernel variant(s) disagree with the reference: ${bad.map((r) => `${r.group} ${r.shape} T=${r.rows} ${r.kernel} (${r.error ?? `max|Δ| ${r.maxAbsDiff}`})`).join("; ")}`);
  process.exitCode = 1;
}

/** Prints the tables of a saved run (its JSON file) with this version's report code. */
function reprint(file: string): void {
  const saved = JSON.parse(readFileSync(file, "utf8")) as {
    machine: Machine & { loadAvgStart: number[] }; seconds: number; fixture: Fixture | null; kernels: KernelResult[]; kernelCeiling?: Ceiling[]; capacity?: CapacityResult[];
    e2e: E2eResult[]; ops?: OpsChildResult[]; load: LoadResult[]; dtype?: DtypeResult[]; peers: PeerResult[]; peerNotes: string[];
    workloads?: WorkloadResults | null; serve?: ServeResults | null;
  };
  console.log(`machine: ${machineLine(saved.machine)}; load average ${saved.machine.loadAvgStart.map((x) => x.toFixed(2)).join(" ")}\n`);
  if (saved.kernels.length) console.log(kernelTables(saved.kernels, saved.kernelCeiling ?? []));
  if (saved.capacity?.length) console.log(capacityTable(saved.capacity));
  if (saved.e2e.length) console.log(e2eTable(saved.e2e));
  if (saved.ops?.length) console.log(opsTable(saved.ops));
  if (saved.peers.length) console.log(peerTable(saved.peers, saved.peerNotes));
  if (saved.load.length && saved.fixture) console.log(loadTable(saved.load, saved.fixture.bytes));
  if (saved.dtype?.length) console.log(dtypeTable(saved.dtype));
  if (saved.workloads) console.log(workloadTable(saved.workloads));
  if (saved.serve) console.log(serveTable(saved.serve));
  console.log(targetTable(targets(saved.kernels, saved.e2e, saved.peers, saved.load, saved.capacity, saved.workloads ?? null, saved.kernelCeiling ?? [])));
  console.log(`from ${file}; that run took ${saved.seconds.toFixed(0)} s`);
}
