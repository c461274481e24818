/**
 * Input formats: what a raw input line (or TEXT argument) becomes before the job sees it.
 *
 *   jsonl  one JSON object a line: "text", "ids" or chat "messages" ([{"role","content"}]), or
 *          the field --text-field names (a dotted path, e.g. "prompt.body"; a string or messages)
 *   csv    comma-separated with a header line; --text-field names the column (default "text");
 *          quoted fields may hold commas, quotes ("") and line breaks (RFC 4180)
 *   tsv    the same with tabs
 *   text   each line is one text, as it is
 *
 * A blank line (empty or only white space) is skipped in every format, and so is the CSV/TSV
 * header: `index` counts records, so the N-th non-blank record has index N-1 whatever the blank
 * lines around it, and `line` (1-based) is where it starts in the file, for messages.
 * The other fields of a record (e.g. "id") pass through to its output line.
 */
import { extname } from "node:path";
import { Gpt2RewardError, quote } from "../errors.js";
import type { Line } from "./lines.js";

export const INPUT_FORMATS = ["jsonl", "csv", "tsv", "text"] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

export type InputItem = (
  | { kind: "text"; text: string }
  | { kind: "ids"; ids: number[] }
  | { kind: "error"; error: string }
) & {
  /** The 1-based input line the record starts on (absent for TEXT arguments). */
  line?: number;
  /** The record's other fields, passed through to its output line. */
  extra?: Record<string, unknown>;
};

export interface InputSpec {
  format: InputFormat;
  /** A dotted path into a JSON object, or a CSV/TSV column name. */
  textField?: string;
  /** How one chat message is written; `{role}`, `{Role}` (capitalized) and `{content}` are replaced. */
  chatTemplate?: string;
  /** Put between two rendered messages. */
  chatSeparator?: string;
  /** Role names as they appear in the text: {"assistant": "Bot"}. */
  roles?: Record<string, string>;
}

/** Chai's conversations read "User: hi\nBot: hello!": one "Role: content" line per message. */
export const DEFAULT_CHAT_TEMPLATE = "{Role}: {content}";
export const DEFAULT_CHAT_SEPARATOR = "\n";

/** The format a file name implies, or null when its extension says nothing. */
export function formatOfFile(file: string): InputFormat | null {
  const ext = extname(file).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson" || ext === ".json") return "jsonl";
  if (ext === ".csv") return "csv";
  if (ext === ".tsv" || ext === ".tab") return "tsv";
  if (ext === ".txt") return "text";
  return null;
}

/** TEXT arguments: each one text, as typed. */
export async function* textItems(texts: string[]): AsyncGenerator<InputItem> {
  for (const text of texts) yield { kind: "text", text };
}

/**
 * The records of a stream of lines. Throws (ending the job with one message) only for a problem
 * of the whole input: a CSV header without the text column. A bad record is an error item.
 */
export async function* inputItems(lines: AsyncIterable<Line>, spec: InputSpec): AsyncGenerator<InputItem> {
  const parse = recordParser(spec);
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    const item = parse(line, lineNo);
    if (item) yield item;
  }
  const last = parse(null, lineNo + 1);
  if (last) yield last;
}

/**
 * A parser fed one line at a time (null at the end of input); returns the record that line
 * completes, or null (a blank line, a header, a line inside a quoted CSV field).
 */
export function recordParser(spec: InputSpec): (line: Line | null, lineNo: number) => InputItem | null {
  if (spec.format === "csv" || spec.format === "tsv") return csvParser(spec, spec.format === "csv" ? "," : "\t");
  const render = (messages: unknown) => renderChat(messages, spec);
  return (line, lineNo) => {
    if (line === null) return null;
    if ("error" in line) return { kind: "error", error: line.error, line: lineNo };
    if (line.text.trim() === "") return null;
    if (spec.format === "text") return { kind: "text", text: line.text, line: lineNo };
    const item = jsonRecord(line.text, spec.textField, render);
    item.line = lineNo; // set, not spread: a spread copy per line doubled a long job's peak memory
    return item;
  };
}

type Item = InputItem;

function jsonRecord(text: string, textField: string | undefined, render: (m: unknown) => string | { error: string }): Item {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { kind: "error", error: `invalid JSON: ${(e as Error).message}` };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { kind: "error", error: `expected a JSON object with ${textField === undefined ? '"text", "messages" or "ids"' : `the field "${textField}"`}, got ${quote(json)}` };
  }
  const o = json as Record<string, unknown>;
  let key: string;
  let value: unknown;
  if (textField !== undefined) {
    key = textField.split(".")[0];
    value = atPath(o, textField);
    if (value === undefined) return { kind: "error", error: `no field "${textField}" in this object`, extra: o };
  } else {
    const present = ["text", "messages", "ids"].filter((k) => k in o);
    if (present.length > 1) return { kind: "error", error: `give one of "text", "messages" or "ids", not ${present.map((k) => `"${k}"`).join(" and ")}`, extra: o };
    if (present.length === 0) return { kind: "error", error: 'expected a JSON object with "text", "messages" or "ids" (or name the field with --text-field)', extra: o };
    key = present[0];
    value = o[key];
  }
  const extra = others(o, key);
  if (key === "ids" && textField === undefined) {
    if (!Array.isArray(value)) return { kind: "error", error: '"ids" must be an array of integers', extra };
    return { kind: "ids", ids: value as number[], extra };
  }
  if (typeof value === "string") return { kind: "text", text: value, extra };
  if (Array.isArray(value)) {
    const r = render(value);
    return typeof r === "string" ? { kind: "text", text: r, extra } : { kind: "error", error: r.error, extra };
  }
  const name = textField ?? key;
  return { kind: "error", error: `"${name}" must be a string${key === "text" && textField === undefined ? "" : " or chat messages"}, got ${quote(value)}`, extra };
}

/** The object's fields but `key`, or undefined when there are none (most lines: no object kept). */
function others(o: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  let extra: Record<string, unknown> | undefined;
  for (const k in o) {
    if (k === key || !Object.hasOwn(o, k)) continue;
    (extra ??= {})[k] = o[k];
  }
  return extra;
}

/** o.a.b for the path "a.b"; undefined when any step is missing or not an object. */
function atPath(o: Record<string, unknown>, path: string): unknown {
  let v: unknown = o;
  for (const step of path.split(".")) {
    if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.hasOwn(v, step)) return undefined;
    v = (v as Record<string, unknown>)[step];
  }
  return v;
}

/** Chat messages → one text, by the template; an error names the first message that does not fit. */
export function renderChat(messages: unknown, spec: Pick<InputSpec, "chatTemplate" | "chatSeparator" | "roles">): string | { error: string } {
  if (!Array.isArray(messages)) return { error: `chat messages must be an array of {"role", "content"}, got ${quote(messages)}` };
  if (messages.length === 0) return { error: "no chat messages: nothing to score" };
  const template = spec.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
  const parts: string[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (typeof m !== "object" || m === null || typeof m.role !== "string" || typeof m.content !== "string") {
      return { error: `chat message ${i} must be {"role": string, "content": string}, got ${quote(m)}` };
    }
    const role = spec.roles?.[m.role] ?? m.role;
    const Role = role.charAt(0).toUpperCase() + role.slice(1);
    const content = m.content;
    parts.push(template.replace(/\{(role|Role|content)\}/g, (_, name: string) => (name === "role" ? role : name === "Role" ? Role : content)));
  }
  return parts.join(spec.chatSeparator ?? DEFAULT_CHAT_SEPARATOR);
}

/** CSV/TSV: the first non-blank record is the header; later records become items. */
function csvParser(spec: InputSpec, sep: string): (line: Line | null, lineNo: number) => Item | null {
  const column = spec.textField ?? "text";
  const what = sep === "," ? "CSV" : "TSV";
  let header: string[] | null = null;
  let textAt = -1;
  /** A record whose quoted field is still open: its lines so far and where it began. */
  let open: { text: string; line: number } | null = null;
  return (line, lineNo) => {
    if (line === null) {
      if (!open) return null;
      const start = open.line;
      open = null;
      return { kind: "error", error: `${what} record starting here has a quoted field that never closes`, line: start };
    }
    if ("error" in line) {
      if (open) {
        const start = open.line;
        open = null;
        return { kind: "error", error: `${line.error} (inside the record starting on line ${start})`, line: start };
      }
      return { kind: "error", error: line.error, line: lineNo };
    }
    const text = open ? `${open.text}\n${line.text}` : line.text;
    const start = open ? open.line : lineNo;
    if (!open && text.trim() === "") return null;
    const fields = splitRecord(text, sep);
    if (fields === null) {
      open = { text, line: start };
      return null;
    }
    open = null;
    if (typeof fields === "string") return { kind: "error", error: `${what}: ${fields}`, line: start };
    if (header === null) {
      header = fields;
      textAt = header.indexOf(column);
      if (textAt < 0) throw new Gpt2RewardError(`${what} header has no column "${column}" (it has ${header.map((h) => JSON.stringify(h)).join(", ")}); name the text column with --text-field`);
      return null;
    }
    if (fields.length !== header.length) return { kind: "error", error: `${what} record has ${fields.length} field(s), the header has ${header.length}`, line: start };
    const extra: Record<string, unknown> = {};
    header.forEach((name, i) => {
      if (i !== textAt) extra[name] = fields[i];
    });
    return { kind: "text", text: fields[textAt], line: start, extra };
  };
}

/**
 * One record's fields (RFC 4180: a field in double quotes may hold the separator, line breaks
 * and "" for a quote). null when a quoted field is still open at the end (the record goes on on
 * the next line); a string saying what is wrong for a malformed record.
 */
export function splitRecord(text: string, sep: string): string[] | null | string {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = "";
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return null;
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      if (i < text.length && text[i] !== sep) return `a quoted field is followed by ${JSON.stringify(text[i])}, not the separator`;
      fields.push(value);
    } else {
      const end = text.indexOf(sep, i);
      const value = end < 0 ? text.slice(i) : text.slice(i, end);
      fields.push(value);
      i = end < 0 ? text.length : end;
    }
    if (i >= text.length) return fields;
    i++; // the separator
    if (i === text.length) {
      fields.push("");
      return fields;
    }
  }
}
