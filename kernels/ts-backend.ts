/** The pure-TypeScript kernels behind the `Kernels` contract: the reference path, and the fallback. */
import { Arena } from "./arena.js";
import { attention } from "./attention.js";
import type { Kernels, PackedLinear } from "./backend.js";
import { layernorm } from "./layernorm.js";
import { matmulPacked, packMatmulWeight, packedSize } from "./matmul.js";
import { residual } from "./residual.js";

export function createTsKernels(arena: Arena = new Arena()): Kernels {
  return {
    name: "ts",
    ...arena.allocation(),
    packLinear(weight, bias, inDim, outDim): PackedLinear {
      const packed = arena.alloc(packedSize(inDim, outDim));
      const nonFinite = packMatmulWeight(packed, weight, inDim, outDim);
      const b = arena.alloc(outDim);
      b.set(bias);
      return { inDim, outDim, packed, bias: b, nonFinite };
    },
    linear(out, inp, w, rows, gelu, colStart, colEnd) {
      matmulPacked(out, inp, w.packed, w.bias, rows, w.inDim, w.outDim, gelu, colStart, colEnd);
    },
    layernorm,
    attention,
    residual,
  };
}
