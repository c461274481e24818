/**
 * Debian's Chromium, driven by playwright-core, for test/web and bench/web.ts (a browser download
 * by a test tool does not work here; .ci/run installs the `chromium` package). Tests that need it
 * fail, never skip, without it.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContext } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const options = (extraArgs: string[] = []) => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  return {
    executablePath: CHROMIUM,
    headless: true,
    // No sandbox (root in a container), no GPU, and nothing that reaches the network on its own.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", ...extraArgs],
  };
};

/**
 * A browser whose contexts are incognito: storage in memory, so Cache Storage holds tens of MB at
 * most. `extraArgs` are more Chromium switches (a test maps a host name to 127.0.0.1 with one).
 */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch(options(extraArgs));
}

/** A browser with a profile on disk in `dir` (a fresh temporary folder): Cache Storage on disk, for big models. */
export async function launchChromiumProfile(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, options());
}
