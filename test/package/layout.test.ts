/**
 * The README's "Layout" table, checked against the tree: each source folder imports only from the
 * folders below it in the table (and src/errors.ts), every source file is named in its folder's
 * row, and every folder of source has a row. Imports are read from the text (`import … from`,
 * `export … from`, `import "…"`, `import("…")`), relative ones resolved to files.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/cli.js";

const SOURCE = /\.(ts|mjs|js|html|css|md)$/;
const CODE = /\.(ts|mjs|js)$/;

/** The table's rows, in order: folder (with its trailing "/") and its text. */
function tableRows(): { folder: string; text: string }[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Layout\n"));
  const table = section.slice(0, section.indexOf("\n## ", 4) === -1 ? undefined : section.indexOf("\n## ", 4));
  return [...table.matchAll(/^\| `([^`]+\/)` \| (.*) \|$/gm)].map((m) => ({ folder: m[1], text: m[2] }));
}

const rows = tableRows();
/** test/, bench/ and fixtures/ use everything; the order holds for the rows above them. */
const ordered = rows.slice(0, rows.findIndex((r) => r.folder === "test/"));
/** The package's entry points sit in src/ beside the entry folder, and rank with it. */
const ENTRY_FOLDER = "src/entries/";
const ANYWHERE = "src/errors.ts";

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = `${dir}${name}`;
    return statSync(join(ROOT, path)).isDirectory() ? filesUnder(`${path}/`) : [path];
  });
}

/** The row a file belongs to: the longest folder that holds it (src/index*.ts: the entry folder's). */
function rowOf(file: string): number {
  if (/^src\/index(\.browser)?\.ts$/.test(file)) return ordered.findIndex((r) => r.folder === ENTRY_FOLDER);
  let best = -1;
  ordered.forEach((r, i) => {
    if (file.startsWith(r.folder) && (best < 0 || r.folder.length > ordered[best].folder.length)) best = i;
  });
  return best;
}

/** The files `file` imports, relative to the repository root (packages are left out). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const specs = [
    ...text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/gm),
    ...text.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1]);
  return specs
    .filter((s) => s.startsWith("."))
    .map((s) => {
      const target = relative(ROOT, resolve(ROOT, dirname(file), s));
      const candidates = [target, target.replace(/\.js$/, ".ts"), target.replace(/\.mjs$/, ".mts")];
      return candidates.find((c) => existsSync(join(ROOT, c)) && statSync(join(ROOT, c)).isFile()) ?? `${target} (missing)`;
    });
}

describe("the README's layout table", () => {
  it("lists the folders of source from the entry points down to kernels/", () => {
    expect(ordered.map((r) => r.folder)).toEqual(expect.arrayContaining([ENTRY_FOLDER, "src/cli/", "src/model/", "src/platform/", "src/formats/", "kernels/"]));
    const codeFolders = [...new Set([...filesUnder("src/"), ...filesUnder("kernels/")].filter((f) => CODE.test(f) && f !== ANYWHERE && !/^src\/index/.test(f)).map((f) => f.slice(0, f.lastIndexOf("/") + 1)))];
    for (const folder of codeFolders) expect(rowOf(`${folder}x.ts`), `${folder} has no row`).toBeGreaterThanOrEqual(0);
  });

  it("names every folder of test/ in its row", () => {
    const row = rows.find((r) => r.folder === "test/")!;
    const entries = readdirSync(join(ROOT, "test")).map((name) => (statSync(join(ROOT, "test", name)).isDirectory() ? `${name}/` : name));
    expect(entries.filter((name) => !row.text.includes(`\`${name}\``))).toEqual([]);
  });

  it("names every source file in its folder's row", () => {
    const missing: string[] = [];
    for (const row of ordered) {
      for (const file of filesUnder(row.folder).filter((f) => SOURCE.test(f))) {
        if (rowOf(file) !== ordered.indexOf(row)) continue; // a subfolder with a row of its own
        const name = file.slice(file.lastIndexOf("/") + 1);
        const stem = name.replace(SOURCE, "");
        const named = new RegExp(`\`(${escape(name)}|${escape(stem)})\``).test(row.text) || new RegExp(`\`${escape(file.slice(row.folder.length))}\``).test(row.text);
        if (!named) missing.push(file);
      }
    }
    expect(missing).toEqual([]);
  });

  it("names no file that is not there", () => {
    const gone: string[] = [];
    for (const row of rows) {
      const here = existsSync(join(ROOT, row.folder)) ? filesUnder(row.folder) : [];
      for (const [, name] of row.text.matchAll(/`([\w./-]+\.(?:ts|mjs|js|html|css|md|py))`/g)) {
        if (!existsSync(join(ROOT, name)) && !here.some((f) => f === row.folder + name || f.endsWith(`/${name}`))) gone.push(`${row.folder}: ${name}`);
      }
    }
    expect(gone).toEqual([]);
  });

  it("matches the imports: each folder imports only from the folders below it (and src/errors.ts)", () => {
    const upward: string[] = [];
    for (const row of ordered) {
      for (const file of filesUnder(row.folder).filter((f) => CODE.test(f))) {
        const from = rowOf(file);
        for (const target of importsOf(file)) {
          expect(target, `${file} imports a file that does not exist`).not.toMatch(/\(missing\)$/);
          if (target === ANYWHERE) continue;
          const to = rowOf(target);
          if (to >= 0 && to < from) upward.push(`${file} → ${target} (${ordered[from].folder} imports ${ordered[to].folder}, above it)`);
        }
      }
    }
    for (const entry of ["src/index.ts", "src/index.browser.ts"]) {
      for (const target of importsOf(entry).filter((t) => t !== ANYWHERE)) expect(rowOf(target), `${entry} → ${target}`).toBeGreaterThanOrEqual(rowOf(entry));
    }
    expect(upward).toEqual([]);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
