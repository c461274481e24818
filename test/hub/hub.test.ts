import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inspectHubModel, isHubRepoId, resolveHubModel, type HubOptions } from "../../src/hub/hub.js";
import { Gpt2RewardError, Interrupted } from "../../src/errors.js";
import { MAX_JSON_BYTES } from "../../src/formats/checkpoint.js";
import { checkpointTensors } from "../helpers/tensors.js";
import { readSafetensorsHeader } from "../../src/formats/safetensors.js";
import { filesFromFolder, gitBlobSha1, makeSafetensors, sha256Hex, startFakeHub, type FakeHub, type FakeRepo } from "../helpers/fake-hub.js";

const enc = (s: string) => new TextEncoder().encode(s);
const CONFIG = enc(JSON.stringify({ model_type: "gpt2", n_embd: 8, n_layer: 1, n_head: 2, num_labels: 1 }));
const WEIGHTS = makeSafetensors({ "transformer.wte.weight": [64, 8], "score.weight": [1, 8] }); // > 1 KiB: an LFS file
const REPO = "acme/reward";

let cache: string;
let hub: FakeHub | undefined;

beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), "hub-test-"));
  // A developer's own Hub settings must not leak into these tests.
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_IMPLICIT_TOKEN"]) {
    vi.stubEnv(name, "");
  }
  vi.stubEnv("HF_TOKEN_PATH", join(cache, "no-token-here")); // nor their `hf auth login` token file
});

afterEach(async () => {
  await hub?.close();
  hub = undefined;
  vi.unstubAllEnvs();
  rmSync(cache, { recursive: true, force: true });
});

async function start(repos: Record<string, FakeRepo>, renamed?: Record<string, string>): Promise<FakeHub> {
  hub = await startFakeHub({ repos, renamed });
  return hub;
}

function opts(h: FakeHub, extra: HubOptions = {}): HubOptions {
  return { cacheDir: cache, endpoint: h.url, fetch: h.fetch, ...extra };
}

/** Byte-for-byte; Buffer.equals, because a deep toEqual over megabytes takes minutes. */
function expectFileBytes(path: string, bytes: Uint8Array): void {
  const got = readFileSync(path);
  expect(got.length).toBe(bytes.length);
  expect(got.equals(bytes)).toBe(true);
}

const repoDir = (repo = REPO) => join(cache, `models--${repo.replace("/", "--")}`);

describe("resolveHubModel: downloading into the Hugging Face cache", () => {
  it("lays files out as blobs/, snapshots/<commit>/ symlinks and refs/main, byte-identical", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const seen: Array<[string, number, number | undefined]> = [];
    const model = await resolveHubModel(REPO, opts(h, { progress: (f, d, t) => seen.push([f, d, t]) }));

    const commit = h.head(REPO);
    const dir = repoDir();
    expect(model).toEqual({ dir: join(dir, "snapshots", commit), repo: REPO, revision: "main", commit, files: ["config.json", "model.safetensors"] });
    expect(readFileSync(join(dir, "refs", "main"), "utf8")).toBe(commit);
    // Small files are named by their git blob sha1, LFS files by their sha256 — as Python names them.
    expect(readdirSync(join(dir, "blobs")).sort()).toEqual([gitBlobSha1(CONFIG), sha256Hex(WEIGHTS)].sort());
    expect(readlinkSync(join(model.dir, "config.json"))).toBe(`../../blobs/${gitBlobSha1(CONFIG)}`);
    expect(readlinkSync(join(model.dir, "model.safetensors"))).toBe(`../../blobs/${sha256Hex(WEIGHTS)}`);
    expect(lstatSync(join(model.dir, "model.safetensors")).isSymbolicLink()).toBe(true);
    expectFileBytes(join(model.dir, "config.json"), CONFIG);
    expectFileBytes(join(model.dir, "model.safetensors"), WEIGHTS);
    expect(seen.at(-1)).toEqual(["model.safetensors", WEIGHTS.length, WEIGHTS.length]);
    // The token-less CDN GET is the only download of the weights.
    expect(h.count("GET", "/lfs-cdn/")).toBe(1);
  });

  it("sends one HEAD and no GET for a cached branch, and no request at all for a cached commit", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const first = await resolveHubModel(REPO, opts(h));
    const before = h.requests.length;

    const again = await resolveHubModel(REPO, opts(h));
    expect(again).toEqual(first);
    expect(h.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([
      `HEAD /${REPO}/resolve/main/config.json`,
    ]);

    const pinned = await resolveHubModel(`${REPO}@${first.commit}`, opts(h));
    expect(pinned.dir).toBe(first.dir);
    expect(h.requests.length).toBe(before + 1);
  });

  it("follows a branch that moved: new snapshot, refs/main updated, unchanged blobs not downloaded again", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const first = await resolveHubModel(REPO, opts(h));
    const config2 = enc(JSON.stringify({ model_type: "gpt2", n_embd: 8, n_layer: 1, n_head: 2, num_labels: 1, note: 2 }));
    const second = h.push(REPO, { "config.json": config2, "model.safetensors": WEIGHTS });

    const model = await resolveHubModel(REPO, opts(h));
    expect(model.commit).toBe(second);
    expect(model.dir).not.toBe(first.dir);
    expect(readFileSync(join(repoDir(), "refs", "main"), "utf8")).toBe(second);
    expectFileBytes(join(model.dir, "config.json"), config2);
    expect(h.count("GET", "/lfs-cdn/")).toBe(1); // the weights blob was already cached
  });

  it("reuses a snapshot laid out by Python's huggingface_hub without downloading anything", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const commit = h.head(REPO);
    const dir = repoDir();
    mkdirSync(join(dir, "blobs"), { recursive: true });
    mkdirSync(join(dir, "snapshots", commit), { recursive: true });
    mkdirSync(join(dir, "refs"), { recursive: true });
    for (const [file, bytes, etag] of [["config.json", CONFIG, gitBlobSha1(CONFIG)], ["model.safetensors", WEIGHTS, sha256Hex(WEIGHTS)]] as const) {
      writeFileSync(join(dir, "blobs", etag), bytes);
      symlinkSync(`../../blobs/${etag}`, join(dir, "snapshots", commit, file));
    }
    writeFileSync(join(dir, "refs", "main"), commit);

    const model = await resolveHubModel(REPO, opts(h));
    expect(model.dir).toBe(join(dir, "snapshots", commit));
    expect(h.count("GET")).toBe(0);
    expect(h.count("HEAD")).toBe(1);
  });

  it("downloads an index and every shard it names", async () => {
    const shard1 = makeSafetensors({ "transformer.wte.weight": [64, 8] });
    const shard2 = makeSafetensors({ "score.weight": [1, 8] });
    const index = enc(JSON.stringify({
      metadata: { total_size: 0 },
      weight_map: {
        "transformer.wte.weight": "model-00001-of-00002.safetensors",
        "score.weight": "model-00002-of-00002.safetensors",
      },
    }));
    const files = {
      "config.json": CONFIG,
      "model.safetensors.index.json": index,
      "model-00001-of-00002.safetensors": shard1,
      "model-00002-of-00002.safetensors": shard2,
    };
    const h = await start({ [REPO]: { files } });

    const model = await resolveHubModel(REPO, opts(h));
    expect(model.files).toEqual(["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    for (const f of model.files) expectFileBytes(join(model.dir, f), files[f as keyof typeof files]);
    // model.safetensors is absent: remembered like Python does, so a pinned re-run asks nothing.
    expect(existsSync(join(repoDir(), ".no_exist", h.head(REPO), "model.safetensors"))).toBe(true);
    const before = h.requests.length;
    await resolveHubModel(`${REPO}@${model.commit}`, opts(h));
    expect(h.requests.length).toBe(before);
  });

  it("falls back to pytorch_model.bin when the repo has no safetensors", async () => {
    const bin = new Uint8Array(4096).map((_, i) => i % 251);
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "pytorch_model.bin": bin } } });
    const model = await resolveHubModel(REPO, opts(h));
    expect(model.files).toEqual(["config.json", "pytorch_model.bin"]);
    expectFileBytes(join(model.dir, "pytorch_model.bin"), bin);
    const before = h.requests.length;
    await resolveHubModel(`${REPO}@${model.commit}`, opts(h));
    expect(h.requests.length).toBe(before);
  });

  it("follows the Hub's relative redirect for a renamed repo", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } }, { "acme/old-name": REPO });
    const model = await resolveHubModel("acme/old-name", opts(h));
    expectFileBytes(join(model.dir, "model.safetensors"), WEIGHTS);
    expect(model.dir).toContain("models--acme--old-name");
  });
});

describe("resolveHubModel: interrupted, stalled and hostile downloads", () => {
  const sha = sha256Hex(WEIGHTS);
  const incomplete = () => join(repoDir(), "blobs", `${sha}.incomplete`);
  const cdnGets = (h: FakeHub) => h.requests.filter((r) => r.method === "GET" && r.path.includes("/lfs-cdn/"));

  /** The next run completes the download by asking only for the bytes it lacks (all of them from 0). */
  async function expectResumed(h: FakeHub, from: number): Promise<void> {
    const model = await resolveHubModel(REPO, opts(h));
    expectFileBytes(join(model.dir, "model.safetensors"), WEIGHTS);
    const last = cdnGets(h).at(-1)!;
    expect(last.range).toBe(from > 0 ? `bytes=${from}-` : undefined);
    expect(last.bytes).toBe(WEIGHTS.length - from);
    expect(readdirSync(join(repoDir(), "blobs")).sort()).toEqual([gitBlobSha1(CONFIG), sha].sort()); // no .incomplete, no .lock
  }

  it("keeps a dropped download's bytes under a fixed .incomplete name, and the next run resumes them with Range", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    h.cutNextDownload("model.safetensors", 1000);
    await expect(resolveHubModel(REPO, opts(h))).rejects.toThrow(/^download of model\.safetensors from acme\/reward failed after 1000 of \d+ bytes \(.+\); the part is kept in .+\.incomplete and the next run resumes it$/);
    expect(readFileSync(incomplete()).length).toBe(1000);
    expect(existsSync(join(repoDir(), "snapshots", h.head(REPO), "model.safetensors"))).toBe(false);
    await expectResumed(h, 1000);
  });

  it("drops a server that trickles (too few bytes per progress window), and resumes later", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    h.trickleNextDownload("model.safetensors", 10, 40);
    const limits = { idleMs: 5000, windowMs: 400, minBytesPerWindow: 1000 };
    await expect(resolveHubModel(REPO, opts(h, { limits }))).rejects.toThrow(/failed after \d+ of \d+ bytes \(only \d+ bytes in 0\.4 s, slower than the 1000 bytes per 0\.4 s a download must keep up\); the part is kept/);
    const kept = readFileSync(incomplete()).length;
    expect(kept).toBeGreaterThan(0);
    await expectResumed(h, kept);
  });

  it("drops a server that stops sending after the idle timeout", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    h.trickleNextDownload("model.safetensors", 100, 60_000);
    const limits = { idleMs: 300, windowMs: 60_000, minBytesPerWindow: 1 };
    await expect(resolveHubModel(REPO, opts(h, { limits }))).rejects.toThrow(/^download of model\.safetensors from acme\/reward failed after 0 of \d+ bytes \(no data for 0\.3 s\); nothing was kept, run again to retry$/);
    expect(existsSync(incomplete())).toBe(false);
  });

  it("aborts a body longer than announced at the announced size, and keeps none of it", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    h.padNextDownload("model.safetensors", 1 << 30);
    await expect(resolveHubModel(REPO, opts(h))).rejects.toThrow(/failed after \d+ of \d+ bytes \(the server sent more than the \d+ bytes it announced\); nothing was kept/);
    expect(existsSync(incomplete())).toBe(false);
    expect(h.bytesServed("/lfs-cdn/")).toBeLessThan(64 << 20); // not the 1 GiB on offer
    await expectResumed(h, 0);
  });

  it("stops a download when its signal fires (Ctrl-C), keeps the part, and the next run resumes it", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    h.trickleNextDownload("model.safetensors", 100, 20);
    const ctrlC = new AbortController();
    const progress = (file: string, done: number) => void (file === "model.safetensors" && done >= 500 && ctrlC.abort());
    const stopped = resolveHubModel(REPO, opts(h, { signal: ctrlC.signal, progress }));
    await expect(stopped).rejects.toThrow(/^download of model\.safetensors from acme\/reward interrupted after \d+ of \d+ bytes \(interrupted\); the part is kept/);
    await expect(stopped).rejects.toBeInstanceOf(Interrupted); // the CLI's exit status 130
    await expectResumed(h, readFileSync(incomplete()).length);
  });

  it("two downloads of one file at once: one downloads, the other waits for its blob", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    h.trickleNextDownload("model.safetensors", 500, 20);
    const [a, b] = await Promise.all([resolveHubModel(REPO, opts(h)), resolveHubModel(REPO, opts(h))]);
    expect(a).toEqual(b);
    expectFileBytes(join(a.dir, "model.safetensors"), WEIGHTS);
    expect(cdnGets(h)).toHaveLength(1);
  });

  it("sends the token to the endpoint's origin only: not along a protocol-relative redirect to another host", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const other = new URL(h.cdnUrl).host;
    h.redirectNextDownload("config.json", `//${other}/${REPO}/resolve/${h.head(REPO)}/config.json`);
    const model = await resolveHubModel(REPO, opts(h, { token: "hf_secret" }));
    expectFileBytes(join(model.dir, "config.json"), CONFIG);
    expect(h.requests.filter((r) => r.host === other && r.path.includes("/resolve/"))).toHaveLength(1);
    expect(h.requests.filter((r) => r.host === other && r.authorized)).toEqual([]);
    expect(h.requests.filter((r) => r.host !== other && r.authorized).length).toBeGreaterThan(0);

    // A HEAD answered with a protocol-relative redirect (a repo "moved" to another host) is not followed with the token either.
    h.renamed["acme/old"] = `//${other}/${REPO}`;
    await expect(resolveHubModel("acme/old", opts(h, { token: "hf_secret" }))).rejects.toThrow(/does not answer like the Hugging Face Hub/);
    expect(h.requests.filter((r) => r.host === other && r.authorized)).toEqual([]);
  });

  it("refuses a config.json larger than the cap before downloading a byte of it", async () => {
    const huge = new Uint8Array(MAX_JSON_BYTES + 1).fill(0x20);
    const h = await start({ [REPO]: { files: { "config.json": huge, "model.safetensors": WEIGHTS } } });
    await expect(resolveHubModel(REPO, opts(h))).rejects.toThrow(`acme/reward@main: config.json is ${MAX_JSON_BYTES + 1} bytes on ${h.url}, more than the ${MAX_JSON_BYTES} a JSON file of a model may have; refusing to download it`);
    expect(h.count("GET")).toBe(0);
  });

  it("an .incomplete or its lock planted as a FIFO, a folder or a link outside the cache is replaced, never followed or waited on", async () => {
    const outside = mkdtempSync(join(tmpdir(), "hub-outside-"));
    try {
      for (const planted of [`${sha}.incomplete`, `${sha}.incomplete.lock`]) {
        for (const kind of ["fifo", "folder", "link"]) {
          rmSync(repoDir(), { recursive: true, force: true });
          const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
          const blobs = join(repoDir(), "blobs");
          mkdirSync(blobs, { recursive: true });
          const victim = join(outside, "victim");
          writeFileSync(victim, "keep me\n");
          if (kind === "fifo") execFileSync("mkfifo", [join(blobs, planted)]);
          if (kind === "folder") mkdirSync(join(blobs, planted));
          if (kind === "link") symlinkSync(victim, join(blobs, planted));
          const model = await resolveHubModel(REPO, opts(h));
          expectFileBytes(join(model.dir, "model.safetensors"), WEIGHTS);
          expect(readFileSync(victim, "utf8"), `${planted} as a ${kind}`).toBe("keep me\n");
          expect(readdirSync(blobs).sort()).toEqual([gitBlobSha1(CONFIG), sha].sort());
          await h.close();
          hub = undefined;
        }
      }
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  }, 60_000);

  it("refuses to write through a snapshot folder that links outside the cache", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const outside = mkdtempSync(join(tmpdir(), "hub-outside-"));
    try {
      mkdirSync(join(repoDir(), "snapshots"), { recursive: true });
      symlinkSync(outside, join(repoDir(), "snapshots", h.head(REPO)));
      await expect(resolveHubModel(REPO, opts(h))).rejects.toThrow(/resolves to .+, outside the Hub cache .+; refusing to write there/);
      expect(readdirSync(outside)).toEqual([]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe("resolveHubModel: offline and unreachable", () => {
  it("with HF_HUB_OFFLINE=1 answers from the cache with no request", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const first = await resolveHubModel(REPO, opts(h));
    const before = h.requests.length;
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    expect(await resolveHubModel(REPO, opts(h))).toEqual(first);
    expect(h.requests.length).toBe(before);
  });

  it("offline, names the ref or the file missing from the cache and where it looked", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    await expect(resolveHubModel(REPO, opts(h, { offline: true }))).rejects.toThrow(
      `offline mode is on and ${REPO}@main is not in the cache (looked for ${join(repoDir(), "refs", "main")})`,
    );
    const model = await resolveHubModel(REPO, opts(h));
    rmSync(join(model.dir, "config.json"));
    vi.stubEnv("HF_HUB_OFFLINE", "true");
    await expect(resolveHubModel(REPO, opts(h))).rejects.toThrow(
      `HF_HUB_OFFLINE is set and config.json of ${REPO}@main is not in the cache (looked for ${join(model.dir, "config.json")})`,
    );
    expect(h.requests.filter((r) => r.method === "HEAD").length).toBe(2); // both from the one online run
  });

  it("without network, uses the cache, and says both things when the cache lacks the file", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    const first = await resolveHubModel(REPO, opts(h));
    const url = h.url;
    await h.close();
    hub = undefined;
    const offlineOpts = { cacheDir: cache, endpoint: url };
    expect(await resolveHubModel(REPO, offlineOpts)).toEqual(first);
    const err = await resolveHubModel("acme/other", offlineOpts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Gpt2RewardError);
    expect((err as Error).message).toMatch(
      /^cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) and acme\/other@main is not in the cache \(looked for .*refs\/main\)$/,
    );
  });
});

describe("resolveHubModel: access and missing things", () => {
  it("a gated repo without a token says to set HF_TOKEN; with one it downloads, and the token never goes to the CDN", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS }, token: "hf_secret" } });
    await expect(resolveHubModel(REPO, opts(h))).rejects.toThrow(
      `${REPO} is a gated repo (HTTP 401 for config.json): set HF_TOKEN to a token that can read it`,
    );
    await expect(resolveHubModel(REPO, opts(h, { token: "hf_wrong" }))).rejects.toThrow(/has no access to it/);

    vi.stubEnv("HF_TOKEN", "hf_secret");
    const model = await resolveHubModel(REPO, opts(h));
    expectFileBytes(join(model.dir, "model.safetensors"), WEIGHTS);
    const cdn = h.requests.filter((r) => r.path.startsWith("/lfs-cdn/"));
    expect(cdn.length).toBe(1);
    expect(cdn[0].authorized).toBe(false);
  });

  it("takes the token from the file `hf auth login` writes when the environment has none", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS }, token: "hf_secret" } });
    const tokenFile = join(cache, "token");
    writeFileSync(tokenFile, "hf_secret\n");
    vi.stubEnv("HF_TOKEN_PATH", tokenFile);
    await expect(resolveHubModel(REPO, opts(h))).resolves.toMatchObject({ files: ["config.json", "model.safetensors"] });

    // $HF_HOME/token when HF_TOKEN_PATH is not set
    vi.stubEnv("HF_TOKEN_PATH", "");
    vi.stubEnv("HF_HOME", cache);
    await expect(resolveHubModel(`${REPO}@${h.head(REPO)}`, opts(h, { cacheDir: join(cache, "other") }))).resolves.toMatchObject({ files: ["config.json", "model.safetensors"] });

    // a stale token in the file is named in the error
    writeFileSync(tokenFile, "hf_stale");
    await expect(resolveHubModel(REPO, opts(h, { cacheDir: join(cache, "third") }))).rejects.toThrow(`the token sent (the token in ${tokenFile}) has no access to it`);

    // HF_TOKEN comes first; HF_HUB_DISABLE_IMPLICIT_TOKEN sends none at all
    vi.stubEnv("HF_TOKEN", "hf_secret");
    await expect(resolveHubModel(REPO, opts(h, { cacheDir: join(cache, "fourth") }))).resolves.toMatchObject({ files: ["config.json", "model.safetensors"] });
    vi.stubEnv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1");
    await expect(resolveHubModel(REPO, opts(h, { cacheDir: join(cache, "fifth") }))).rejects.toThrow(/is a gated repo .* set HF_TOKEN/);
    expect(h.requests.filter((r) => r.authorized).length).toBeGreaterThan(0);
  });

  it("HUGGING_FACE_HUB_TOKEN works too", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS }, token: "hf_secret" } });
    vi.stubEnv("HUGGING_FACE_HUB_TOKEN", "hf_secret");
    await expect(resolveHubModel(REPO, opts(h))).resolves.toMatchObject({ files: ["config.json", "model.safetensors"] });
  });

  it("names the missing repo, revision, config.json or weights", async () => {
    const h = await start({
      [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } },
      "acme/empty": { files: { "README.md": enc("hi") } },
      "acme/noweights": { files: { "config.json": CONFIG } },
    });
    await expect(resolveHubModel("acme/nope", opts(h))).rejects.toThrow(`acme/nope: repository not found on ${h.url}`);
    await expect(resolveHubModel(`${REPO}@v9`, opts(h))).rejects.toThrow(`${REPO}: revision "v9" not found on ${h.url}`);
    await expect(resolveHubModel("acme/empty", opts(h))).rejects.toThrow(`config.json not found in acme/empty@main on ${h.url}`);
    await expect(resolveHubModel("acme/noweights", opts(h))).rejects.toThrow(
      `acme/noweights@main has no weights on ${h.url}: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json`,
    );
    await expect(resolveHubModel("not a repo", opts(h))).rejects.toThrow(/is not a Hugging Face repo id/);
  });

  it("reads the cache, endpoint and token from the environment", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS }, token: "hf_env" } });
    vi.stubEnv("HF_HUB_CACHE", cache);
    vi.stubEnv("HF_ENDPOINT", h.url);
    vi.stubEnv("HF_TOKEN", "hf_env");
    const model = await resolveHubModel(REPO, { fetch: h.fetch });
    expect(model.dir).toBe(join(repoDir(), "snapshots", h.head(REPO)));
  });
});

describe("inspectHubModel", () => {
  it("reads tensor names and shapes from the header alone", async () => {
    const big = makeSafetensors({ "transformer.wte.weight": [512, 256], "transformer.wpe.weight": [64, 256], "score.weight": [2, 256] });
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": big } } });
    const info = await inspectHubModel(REPO, opts(h));
    expect(info.tensors).toEqual({
      "transformer.wte.weight": { dtype: "F32", shape: [512, 256] },
      "transformer.wpe.weight": { dtype: "F32", shape: [64, 256] },
      "score.weight": { dtype: "F32", shape: [2, 256] },
    });
    expect(info.parameterCount).toBe(512 * 256 + 64 * 256 + 2 * 256);
    expect(info.files).toEqual(["model.safetensors"]);
    expect(big.length).toBeGreaterThan(500_000);
    expect(h.bytesServed()).toBeLessThan(2_000); // the header is ~200 bytes; the file is ~590 kB
    expect(existsSync(repoDir())).toBe(false);
  });

  it("reads every shard's header for an index", async () => {
    const index = enc(JSON.stringify({ weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } }));
    const h = await start({ [REPO]: { files: {
      "model.safetensors.index.json": index,
      "model-00001-of-00002.safetensors": makeSafetensors({ a: [300, 100] }),
      "model-00002-of-00002.safetensors": makeSafetensors({ b: [3] }),
    } } });
    const info = await inspectHubModel(REPO, opts(h));
    expect(info.tensors).toEqual({ a: { dtype: "F32", shape: [300, 100] }, b: { dtype: "F32", shape: [3] } });
    expect(info.parameterCount).toBe(30_003);
  });

  it("gives up on a server that never answers (the HEAD timeout), and says so with what the cache lacks", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    vi.stubEnv("HF_HUB_ETAG_TIMEOUT", "0.3");
    h.silenceNext("model.safetensors");
    await expect(inspectHubModel(REPO, opts(h))).rejects.toThrow(`cannot reach ${h.url} (timed out) and ${REPO}@main is not in the cache`);
  });

  it("gives up on a header body that stops coming (the download's idle timeout), and on one that trickles", async () => {
    const big = makeSafetensors({ "transformer.wte.weight": [512, 256], "score.weight": [2, 256] });
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": big } } });
    // Every GET: the library asks for byte 0 alone (the file's size), the header's length, then the header.
    h.trickleNextDownload("model.safetensors", 4, 60_000, 3);
    const idle = { idleMs: 300, windowMs: 60_000, minBytesPerWindow: 1 };
    await expect(inspectHubModel(REPO, opts(h, { limits: idle }))).rejects.toThrow(`cannot reach ${h.url} (no data for 0.3 s) and ${REPO}@main is not in the cache`);
    h.trickleNextDownload("model.safetensors", 1, 20, 3);
    const slow = { idleMs: 5000, windowMs: 400, minBytesPerWindow: 1000 };
    await expect(inspectHubModel(REPO, opts(h, { limits: slow }))).rejects.toThrow(
      new RegExp(`cannot reach ${h.url.replace(/[.]/g, "\\.")} \\(only \\d+ bytes in 0\\.4 s, slower than the 1000 bytes per 0\\.4 s a download must keep up\\) and ${REPO} ?@main is not in the cache`.replace(" ?", "")),
    );
    // A server that answers in time is read as before.
    await expect(inspectHubModel(REPO, opts(h, { limits: slow }))).resolves.toMatchObject({ parameterCount: 512 * 256 + 2 * 256 });
  });

  it("offline, reads the header from the cache", async () => {
    const h = await start({ [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS } } });
    await resolveHubModel(REPO, opts(h));
    const before = h.requests.length;
    const info = await inspectHubModel(REPO, opts(h, { offline: true }));
    expect(info.parameterCount).toBe(64 * 8 + 8);
    expect(h.requests.length).toBe(before);
  });

  it("explains a gated repo and a repo without safetensors", async () => {
    const h = await start({
      [REPO]: { files: { "config.json": CONFIG, "model.safetensors": WEIGHTS }, token: "hf_secret" },
      "acme/bin": { files: { "config.json": CONFIG, "pytorch_model.bin": new Uint8Array(10) } },
    });
    await expect(inspectHubModel(REPO, opts(h))).rejects.toThrow(/is a gated repo .* set HF_TOKEN/);
    await expect(inspectHubModel(REPO, opts(h, { token: "hf_secret" }))).resolves.toMatchObject({ parameterCount: 64 * 8 + 8 });
    await expect(inspectHubModel("acme/bin", opts(h))).rejects.toThrow(/has no model\.safetensors or model\.safetensors\.index\.json/);
    await expect(inspectHubModel("acme/nope", opts(h))).rejects.toThrow("acme/nope: repository not found");
  });
});

describe("isHubRepoId", () => {
  it("accepts owner/name[@revision] that is not a local path", () => {
    expect(isHubRepoId("openai-community/gpt2")).toBe(true);
    expect(isHubRepoId("OpenAssistant/reward-model-deberta-v3-large-v2@main")).toBe(true);
    expect(isHubRepoId("acme/reward@refs/pr/1")).toBe(true);
    expect(isHubRepoId(`acme/reward@${"a".repeat(40)}`)).toBe(true);
  });

  it("rejects paths, bare names and malformed ids", () => {
    mkdirSync(join(cache, "owner", "name"), { recursive: true });
    const cwd = process.cwd();
    try {
      process.chdir(cache);
      expect(isHubRepoId("owner/name")).toBe(false); // an existing folder wins
    } finally {
      process.chdir(cwd);
    }
    for (const s of ["gpt2", "./a/b", "/abs/path", "a/b/c", "a--b/c", "a/b..c", "-a/b", "a/b@", "a/b@../x", "a b/c", "C:/models"]) {
      expect(isHubRepoId(s), s).toBe(false);
    }
  });
});

// The project's fixture models, served by the fake Hub: each comes back byte-identical, in the
// weights format the folder holds, and the snapshot loads like the local folder does.
const FIXTURES: Array<[string, string[]]> = [
  ["demo", ["model.safetensors"]],
  ["f16-8head-bin", ["pytorch_model.bin"]],
  ["sharded-st", ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]],
  ["sharded-bin", ["pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]],
];

describe("with the project's fixture models", () => {
  for (const [name, weights] of FIXTURES) {
    const folder = join("fixtures", "models", name);
    it(`${name}: downloads ${weights[0]} and loads from the snapshot`, async () => {
      const files = filesFromFolder(folder);
      const h = await start({ [`fixtures/${name}`]: { files } });
      const model = await resolveHubModel(`fixtures/${name}`, opts(h));
      expect(model.files).toEqual(["config.json", ...weights]);
      for (const f of model.files) expectFileBytes(join(model.dir, f), files[f]);
      const fromHub = checkpointTensors(model.dir);
      const local = checkpointTensors(folder);
      expect([...fromHub.tensors.keys()]).toEqual([...local.tensors.keys()]);
    });
  }

  it("demo: inspect reads the header and nothing more", async () => {
    const h = await start({ "fixtures/demo": { files: filesFromFolder("fixtures/models/demo") } });
    const info = await inspectHubModel("fixtures/demo", opts(h));
    const local = readSafetensorsHeader("fixtures/models/demo/model.safetensors");
    expect(Object.keys(info.tensors)).toEqual([...local.entries.keys()]);
    for (const [name, e] of local.entries) expect(info.tensors[name]).toEqual({ dtype: e.dtype, shape: e.shape });
    expect(h.bytesServed()).toBeLessThan(local.dataStart + 100);
    expect(h.bytesServed() * 100).toBeLessThan(local.fileSize);
  });
});
