/**
 * Fuzzing the input side of `score`: random byte streams through the strict-UTF-8 line reader
 * (checked against a plain reference), JSON lines through the jsonl record parser, and whole jobs
 * through `runScoreJob` with a real (small) model. A bad line must become `{index, error}` for
 * that line only; nothing may escape, and every good line is scored as it would be alone.
 */
import { join } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { runScoreJob, type OutputRecord } from "../../src/cli/job.js";
import { inputItems, recordParser } from "../../src/cli/input.js";
import { readLines, type Line } from "../../src/cli/lines.js";
import { RewardModel } from "../../src/model/async-model.js";
import { fuzzParams, fuzzTimeout } from "../helpers/fuzz-common.js";
import { deepJson } from "../helpers/fuzz-models.js";

const JSONL = { format: "jsonl" } as const;
/** A JSON line as the job sees it (null for a blank line, which is no record). */
const parseInputLine = (line: string) => recordParser(JSONL)({ text: line }, 1);

const SMALL = join(import.meta.dirname, "..", "..", "fixtures", "models", "f16-8head");

/** The stream cut into chunks at the given (sorted, deduplicated) positions. */
function chunked(bytes: Uint8Array, cuts: number[]): Readable {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    if (c > prev) parts.push(Buffer.from(bytes.subarray(prev, c)));
    prev = Math.max(prev, c);
  }
  return Readable.from(parts);
}

/**
 * The reference: split on "\n", drop one trailing "\r", refuse a line of more than maxLineBytes,
 * decode strictly; a last empty piece is no line.
 */
function referenceLines(bytes: Uint8Array, maxLineBytes = Infinity): Line[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) (pieces.push(bytes.subarray(start, i)), (start = i + 1));
  if (start < bytes.length) pieces.push(bytes.subarray(start));
  return pieces.map((p) => {
    const body = p.length && p[p.length - 1] === 0x0d ? p.subarray(0, p.length - 1) : p;
    if (body.length > maxLineBytes) return { error: `line of ${body.length} bytes is longer than --max-line-bytes ${maxLineBytes}; skipped` };
    try {
      return { text: new TextDecoder("utf-8", { fatal: true }).decode(body) };
    } catch {
      return { error: "line is not valid UTF-8" };
    }
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

// Bytes that make lines interesting: newlines, CR, UTF-8 lead and continuation bytes, overlongs, surrogates in UTF-8 (ED A0 80).
const byteSoup = fc.array(
  fc.oneof(
    fc.constantFrom(0x0a, 0x0d, 0x22, 0x7b, 0x7d, 0xc0, 0xc2, 0xe2, 0xed, 0xf0, 0xf4, 0xf5, 0x80, 0xa0, 0xbf, 0xff),
    fc.integer({ min: 0x20, max: 0x7e }),
    fc.nat({ max: 255 }),
  ),
  { maxLength: 200 },
).map((a) => Uint8Array.from(a));
const validUtf8 = fc.string({ unit: "grapheme", maxLength: 60 }).map((s) => new TextEncoder().encode(s));

describe("the line reader on random byte streams", () => {
  it("gives exactly the reference's lines, whatever the chunk boundaries", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(byteSoup, validUtf8), fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cuts) => {
        expect(await collect(readLines(chunked(bytes, cuts)))).toEqual(referenceLines(bytes));
      }),
      fuzzParams(5),
    );
  }, fuzzTimeout(5));

  it("skips exactly the lines longer than --max-line-bytes, counting their bytes as the reference does", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(byteSoup, validUtf8), fc.array(fc.nat(), { maxLength: 8 }), fc.nat({ max: 40 }), async (bytes, cuts, max) => {
        expect(await collect(readLines(chunked(bytes, cuts), undefined, max))).toEqual(referenceLines(bytes, max));
      }),
      fuzzParams(5),
    );
    // The counterexample a long run found: a "\r\n" ending is not counted in the line's bytes.
    const crlf = Buffer.from("abcdef\r\nabcdefgh\r\r\nabcde\r\n\u0000\r");
    expect(await collect(readLines(chunked(crlf, [7, 8, 17]), undefined, 5))).toEqual(referenceLines(crlf, 5));
    expect(await collect(readLines(chunked(Uint8Array.from([0, 13]), []), undefined, 0))).toEqual([{ error: "line of 1 bytes is longer than --max-line-bytes 0; skipped" }]);
  }, fuzzTimeout(5));
});

// ---- JSON lines ----

const DEEP = deepJson(20_000);
const idValue = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 50256 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom("-1", "50257", "1.5", '"3"', "null", "1e400", "9007199254740993", "[]", "{}", "-0", "true", DEEP) },
);
const textValue = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 24 }),
  fc.string({ unit: "binary", maxLength: 12 }), // lone surrogates: JSON.stringify writes them as \udXXX escapes
  fc.constantFrom("", " ", "<|endoftext|>", "User: hi\nBot: hello", "\u0000", "a".repeat(20_000), "的".repeat(10_001)),
);
const jsonLine = fc.oneof(
  { weight: 4, arbitrary: textValue.map((t) => JSON.stringify({ text: t })) },
  { weight: 2, arbitrary: fc.array(idValue, { maxLength: 6 }).map((ids) => `{"ids":[${ids.join(",")}]}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "", "{", "[]", "null", "1", '"text"', '{"text":1}', '{"text":null}', '{"ids":"1 2"}', '{"text":"a","ids":[1]}',
      '{"__proto__":{"text":"x"}}', '{"__proto__":{"ids":[1]}}', '{"constructor":{"text":"x"}}', '{"text":"a"} trailing',
      `{"ids":${DEEP}}`, `{"ids":[${DEEP}]}`, `{"text":${DEEP}}`, DEEP, '{"text":"\\ud800"}', '{"text":"\\udc00x"}', '{"text":"a","text":"b"}',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

describe("JSON lines", async () => {
  it("the jsonl parser never throws, and keeps what the line says", () => {
    fc.assert(
      fc.property(jsonLine, (line) => {
        const item = parseInputLine(line);
        if (item === null) expect(line.trim()).toBe("");
        else if (item.kind === "text") expect(item.text).toBe(JSON.parse(line).text);
        else if (item.kind === "ids") expect(Array.isArray(item.ids)).toBe(true);
        else expect(item.error).not.toMatch(/[\n\r]/);
      }),
      fuzzParams(10),
    );
  }, fuzzTimeout(10));

  const model = await RewardModel.load(SMALL, { threads: 1, kernels: "ts" });
  afterAll(() => model.close());

  it("a job over random lines (and broken UTF-8) gives one record per line, in order, errors only for bad lines", async () => {
    const lineBytes = fc.oneof(
      { weight: 6, arbitrary: jsonLine.map((l) => Buffer.from(l, "utf8")) },
      { weight: 1, arbitrary: fc.constantFrom(Buffer.from([0x7b, 0xff, 0x7d]), Buffer.from('{"text":"\xed\xa0\x80"}', "latin1"), Buffer.from([0xc0, 0xaf])) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineBytes, { minLength: 1, maxLength: 10 }),
        fc.constantFrom("\n", "\r\n"),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 1, max: 4 }),
        async (lines, eol, cuts, batchSize) => {
          // A line containing "\n" would be two lines; the generator's JSON escapes them, raw strings may not.
          const bytes = Buffer.concat(lines.flatMap((l) => [l, Buffer.from(eol)]));
          // Blank lines are no records: the index counts the others.
          const expected = referenceLines(bytes).filter((l) => "error" in l || l.text.trim() !== "");
          const records: OutputRecord[] = [];
          const { lines: n, failed } = await runScoreJob(model, inputItems(readLines(chunked(bytes, cuts)), JSONL), (r) => void records.push(r), { batchSize, window: 3 });
          expect(n).toBe(expected.length);
          expect(records.map((r) => r.index)).toEqual(expected.map((_, i) => i));
          expect(failed).toBe(records.filter((r) => "error" in r).length);
          for (const [i, r] of records.entries()) {
            if ("error" in r) {
              expect(r.error).not.toMatch(/[\n\r]/);
              continue;
            }
            // A scored line was good: alone it gives the same logits, bit for bit.
            const line = expected[i] as { text: string };
            const item = parseInputLine(line.text)!;
            const alone = item.kind === "text" ? await model.score([item.text]) : await model.scoreIds([(item as { ids: number[] }).ids]);
            expect(r.logits).toEqual(alone[0].logits);
          }
        },
      ),
      fuzzParams(1),
    );
  }, fuzzTimeout(1));

  it("ids nested 20,000 deep are an error for their line only; a 20,000-letter word and 160,000 CJK characters score", async () => {
    const input = [`{"ids":[${DEEP}]}`, '{"text":"hi"}', JSON.stringify({ text: "a".repeat(20_000) }), JSON.stringify({ text: "的".repeat(160_000) })].join("\n");
    const records: OutputRecord[] = [];
    const { failed } = await runScoreJob(model, inputItems(readLines(Readable.from([Buffer.from(input)])), JSONL), (r) => void records.push(r));
    expect(failed).toBe(1);
    expect(records[0]).toEqual({ index: 0, line: 1, error: "id an array of 1 is outside the vocabulary (0 to 50256)" });
    expect(records[1]).toMatchObject({ index: 1, tokens: 1 });
    expect(records[2]).toMatchObject({ index: 2, tokens: 256, truncated: true });
    expect(records[3]).toMatchObject({ index: 3, tokens: 256, truncated: true });
  });
});
