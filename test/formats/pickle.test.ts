import { describe, expect, it } from "vitest";
import { FormatError, UnsafeFileError } from "../../src/errors.js";
import { isTuple, loadPickle, type PickleCallable } from "../../src/formats/pickle.js";
import { PickleWriter } from "../helpers/zip-writer.js";
import { thrown } from "../helpers/thrown.js";


const nothingAllowed = { findGlobal: () => undefined };
const load = (bytes: Uint8Array, opts: Parameters<typeof loadPickle>[2] = nothingAllowed): unknown =>
  loadPickle("p.pkl", bytes, opts).value;

describe("pickle machine", () => {
  it("builds plain values from protocol-2 opcodes", () => {
    const w = new PickleWriter().proto(2).emptyDict().put(0).mark();
    w.str("n").int(-5).str("big").int(2 ** 40).str("f").float(0.1).str("t").bool(true).str("none").none();
    w.str("tuple").ints([1, 300, 70000]).str("list").emptyList().mark().int(1).int(2).appends();
    w.setItems().stop();
    const v = load(w.bytes()) as Map<string, unknown>;
    expect([...v.keys()]).toEqual(["n", "big", "f", "t", "none", "tuple", "list"]);
    expect(v.get("n")).toBe(-5);
    expect(v.get("big")).toBe(2 ** 40);
    expect(v.get("f")).toBe(0.1);
    expect(v.get("t")).toBe(true);
    expect(v.get("none")).toBe(null);
    expect(v.get("tuple")).toEqual([1, 300, 70000]);
    expect(isTuple(v.get("tuple"))).toBe(true);
    expect(isTuple(v.get("list"))).toBe(false);
    expect(v.get("list")).toEqual([1, 2]);
  });

  it("reads what CPython's pickle writes (protocol 4: FRAME, MEMOIZE, SHORT_BINUNICODE, LONG1)", () => {
    // Output of CPython 3: pickle.dumps({'a': [1, 2**70, -1], 'b': ('x', None, True), 'c': 1.5, 'd': b'\x00\xff'}, protocol=4)
    const hex = "80049541000000000000007d94288c0161945d94284b018a090000000000000000404affffffff658c0162948c0178944e8887948c016394473ff80000000000008c016494430200ff94752e";
    const v = load(Uint8Array.from(Buffer.from(hex, "hex"))) as Map<string, unknown>;
    expect(v.get("a")).toEqual([1, 2n ** 70n, -1]);
    expect(v.get("b")).toEqual(["x", null, true]);
    expect(v.get("c")).toBe(1.5);
    expect(v.get("d")).toEqual(Uint8Array.from([0, 255]));
  });

  for (const [module, name] of [["os", "system"], ["posix", "system"], ["builtins", "eval"], ["subprocess", "Popen"]]) {
    it(`refuses the global ${module}.${name} (GLOBAL and STACK_GLOBAL), naming it`, () => {
      for (const w of [
        new PickleWriter().proto(2).global(module, name),
        new PickleWriter().proto(4).stackGlobal(module, name),
      ]) {
        w.str("echo pwned").raw(0x85).reduce().stop();
        const e = thrown(() => load(w.bytes()));
        expect(e).toBeInstanceOf(UnsafeFileError);
        expect(e.message).toContain(`${module}.${name}`);
      }
    });
  }

  it("calls only the callables the caller allows, with their argument tuple", () => {
    const calls: unknown[] = [];
    const f: PickleCallable = { qualname: "m.f", call: (args) => (calls.push(args), "made") };
    const w = new PickleWriter().proto(2).global("m", "f").ints([7, 8]).reduce().stop();
    const v = load(w.bytes(), { findGlobal: (m, n) => (m === "m" && n === "f" ? f : undefined) });
    expect(v).toBe("made");
    expect(calls).toEqual([[7, 8]]);
  });

  it("refuses to call a value that is not an allowed callable", () => {
    const w = new PickleWriter().proto(2).str("os.system").emptyTuple().reduce().stop();
    expect(thrown(() => load(w.bytes()))).toBeInstanceOf(FormatError);
  });

  it("names an unknown opcode and its offset", () => {
    const e = thrown(() => load(Uint8Array.from([0x80, 0x02, 0xff, 0x2e])));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(/unknown pickle opcode 0xff at offset 2/);
  });

  it("names a known but unsupported opcode (INST)", () => {
    const e = thrown(() => load(Uint8Array.from([0x80, 0x02, 0x69, 0x2e])));
    expect(e.message).toMatch(/INST .* at offset 2 is not supported/);
  });

  it("refuses a persistent id when the caller has no use for one", () => {
    const w = new PickleWriter().proto(2).str("x").binpersid().stop();
    expect(thrown(() => load(w.bytes()))).toBeInstanceOf(UnsafeFileError);
  });

  it("gives a FormatError, never a RangeError or TypeError, for every truncation", () => {
    const w = new PickleWriter().proto(2).emptyDict().put(0).mark();
    w.str("key").int(123456).str("x".repeat(300)).float(2.5).str("g").get(0).setItems().stop();
    const bytes = w.bytes();
    expect(load(bytes)).toBeInstanceOf(Map);
    for (let cut = 0; cut < bytes.length; cut++) {
      const e = thrown(() => load(bytes.subarray(0, cut)));
      expect(e, `cut at ${cut}: ${e.message}`).toBeInstanceOf(FormatError);
    }
  });

  it("rejects stack underflow and a BINGET of an empty memo slot", () => {
    expect(thrown(() => load(Uint8Array.from([0x80, 2, 0x52, 0x2e])))).toBeInstanceOf(FormatError);
    expect(thrown(() => load(Uint8Array.from([0x80, 2, 0x68, 9, 0x2e]))).message).toMatch(/memo has no entry 9/);
  });

  it("handles 200,000 levels of nesting without recursion", () => {
    const depth = 200_000;
    const w = new PickleWriter().proto(2);
    for (let i = 0; i < depth; i++) w.emptyList();
    for (let i = 0; i < depth - 1; i++) w.raw(0x61); // APPEND: each list into the one below
    let v = load(w.stop().bytes()) as unknown[];
    let n = 1;
    while (v.length) { v = v[0] as unknown[]; n++; }
    expect(n).toBe(depth);
  });

  it("bounds the stack and the memo", () => {
    const w = new PickleWriter().proto(2);
    for (let i = 0; i < 100; i++) w.none();
    expect(thrown(() => load(w.stop().bytes(), { findGlobal: () => undefined, maxStack: 50 })).message).toMatch(/stack exceeds 50/);
    const m = new PickleWriter().proto(2).none();
    for (let i = 0; i < 100; i++) m.put(i);
    expect(thrown(() => load(m.stop().bytes(), { findGlobal: () => undefined, maxMemo: 50 })).message).toMatch(/memo exceeds 50/);
  });

  it("refuses a string length past the end of the data without allocating it", () => {
    // BINUNICODE8 claiming 2^60 bytes
    const bytes = Uint8Array.from([0x80, 4, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x2e]);
    expect(thrown(() => load(bytes))).toBeInstanceOf(FormatError);
  });
});
