/**
 * Checkpoints written by real PyTorch (fixtures/pytorch, made by fixtures/export_golden.py):
 * every tensor must come out with the dtype, shape and exact values torch reported.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FormatError } from "../../src/errors.js";
import { pytorchTensors } from "../helpers/tensors.js";
import { f16ToF32, type RawTensor } from "../../src/formats/tensor.js";

interface Expected {
  order: string[];
  tensors: Record<string, {
    dtype: string; shape: number[]; storage_offset: number; contiguous: boolean; values: unknown; shares_storage_with: string[];
  }>;
}

const TORCH_DTYPES: Record<string, string> = {
  float32: "F32", float16: "F16", bfloat16: "BF16", float64: "F64", int64: "I64", int32: "I32", int16: "I16", int8: "I8", uint8: "U8", bool: "BOOL",
};

/** Every element as a JS number (or boolean), decoded exactly from the tensor's bytes. */
function values(t: RawTensor): (number | boolean)[] {
  const b = t.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = t.shape.reduce((a, d) => a * d, 1);
  const out: (number | boolean)[] = [];
  for (let i = 0; i < n; i++) {
    switch (t.dtype) {
      case "F32": out.push(dv.getFloat32(4 * i, true)); break;
      case "F64": out.push(dv.getFloat64(8 * i, true)); break;
      case "F16": out.push(f16ToF32(dv.getUint16(2 * i, true))); break;
      case "BF16": { const f = new DataView(new ArrayBuffer(4)); f.setUint32(0, dv.getUint16(2 * i, true) << 16); out.push(f.getFloat32(0)); break; }
      case "I64": out.push(Number(dv.getBigInt64(8 * i, true))); break;
      case "I32": out.push(dv.getInt32(4 * i, true)); break;
      case "I16": out.push(dv.getInt16(2 * i, true)); break;
      case "I8": out.push(dv.getInt8(i)); break;
      case "U8": out.push(dv.getUint8(i)); break;
      case "BOOL": out.push(dv.getUint8(i) !== 0); break;
      default: throw new Error(`unexpected dtype ${t.dtype}`);
    }
  }
  return out;
}

for (const name of ["strided", "legacy"]) {
  describe(`fixtures/pytorch/${name}.bin (written by torch.save)`, () => {
    const file = `fixtures/pytorch/${name}.bin`;
    const bytes = readFileSync(file);
    const expected = JSON.parse(readFileSync(`fixtures/pytorch/${name}.json`, "utf8")) as Expected;
    const tensors = pytorchTensors(file, bytes);

    it("holds exactly the tensors torch saved, in order", () => {
      expect([...tensors.keys()]).toEqual(expected.order);
    });

    for (const [key, want] of Object.entries(expected.tensors)) {
      it(`${key}: ${want.dtype} ${JSON.stringify(want.shape)}${want.contiguous ? "" : " (strided)"} has torch's exact values`, () => {
        const t = tensors.get(key)!;
        expect(t.dtype).toBe(TORCH_DTYPES[want.dtype]);
        expect(t.shape).toEqual(want.shape);
        // toEqual tells -0 from 0, so signed zeros are checked too
        expect(values(t)).toEqual([want.values].flat(Infinity));
      });
    }
  });
}

describe("damaged copies of fixtures/pytorch/*.bin", () => {
  for (const name of ["strided", "legacy"]) {
    const bytes = new Uint8Array(readFileSync(`fixtures/pytorch/${name}.bin`));

    it(`${name}.bin: every truncation gives a FormatError`, () => {
      for (let cut = 0; cut < bytes.length; cut++) {
        let error: unknown;
        try {
          pytorchTensors("cut.bin", bytes.subarray(0, cut));
        } catch (e) {
          error = e;
        }
        expect(error, `cut at ${cut}`).toBeInstanceOf(FormatError);
      }
    });

    it(`${name}.bin: random byte corruptions load or give a FormatError, never another error`, () => {
      let seed = 7;
      const rand = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
      for (let trial = 0; trial < 3000; trial++) {
        const copy = bytes.slice();
        for (let k = 0; k <= trial % 3; k++) copy[rand(copy.length)] = rand(256);
        try {
          pytorchTensors("bad.bin", copy);
        } catch (e) {
          if (!(e instanceof FormatError)) throw new Error(`trial ${trial}: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }
    });
  }
});
