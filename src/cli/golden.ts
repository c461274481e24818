/**
 * Reading the golden files fixtures/export_golden.py writes, for `verify` and `trace`: the file
 * (or standard input for "-"), size-capped, parsed, and "same_as" followed to the golden file of
 * the same weights in another file format. What each command needs from it, each checks itself.
 */
import { FormatError, quote } from "../errors.js";
import { platform } from "../platform/platform.js";
import { describeErrno } from "./lines.js";

/** Far above a GPT-2 base golden file with hidden states (~60 MB), and within what one JS string holds. */
export const MAX_GOLDEN_BYTES = 512 * 2 ** 20;

/** How "-" is named in messages. */
const STDIN = "standard input";

/**
 * The golden file's JSON object, and the file it came from (the one "same_as" leads to). A file
 * that only says `"same_as": "other"` (same weights, other format) is followed to other.json
 * beside it, at most 4 hops, and only to a plain file name in the same folder.
 */
export async function readGoldenJson(file: string, hops = 0): Promise<{ file: string; json: Record<string, unknown> }> {
  const name = file === "-" ? STDIN : file;
  const text = file === "-" ? await readStdin() : readFile(file);
  let g: unknown;
  try {
    g = JSON.parse(text);
  } catch (e) {
    throw new FormatError(name, `not a golden file: not JSON (${(e as Error).message})`);
  }
  if (typeof g !== "object" || g === null || Array.isArray(g)) throw new FormatError(name, `not a golden file: expected a JSON object, got ${quote(g)}`);
  const o = g as Record<string, unknown>;
  if (typeof o.same_as === "string" && !("singles" in o) && !("hidden_states" in o)) {
    if (file === "-") throw new FormatError(name, `"same_as" ${quote(o.same_as)} names a file beside this one: give its path with --golden instead of -`);
    if (hops >= 4 || !/^[\w.-]+$/.test(o.same_as)) throw new FormatError(file, `"same_as" ${quote(o.same_as)} does not lead to a golden file`);
    return readGoldenJson(platform().files.join(platform().files.dirname(file), `${o.same_as}.json`), hops + 1);
  }
  return { file: name, json: o };
}

/** texts.json beside a golden file (the texts its ids were tokenized from), if it is there and sound. */
export function textsBeside(file: string): string[] | undefined {
  if (file === STDIN) return undefined;
  try {
    const texts = JSON.parse(platform().files.readText(platform().files.join(platform().files.dirname(file), "texts.json"), MAX_GOLDEN_BYTES)) as unknown;
    return Array.isArray(texts) && texts.every((t) => typeof t === "string") ? texts : undefined;
  } catch {
    return undefined; // optional: without it the token ids are not checked, the logits still are
  }
}

function readFile(file: string): string {
  if (platform().files.kind(file) === undefined) throw new FormatError(file, "cannot read golden file: no such file");
  try {
    return platform().files.readText(file, MAX_GOLDEN_BYTES);
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(file, describeErrno(e, "cannot read golden file"));
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > MAX_GOLDEN_BYTES) {
      process.stdin.destroy();
      throw new FormatError(STDIN, `is more than the ${MAX_GOLDEN_BYTES} bytes a golden file may have; refusing to read it`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}
