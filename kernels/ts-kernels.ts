/** The pure-TypeScript kernels behind the `Kernels` contract: the reference path, and the fallback. */
import { Arena } from "./arena.js";
import { attention } from "./attention.js";
import type { Kernels, PackedLinear } from "./contract.js";
import { countNonFinite } from "./finite.js";
import { layernorm } from "./layernorm.js";
import { PANEL, matmulPacked, packMatmulWeight, packedSize } from "./matmul.js";
import { packBlockRows, packInBlocks, packLinear16 } from "./packing.js";
import { residual } from "./residual.js";

export function createTsKernels(arena: Arena = new Arena()): Kernels {
  return {
    name: "ts",
    ...arena.allocation(),
    packLinearRows(inDim, outDim, bias, read): PackedLinear {
      const size = packedSize(inDim, outDim);
      const block = arena.above([size, outDim], packBlockRows(inDim, outDim) * outDim);
      const packed = arena.allocUncleared(size); // packMatmulWeight writes every float
      const nonFinite = packInBlocks(block, inDim, outDim, read, (rows, r0, r1) => packMatmulWeight(packed, rows, inDim, outDim, r0, r1));
      const b = arena.alloc(outDim);
      b.set(bias.subarray(0, outDim));
      return { inDim, outDim, dtype: "F32", packed, bias: b, nonFinite };
    },
    packLinearRows16: (inDim, outDim, bias, dtype, read) => packLinear16(arena, PANEL, inDim, outDim, bias, dtype, read),
    countNonFinite,
    linear: matmulPacked,
    layernorm,
    attention,
    residual,
  };
}
