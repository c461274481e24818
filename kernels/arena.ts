/**
 * One shared WebAssembly.Memory holds every weight and activation, whichever kernels run:
 * WebAssembly kernels address it by byte offset, worker threads receive it once and build views
 * of it, and the pure-TypeScript kernels see ordinary Float32Arrays. A bump allocator is all we
 * need: weights are allocated once at load, activations once per batch shape (`mark`/`release`).
 */
import type { Kernels, WasmMemory } from "./contract.js";

const PAGE = 65536;
const ALIGN = 64;

export class Arena {
  readonly memory: WasmMemory;
  private top: number;

  /** `reserveBytes` at the start are left to a WebAssembly module's own data (stack, constants). */
  constructor(memory?: WasmMemory, reserveBytes = ALIGN) {
    // Shared memory needs a maximum; 65536 pages = 4 GiB, the wasm32 limit. V8 reserves the
    // address space, not physical memory, so a large maximum costs nothing.
    this.memory = memory ?? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    this.top = align(reserveBytes);
    // A memory handed in may hold data: treat all of it as used before, so allocations clear it.
    this.highWater = memory ? memory.buffer.byteLength : 0;
  }

  /** Byte offset of the next allocation. */
  mark(): number {
    return this.top;
  }

  /** Frees everything allocated since `mark` (views into that region must no longer be used). */
  release(mark: number): void {
    this.top = mark;
  }

  /** The allocation half of the `Kernels` contract, the same for every set of kernels. */
  allocation(): Pick<Kernels, "memory" | "alloc" | "allocInt32" | "mark" | "release"> {
    return {
      memory: this.memory,
      alloc: (n) => this.alloc(n),
      allocInt32: (n) => this.allocInt32(n),
      mark: () => this.mark(),
      release: (m) => this.release(m),
    };
  }

  alloc(n: number): Float32Array {
    const offset = this.bytes(n * 4, true);
    return new Float32Array(this.memory.buffer, offset, n);
  }

  /**
   * Like alloc, but the floats may hold old data: for a caller that writes every one of them
   * (packing a weight), which then need not pay for clearing memory it overwrites anyway.
   */
  allocUncleared(n: number): Float32Array {
    const offset = this.bytes(n * 4, false);
    return new Float32Array(this.memory.buffer, offset, n);
  }

  /**
   * A view of n floats that allocates nothing: it starts where allocations of `floats[0]`,
   * `floats[1]`, ... floats from here would end, so those allocations cannot overlap it.
   * packLinearRows reads each block of a weight's rows into it and packs the block into those
   * allocations: WebAssembly can address it, the block is still in cache when packed, and its
   * pages are ones the following weights land in anyway. Valid until the next allocation.
   */
  above(floats: number[], n: number): Float32Array {
    const start = this.aboveBytes(floats.map((f) => f * 4), n * 4);
    return new Float32Array(this.memory.buffer, start, n);
  }

  /** `above` in bytes: allocations of `sizes[i]` bytes from here, then `n` bytes; returns its offset. */
  aboveBytes(sizes: number[], n: number): number {
    let start = this.top;
    for (const b of sizes) start = align(start + Math.max(b, 1));
    this.ensure(start + n);
    // It will hold data: allocations over it later must clear it.
    this.highWater = Math.max(this.highWater, start + n);
    return start;
  }

  /** n zero-filled 16-bit values (16-bit weights), 64-byte aligned. */
  allocUint16(n: number): Uint16Array {
    const offset = this.bytes(n * 2, true);
    return new Uint16Array(this.memory.buffer, offset, n);
  }

  allocInt32(n: number): Int32Array {
    const offset = this.bytes(n * 4, true);
    return new Int32Array(this.memory.buffer, offset, n);
  }

  /** Reserves n bytes, zero-filled if `clear`, and returns their byte offset. */
  private bytes(n: number, clear: boolean): number {
    const start = this.top;
    const end = align(start + Math.max(n, 1));
    this.ensure(end);
    this.top = end;
    // Memory above the high-water mark is fresh from grow() and already zero; only memory
    // given back by release() (or written through `above`) and handed out again needs clearing.
    if (clear && start < this.highWater) new Uint8Array(this.memory.buffer, start, Math.min(end, this.highWater) - start).fill(0);
    this.highWater = Math.max(this.highWater, end);
    return start;
  }

  /** Grows the memory to at least `end` bytes. */
  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    // Grow by at least 1/8 of the current size: loading GPT-2 makes ~150 allocations, and each
    // grow of a shared memory costs. Pages never written are not resident, so this costs no RSS.
    const pages = Math.max(Math.ceil((end - have) / PAGE), Math.min(Math.ceil(have / 8 / PAGE), 65536 - have / PAGE));
    try {
      this.memory.grow(pages);
    } catch {
      throw new RangeError(`out of model memory: need ${end} bytes, wasm32 memory is limited to 4 GiB`);
    }
  }
  private highWater: number;
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
