/** Plain-text tables for the terminal: a title, a header row, columns padded to fit. */

/** Columns whose cells all look numeric (digits, ±, %, ×, 1e-3, "—") are right-aligned. */
export function formatTable(title: string, header: string[], rows: string[][], notes: string[] = []): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((r) => /^[-+±<>≤≥~×xe.\d%—*\s]*$/.test(r[c] ?? "")));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join("  ").trimEnd();
  const out = [title, line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
  for (const n of notes) out.push(`  ${n}`);
  return out.join("\n") + "\n";
}

/** A number with `digits` decimals, or "—" when absent. */
export function fixed(x: number | null | undefined, digits: number): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(digits);
}

/** A small absolute difference in compact scientific notation ("3.1e-7", "0"). */
export function sci(x: number | null | undefined): string {
  if (x === null || x === undefined) return "—";
  return x === 0 ? "0" : x.toExponential(1);
}
