/**
 * Shared pieces of the fuzz suite (test/fuzz-*.test.ts): run counts from the environment, the
 * "only our errors escape" check, and byte-level mutations of real files.
 *
 *   npx vitest run test/fuzz                       # CI: FUZZ_RUNS=200 per property, seeded
 *   FUZZ_RUNS=20000 npx vitest run test/fuzz       # a long run (same seed unless FUZZ_SEED is set)
 *
 * Every generator bounds its input size (a few KB, or one fixture file plus a handful of edits),
 * so the work per run is bounded by construction; a reader that loops, recurses or allocates
 * beyond its input shows up as a failed property (or as the vitest timeout), never as a slow pass.
 */
import fc from "fast-check";
import { Gpt2RewardError } from "../../src/errors.js";

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${v}"`);
  return n;
}

/** Runs per property, before each property's weight. */
export const FUZZ_RUNS = envInt("FUZZ_RUNS", 200);
export const FUZZ_SEED = envInt("FUZZ_SEED", 20250705);

/** fast-check parameters: seeded, FUZZ_RUNS × weight runs (a property that loads a model costs more than one that parses a header). */
export function fuzzParams(weight = 1): { seed: number; numRuns: number } {
  return { seed: FUZZ_SEED, numRuns: Math.max(1, Math.round(FUZZ_RUNS * weight)) };
}

/** A vitest timeout that grows with the run count, so a long run is not cut short. */
export function fuzzTimeout(weight = 1): number {
  return Math.max(120_000, fuzzParams(weight).numRuns * 200);
}

/** `arb` one time in `n`, else null (fc.option's `freq` is the other way round: null one time in freq). */
export function oneIn<T>(n: number, arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: n - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });
}

type ErrorClass = abstract new (...args: never[]) => Gpt2RewardError;

/**
 * Runs `f`. Returning is fine; throwing is fine only with one of our errors (of class `expected`)
 * whose message is one line, as the CLI prints it. Anything else (RangeError, TypeError,
 * SyntaxError, a multi-line message) is rethrown, which fails the property with its input.
 */
export function onlyOurErrors<E extends Gpt2RewardError>(f: () => unknown, expected: ErrorClass = Gpt2RewardError): E | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    if (!(e instanceof expected)) throw e;
    if (/[\n\r]/.test(e.message) || e.message.length > 4000) throw new Error(`error message is not one short line: ${JSON.stringify(e.message.slice(0, 300))}`);
    return e as E;
  }
}

/** The same for async code. */
export async function onlyOurErrorsAsync<E extends Gpt2RewardError>(f: () => Promise<unknown>, expected: ErrorClass = Gpt2RewardError): Promise<E | undefined> {
  try {
    await f();
    return undefined;
  } catch (e) {
    if (!(e instanceof expected)) throw e;
    if (/[\n\r]/.test(e.message)) throw new Error(`error message is not one line: ${JSON.stringify(e.message.slice(0, 300))}`);
    return e as E;
  }
}

// ---- raw mutations of real files ----

/** A position: inside one of the file's "hot" ranges (headers, directories) or anywhere. `frac` ∈ [0, 1). */
interface Pos {
  hot: number | null;
  frac: number;
}

export type Mutation =
  | { kind: "flip"; at: Pos; bit: number }
  | { kind: "byte"; at: Pos; value: number }
  | { kind: "u16" | "u32" | "u64"; at: Pos; value: bigint | "len-1" | "len" | "len+1" }
  | { kind: "truncate"; at: Pos }
  | { kind: "delete"; at: Pos; len: number }
  | { kind: "insert"; at: Pos; bytes: Uint8Array }
  | { kind: "repeat"; at: Pos; len: number };

const INTERESTING_BYTES = [0x00, 0x01, 0x0a, 0x20, 0x22, 0x28, 0x2e, 0x5b, 0x7b, 0x7f, 0x80, 0xc0, 0xfe, 0xff];
const INTERESTING_INTS: bigint[] = [
  0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn,
  0x100000000n, 2n ** 40n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n,
];

function posArb(hotCount: number): fc.Arbitrary<Pos> {
  const frac = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
  if (hotCount === 0) return frac.map((f) => ({ hot: null, frac: f }));
  // Four edits in five land in a hot range: the bytes a reader trusts first.
  return fc.record({ hot: fc.option(fc.nat({ max: hotCount - 1 }), { freq: 5, nil: null }), frac });
}

/** 1 to `max` edits; `hotCount` is the number of hot ranges `applyMutations` will be given. */
export function mutationsArb(hotCount: number, max = 6): fc.Arbitrary<Mutation[]> {
  const at = posArb(hotCount);
  const value = fc.oneof(fc.constantFrom(...INTERESTING_INTS), fc.constantFrom("len-1" as const, "len" as const, "len+1" as const), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("flip" as const), at, bit: fc.nat({ max: 7 }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("byte" as const), at, value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat({ max: 255 })) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom("u16" as const, "u32" as const, "u64" as const), at, value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), at, len: fc.integer({ min: 1, max: 64 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("repeat" as const), at, len: fc.integer({ min: 1, max: 64 }) }) },
  );
  return fc.array(mutation, { minLength: 1, maxLength: max });
}

/**
 * Applies the edits to a copy of `base`. `hot` ranges are [start, end) in `base`; after an edit
 * that changes the length they may drift a little, which only makes the fuzzing less aimed.
 */
export function applyMutations(base: Uint8Array, mutations: Mutation[], hot: [number, number][] = []): Uint8Array {
  let b: Uint8Array = Uint8Array.from(base);
  const where = (p: Pos): number => {
    if (b.length === 0) return 0;
    const range = p.hot === null ? undefined : hot[p.hot];
    const [lo, hi] = range ? [Math.min(range[0], b.length - 1), Math.min(range[1], b.length)] : [0, b.length];
    return Math.min(b.length - 1, lo + Math.floor(p.frac * Math.max(1, hi - lo)));
  };
  for (const m of mutations) {
    const at = where(m.at);
    switch (m.kind) {
      case "flip":
        if (b.length) b[at] ^= 1 << m.bit;
        break;
      case "byte":
        if (b.length) b[at] = m.value;
        break;
      case "u16":
      case "u32":
      case "u64": {
        const width = m.kind === "u16" ? 2 : m.kind === "u32" ? 4 : 8;
        let v = typeof m.value === "bigint" ? m.value : BigInt(b.length) + (m.value === "len-1" ? -1n : m.value === "len" ? 0n : 1n);
        for (let i = 0; i < width && at + i < b.length; i++, v >>= 8n) b[at + i] = Number(v & 0xffn);
        break;
      }
      case "truncate":
        b = b.slice(0, at);
        break;
      case "delete":
        b = concat(b.subarray(0, at), b.subarray(at + m.len));
        break;
      case "insert":
        b = concat(b.subarray(0, at), m.bytes, b.subarray(at));
        break;
      case "repeat":
        b = concat(b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len));
        break;
    }
  }
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
