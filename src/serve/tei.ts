/**
 * Text Embeddings Inference's wire format (router/src/http/types.rs, server.rs at 1.9.3): how
 * /predict reads `inputs`, the errors and their statuses, and how scores become sorted
 * `{score, label}` lists. Only the shapes live here; src/serve/server.ts does the I/O.
 */
import { sigmoid, softmax } from "../model/rank.js";

/** TEI's JSON error: `{"error", "error_type"}` with the status TEI uses for that type. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly type: ErrorType, message: string) {
    super(message);
  }
}

export type ErrorType = "Empty" | "Validation" | "Tokenizer" | "Overloaded" | "Backend" | "Unhealthy" | "Unauthorized";

/** Errors TEI's framework (axum) answers in plain text: bad JSON (400), wrong shape (422), body too large (413), wrong content type (415). */
export class TextError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export const EXPECTED_INPUTS = "a string, a pair of strings [string, string] or a batch of mixed strings and pairs [[string], [string, string], ...]";

/** A wrong shape in the request body, named by its path as serde does (`inputs: invalid length 3, expected ...`). */
export function shapeError(path: string, problem: string): TextError {
  return new TextError(422, `Failed to deserialize the JSON body into the target type: ${path ? `${path}: ` : ""}${problem}`);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a sequence";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "number") return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === "boolean") return `boolean \`${v}\``;
  return "a map";
}

/** One sequence to score: a text, or a [text, text_pair] pair. */
export type Sequence = [string] | [string, string];

/**
 * /predict's `inputs`, decided by its form as TEI's visitor does: a string is one text; a list
 * whose first element is a string is one sequence of 1 or 2 strings (so ["a", "b"] is one PAIR,
 * not two texts); a list whose first element is a list is a batch of such sequences. The
 * response has the form of the input (a list, or a list of lists), whatever the count.
 */
export function parsePredictInputs(v: unknown): { batch: boolean; sequences: Sequence[] } {
  const invalid = (problem: string) => shapeError("inputs", `${problem}, expected ${EXPECTED_INPUTS}`);
  const sequence = (list: unknown[], where: string): Sequence => {
    if (list.length !== 1 && list.length !== 2) throw invalid(`invalid length ${list.length}`);
    for (const s of list) if (typeof s !== "string") throw shapeError(where, `invalid type: ${typeName(s)}, expected a string`);
    return list as Sequence;
  };
  if (typeof v === "string") return { batch: false, sequences: [[v]] };
  if (v === undefined) throw shapeError("", "missing field `inputs`");
  if (!Array.isArray(v)) throw invalid(`invalid type: ${typeName(v)}`);
  if (v.length === 0) throw invalid("invalid length 0");
  if (typeof v[0] === "string") return { batch: false, sequences: [sequence(v, "inputs")] };
  if (!Array.isArray(v[0])) throw invalid(`invalid type: ${typeName(v[0])}`);
  return {
    batch: true,
    sequences: v.map((item, i) => {
      if (!Array.isArray(item)) throw shapeError(`inputs[${i}]`, `invalid type: ${typeName(item)}, expected a sequence`);
      return sequence(item, `inputs[${i}]`);
    }),
  };
}

export type Direction = "left" | "right";

/** `truncation_direction`: exactly Left, left, Right or right (serde's variant names and aliases). */
export function parseDirection(v: unknown, fallback: Direction): Direction {
  if (v === undefined || v === null) return fallback;
  if (v === "Left" || v === "left") return "left";
  if (v === "Right" || v === "right") return "right";
  throw shapeError("truncation_direction", `unknown variant ${typeName(v).replace(/^string /, "")}, expected one of \`Left\`, \`left\`, \`Right\`, \`right\``);
}

export function optionalBool(body: Record<string, unknown>, name: string): boolean | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw shapeError(name, `invalid type: ${typeName(v)}, expected a boolean`);
  return v;
}

export function requiredString(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (v === undefined) throw shapeError("", `missing field \`${name}\``);
  if (typeof v !== "string") throw shapeError(name, `invalid type: ${typeName(v)}, expected a string`);
  return v;
}

export function requiredStrings(body: Record<string, unknown>, name: string): string[] {
  const v = body[name];
  if (v === undefined) throw shapeError("", `missing field \`${name}\``);
  if (!Array.isArray(v)) throw shapeError(name, `invalid type: ${typeName(v)}, expected a sequence`);
  v.forEach((s, i) => {
    if (typeof s !== "string") throw shapeError(`${name}[${i}]`, `invalid type: ${typeName(s)}, expected a string`);
  });
  return v as string[];
}

/** The body must be a JSON object (TEI's request types are structs). */
export function asObject(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw shapeError("", `invalid type: ${typeName(v)}, expected a map`);
  return v as Record<string, unknown>;
}


/** TEI's scores: raw logits, else sigmoid for one label and softmax for several. NaN is a 424, as in TEI. */
export function activate(logits: number[], rawScores: boolean): number[] {
  const scores = rawScores ? logits : logits.length === 1 ? logits.map(sigmoid) : softmax(logits);
  if (scores.some(Number.isNaN)) throw new ApiError(424, "Backend", "score is NaN");
  return scores;
}

/**
 * Indices sorted by score descending as TEI does it (a stable ascending sort, reversed), so
 * equal scores come out in reverse index order.
 */
export function descending(scores: number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b).reverse();
}

export function predictions(logits: number[], labels: string[], rawScores: boolean): { score: number; label: string }[] {
  const scores = activate(logits, rawScores);
  return descending(scores).map((i) => ({ score: scores[i], label: labels[i] }));
}
