/**
 * Input lines of `score` and `tokenize`: `{"text": "..."}` or `{"ids": [...]}`, one JSON object a
 * line. A bad line becomes an error for that line only; the job goes on.
 */
export type InputItem = { kind: "text"; text: string } | { kind: "ids"; ids: number[] } | { kind: "error"; error: string };

export function parseInputLine(line: string): InputItem {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (e) {
    return { kind: "error", error: `invalid JSON: ${(e as Error).message}` };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return { kind: "error", error: 'expected a JSON object with "text" or "ids"' };
  const o = json as Record<string, unknown>;
  if ("text" in o && "ids" in o) return { kind: "error", error: 'give "text" or "ids", not both' };
  if ("text" in o) {
    if (typeof o.text !== "string") return { kind: "error", error: '"text" must be a string' };
    return { kind: "text", text: o.text };
  }
  if ("ids" in o) {
    if (!Array.isArray(o.ids)) return { kind: "error", error: '"ids" must be an array of integers' };
    return { kind: "ids", ids: o.ids as number[] };
  }
  return { kind: "error", error: 'expected a JSON object with "text" or "ids"' };
}
