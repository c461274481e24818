/**
 * The Hugging Face hub cache on disk, laid out exactly as Python's huggingface_hub lays it out,
 * so that a model downloaded by either side is found by the other:
 *
 *   <cache>/models--<owner>--<name>/
 *     blobs/<etag>                        file contents, named by the Hub's ETag (sha256 for LFS files,
 *                                         the git blob sha1 for small files)
 *     snapshots/<commit>/<file>           relative symlink -> ../../blobs/<etag>
 *     refs/<revision>                     text file holding the commit a branch or tag pointed at
 *     .no_exist/<commit>/<file>           empty file: the Hub said this file does not exist at that commit
 *
 * `<cache>` is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (the rules of
 * `getHFHubCachePath` in @huggingface/hub, which are Python's). This file only touches the disk;
 * the network side is in hub.ts.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { getHFHubCachePath } from "@huggingface/hub";
import { platform } from "../platform/platform.js";

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** The cache root: an explicit folder, else the environment's (see the file comment). */
export function hubCacheRoot(cacheDir?: string): string {
  return cacheDir ?? getHFHubCachePath();
}

/** `<cache>/models--owner--name` — Python's `repo_folder_name`. */
export function repoCacheDir(cacheRoot: string, repo: string): string {
  return join(cacheRoot, ["models", ...repo.split("/")].join("--"));
}

export function snapshotDir(repoDir: string, commit: string): string {
  return join(repoDir, "snapshots", commit);
}

export function snapshotPath(repoDir: string, commit: string, file: string): string {
  return join(snapshotDir(repoDir, commit), ...file.split("/"));
}

export function refPath(repoDir: string, revision: string): string {
  return join(repoDir, "refs", ...revision.split("/"));
}

export function blobPath(repoDir: string, etag: string): string {
  return join(repoDir, "blobs", etag);
}

function noExistPath(repoDir: string, commit: string, file: string): string {
  return join(repoDir, ".no_exist", commit, ...file.split("/"));
}

/** True if `path` is a regular file, following symlinks: a dangling snapshot link counts as absent. */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The commit a branch or tag pointed at when last seen; a commit hash is its own answer. */
export async function readRef(repoDir: string, revision: string): Promise<string | undefined> {
  if (COMMIT_HASH.test(revision)) return revision;
  try {
    // Bounded, and never blocking on a FIFO: a ref is one 40-character hash.
    const commit = platform().files.readText(refPath(repoDir, revision), 1024).trim();
    return COMMIT_HASH.test(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/** Records `revision -> commit`; written to a temporary name and renamed so a reader never sees half a hash. */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const path = refPath(repoDir, revision);
  if ((await readRef(repoDir, revision)) === commit) return;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, commit);
  await rename(tmp, path);
}

export async function isKnownMissing(repoDir: string, commit: string, file: string): Promise<boolean> {
  return isFile(noExistPath(repoDir, commit, file));
}

/** Python writes the same marker, so a later run at that commit skips the request. Best effort. */
export async function markMissing(repoDir: string, commit: string, file: string): Promise<void> {
  const path = noExistPath(repoDir, commit, file);
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, "");
  } catch {
    // A read-only cache still works; the next run just asks the Hub again.
  }
}

/**
 * Where a blob is downloaded to before it is complete: `<etag>.incomplete`, the same name every
 * time (as huggingface_hub's), so an interrupted download is resumed rather than left behind; a
 * lock file beside it (hub.ts) keeps two processes from writing it at once.
 */
export function incompletePath(repoDir: string, etag: string): string {
  return `${blobPath(repoDir, etag)}.incomplete`;
}

/**
 * Points snapshots/<commit>/<file> at blobs/<etag> with a relative symlink (the cache folder can
 * then be moved), or copies the blob where symlinks are not allowed (Windows without developer mode).
 */
export async function linkSnapshotFile(repoDir: string, commit: string, file: string, etag: string): Promise<string> {
  const pointer = snapshotPath(repoDir, commit, file);
  const blob = blobPath(repoDir, etag);
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch (err) {
    // EEXIST: another process linked it between our rm and symlink; the link is the same.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return pointer;
    await copyFile(blob, pointer);
  }
  return pointer;
}
