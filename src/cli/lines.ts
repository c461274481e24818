/**
 * Reads a stream line by line as raw bytes and decodes each line as strict UTF-8, so that a line
 * with invalid UTF-8 is reported as such (readline would silently turn it into U+FFFD and score
 * a text nobody wrote). "\r\n" endings are accepted; a final line without "\n" counts.
 */
import type { Readable } from "node:stream";

export type Line = { text: string } | { error: string };

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Stops (as at end of input) when `signal` fires, even while waiting for input. */
export async function* readLines(stream: Readable, signal?: AbortSignal): AsyncGenerator<Line> {
  let pending: Buffer[] = [];
  const stop = () => stream.destroy();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for await (const chunk of chunks(stream, signal)) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(10, start);
        if (nl < 0) break;
        pending.push(chunk.subarray(start, nl));
        yield decode(Buffer.concat(pending));
        pending = [];
        start = nl + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
  } finally {
    signal?.removeEventListener("abort", stop);
  }
  if (pending.length > 0 && !signal?.aborted) {
    const last = Buffer.concat(pending);
    if (last.length > 0) yield decode(last);
  }
}

/** The stream's chunks; a stream destroyed because `signal` fired just ends. */
async function* chunks(stream: Readable, signal?: AbortSignal): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk;
  } catch (e) {
    if (!signal?.aborted) throw e;
  }
}

function decode(bytes: Buffer): Line {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
  try {
    return { text: decoder.decode(bytes.subarray(0, end)) };
  } catch {
    return { error: "line is not valid UTF-8" };
  }
}
