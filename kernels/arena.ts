/**
 * One shared WebAssembly.Memory holds every weight and activation, whichever kernels run:
 * WebAssembly kernels address it by byte offset, worker threads receive it once and build views
 * of it, and the pure-TypeScript kernels see ordinary Float32Arrays. A bump allocator is all we
 * need: weights are allocated once at load, activations once per batch shape (`mark`/`release`).
 */
const PAGE = 65536;
const ALIGN = 64;

export class Arena {
  readonly memory: WebAssembly.Memory;
  private top: number;

  /** `reserveBytes` at the start are left to a WebAssembly module's own data (stack, constants). */
  constructor(memory?: WebAssembly.Memory, reserveBytes = ALIGN) {
    // Shared memory needs a maximum; 65536 pages = 4 GiB, the wasm32 limit. V8 reserves the
    // address space, not physical memory, so a large maximum costs nothing.
    this.memory = memory ?? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    this.top = align(reserveBytes);
  }

  /** Byte offset of the next allocation. */
  mark(): number {
    return this.top;
  }

  /** Frees everything allocated since `mark` (views into that region must no longer be used). */
  release(mark: number): void {
    this.top = mark;
  }

  alloc(n: number): Float32Array {
    const offset = this.bytes(n * 4);
    return new Float32Array(this.memory.buffer, offset, n);
  }

  allocInt32(n: number): Int32Array {
    const offset = this.bytes(n * 4);
    return new Int32Array(this.memory.buffer, offset, n);
  }

  /** Reserves n zero-filled bytes and returns their byte offset. */
  private bytes(n: number): number {
    const start = this.top;
    const end = align(start + Math.max(n, 1));
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        throw new RangeError(`out of model memory: need ${end} bytes, wasm32 memory is limited to 4 GiB`);
      }
    }
    this.top = end;
    new Uint8Array(this.memory.buffer, start, n).fill(0);
    return start;
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
