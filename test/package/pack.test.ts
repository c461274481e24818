/**
 * The package as users get it: `npm pack` the built tree, install the tarball in a fresh project,
 * then import it, require it, run its bin, and type-check a user's file against its types with
 * skipLibCheck off and no DOM lib. Dependencies resolve from the npm cache (or the registry).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, jsonLines, ROOT, runCli } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "gpt2-reward-pack-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 300_000, env: { ...process.env, npm_config_update_notifier: "false" } });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}
const npm = (args: string[], cwd: string) => run(process.platform === "win32" ? "npm.cmd" : "npm", args, cwd);

describe("the packed package", () => {
  it("holds only what users need: the built code and types, the demo model, the README; no source maps", () => {
    const r = npm(["pack", "--dry-run", "--json", "--ignore-scripts"], ROOT);
    expect(r.status, r.stderr).toBe(0);
    const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(files.filter((f) => !/^(dist\/(src|kernels|browser)\/|fixtures\/models\/demo\/|README\.md$|package\.json$|LICENSE)/.test(f))).toEqual([]);
    for (const f of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli/main.js", "fixtures/models/demo/model.safetensors"]) expect(files).toContain(f);
    expect(pkg.scripts.prepare).toBeUndefined(); // installing the tarball must not try to build it
    expect(pkg.scripts.prepack).toMatch(/npm run build/);
  });

  it("installs from its tarball, and works imported, required, as a bin, and type-checked without the DOM lib", () => {
    const packed = npm(["pack", "--ignore-scripts", "--pack-destination", tmp], ROOT);
    expect(packed.status, packed.stderr).toBe(0);
    const tarball = join(tmp, packed.stdout.trim().split("\n").pop()!);
    const project = join(tmp, "project");
    const setup = run(process.execPath, ["-e", `require("node:fs").mkdirSync(${JSON.stringify(project)})`], tmp);
    expect(setup.status).toBe(0);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
    const installed = npm(["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], project);
    expect(installed.status, installed.stderr).toBe(0);
    expect(installed.stderr).not.toMatch(/prepare/);

    // The same logits as the repository's CLI, through import() and require().
    const demo = join(project, "node_modules", "gpt2-reward", "fixtures", "models", "demo");
    const expected = jsonLines(runCli(["score", "-m", join(FIXTURES, "models", "demo"), "-t", "1", "User: hi\nBot: hello!"]).stdout)[0].logits;
    const script = (load: string) =>
      `${load}.then(async (m) => { const model = await m.RewardModel.fromPretrained(${JSON.stringify(demo)}, { threads: 1 });
        const [r] = await model.score(["User: hi\\nBot: hello!"]); await model.close(); console.log(JSON.stringify(r.logits)); })`;
    const imported = run(process.execPath, ["--input-type=module", "-e", script('import("gpt2-reward")')], project);
    expect(imported.status, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toEqual(expected);
    // require() of this ES module: Node loads it synchronously from 20.19 on, which is what "engines" says.
    expect(pkg.engines.node).toBe(">=20.19");
    const required = run(process.execPath, ["-e", script('Promise.resolve(require("gpt2-reward"))')], project);
    expect(required.status, required.stderr).toBe(0);
    expect(JSON.parse(required.stdout)).toEqual(expected);

    const bin = run(join(project, "node_modules", ".bin", process.platform === "win32" ? "gpt2-reward.cmd" : "gpt2-reward"), ["--version"], project);
    expect(bin.stdout).toBe(`${pkg.version}\n`);

    writeFileSync(join(project, "index.ts"), [
      'import { RewardModel, type ScoreResult } from "gpt2-reward";',
      "export async function count(dir: string, texts: string[]): Promise<number> {",
      "  const model = await RewardModel.fromPretrained(dir);",
      "  const results: ScoreResult[] = await model.score(texts);",
      "  await model.close();",
      "  return results.length;",
      "}",
    ].join("\n"));
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", lib: ["ES2022"], types: ["node"],
        typeRoots: [join(ROOT, "node_modules", "@types")], strict: true, skipLibCheck: false, noEmit: true,
      },
      files: ["index.ts"],
    }));
    const tsc = run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], project);
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
  }, 600_000);
});
