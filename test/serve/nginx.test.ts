/**
 * Scale out, the real thing that runs here: two `gpt2-reward serve` replicas behind Debian's
 * nginx, all on 127.0.0.1. A bounded load goes through nginx, one replica is killed with SIGKILL
 * mid-load, and no client request may fail: nginx retries the scoring POST on the other replica
 * (`proxy_next_upstream error timeout non_idempotent`: scoring is idempotent, so a retry is safe),
 * and every answer is the CLI's line for that text, bit for bit. nginx runs deploy/nginx.conf, the
 * README's recipe, with our ports. Without nginx the test fails (.ci/system-deps installs it).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, FIXTURES, ROOT, jsonLines, runCli } from "../helpers/cli.js";

const NGINX = process.env.NGINX_PATH ?? "/usr/sbin/nginx";
const demo = join(FIXTURES, "models", "demo");

/** Mixed lengths, from one token to a few hundred (some cut to --max-length 256). */
const TEXTS = [
  "a",
  "User: hi\nBot: hello!",
  "User: hi\nBot: go away",
  "User: tell me a joke\nBot: Why did the chicken cross the road? To get to the other side.",
  "User: what's the weather like where you are?\nBot: Sunny and warm, perfect for a walk by the sea.",
  ...Array.from({ length: 5 }, (_, i) => `User: story ${i}, please\nBot: ` + "Once upon a time there was a model that scored replies. ".repeat(4 + 9 * i)),
];

/** A load bounded in count and in time. */
const REQUESTS = 160;
const CONCURRENCY = 8;
const KILL_AFTER = 40;
const DEADLINE_MS = 90_000;

const children: ChildProcess[] = [];
let nginx: ChildProcess | null = null;
const dir = mkdtempSync(join(tmpdir(), "gpt2-reward-nginx-"));
afterAll(async () => {
  // nginx first, with SIGTERM: its master then stops its workers (SIGKILL would orphan them, still listening).
  if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
    const exited = new Promise((resolve) => nginx!.once("exit", resolve));
    nginx.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a replica on a free loopback port; resolves with the port once its model is loaded. */
function startReplica(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CLI, "serve", "--model", demo, "--host", "127.0.0.1", "--port", "0", "--threads", "1"], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let stderr = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica not ready in 60 s: ${stderr}`)), 60_000);
    child.stderr!.on("data", (d) => {
      stderr += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m && /ready:/.test(stderr)) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on("exit", () => reject(new Error(`replica exited early: ${stderr}`)));
  });
}

/** A loopback port nothing listens on now (nginx cannot listen on port 0 and tell us which it got). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * deploy/nginx.conf (the README's recipe) with our ports, inside a main configuration whose every
 * path is in `dir`, so that it runs without touching /etc or /var.
 */
function nginxConf(port: number, replicas: number[]): string {
  let recipe = readFileSync(join(ROOT, "deploy", "nginx.conf"), "utf8");
  const ports = [...recipe.matchAll(/server 127\.0\.0\.1:(\d+)/g)].map((m) => m[1]);
  expect(ports).toHaveLength(replicas.length);
  ports.forEach((p, i) => (recipe = recipe.replace(`127.0.0.1:${p} `, `127.0.0.1:${replicas[i]} `)));
  expect(recipe).toMatch(/listen 127\.0\.0\.1:\d+;/);
  recipe = recipe.replace(/listen 127\.0\.0\.1:\d+;/, `listen 127.0.0.1:${port};`);
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${recipe}
}
`;
}

/** Starts nginx in the foreground; resolves once it answers on `port` (bounded: 100 tries, 10 s). */
async function startNginx(port: number, replicas: number[]): Promise<ChildProcess> {
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, nginxConf(port, replicas));
  // nginx's workers drop root for nobody, who must reach the temp folders it creates in here.
  chmodSync(dir, 0o755);
  const child = spawn(NGINX, ["-p", dir, "-c", conf, "-e", join(dir, "error.log")], { stdio: ["ignore", "ignore", "pipe"] });
  nginx = child;
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "";
  throw new Error(`nginx did not answer on 127.0.0.1:${port} (exit code ${child.exitCode}): ${stderr}${log}`);
}

describe("two replicas behind nginx", () => {
  it("a replica killed with SIGKILL mid-load loses no request, and every answer is the CLI's line", async () => {
    expect(existsSync(NGINX), `${NGINX} is missing: apt-get install -y nginx, or set NGINX_PATH`).toBe(true);
    // What the CLI writes for each text, in one job.
    const cli = runCli(["score", "--model", demo, "--threads", "1", "--quiet", ...TEXTS]);
    expect(cli.status, cli.stderr).toBe(0);
    const expected = jsonLines(cli.stdout).map(({ index: _, ...line }) => line);
    expect(expected).toHaveLength(TEXTS.length);

    const [a, b] = await Promise.all([startReplica(), startReplica()]);
    const port = await freePort();
    await startNginx(port, [a.port, b.port]);

    const upstreams: string[] = [];
    const failures: string[] = [];
    let sent = 0;
    let answered = 0;
    let answeredBeforeKill: string[] = [];
    const deadline = Date.now() + DEADLINE_MS;
    const client = async () => {
      while (sent < REQUESTS && Date.now() < deadline) {
        const i = sent++;
        const t = i % TEXTS.length;
        try {
          const r = await fetch(`http://127.0.0.1:${port}/score`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ texts: [TEXTS[t]] }),
            signal: AbortSignal.timeout(60_000),
          });
          const body = await r.text();
          upstreams.push(r.headers.get("x-upstream") ?? "");
          if (r.status !== 200) failures.push(`request ${i}: HTTP ${r.status} ${body}`);
          else {
            const { index, ...line } = JSON.parse(body);
            if (index !== 0 || JSON.stringify(line) !== JSON.stringify(expected[t])) failures.push(`request ${i}: ${body} is not the CLI's ${JSON.stringify(expected[t])}`);
          }
        } catch (e) {
          failures.push(`request ${i}: ${(e as Error).message}`);
        }
        if (++answered === KILL_AFTER) {
          answeredBeforeKill = [...upstreams];
          a.child.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));

    expect(failures).toEqual([]);
    expect(answered).toBe(REQUESTS);
    expect(a.child.signalCode).toBe("SIGKILL");
    // Both replicas took load before the kill, and nginx moved at least one request from the
    // killed replica to the other ($upstream_addr lists every replica a request was sent to).
    expect(new Set(answeredBeforeKill.flatMap((u) => u.split(", ")))).toEqual(new Set([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]));
    expect(upstreams.filter((u) => u === `127.0.0.1:${a.port}, 127.0.0.1:${b.port}`).length).toBeGreaterThan(0);
  });
});
