/**
 * A real headless Chromium for page tests (Debian's /usr/bin/chromium driven by playwright-core).
 *
 * One browser process per test file, started as a Playwright browser server so that its PID is
 * known and the process can be killed by that PID if a graceful close hangs. Each simulated person
 * gets their own browser context (separate storage, like separate phones). Playwright gives the
 * browser a fresh temporary user-data-dir and deletes it on close.
 *
 * Audio: CI has no sound card, and Chromium plays into a null sink. The console mirrors its sound
 * state in `window.__ataSound` (web/sound.js); tests read that instead of listening.
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, type BrowserServer, chromium, type Page } from "playwright-core";
import { isAlive } from "./process.js";

export const CHROMIUM_PATH = process.env.ATA_CHROMIUM ?? "/usr/bin/chromium";

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
  // Tests check that sound starts; a click is a gesture anyway, this keeps remembered sessions honest.
  "--autoplay-policy=no-user-gesture-required",
];

/** What the console exposes as window.__ataSound (web/sound.js SoundHook). */
export interface SoundState {
  enabled: boolean;
  context: string;
  playing: "high" | "medium" | "low" | null;
  wanted: "high" | "medium" | "low" | null;
  technical: boolean;
  beeps: number;
  bursts: number;
  history: { at: number; kind: string }[];
}

export interface PageProblems {
  /** Uncaught exceptions and console.error lines (CSP violations show up here). */
  errors: string[];
}

export interface TestBrowser {
  browser: Browser;
  pid: number | undefined;
  /** A fresh context (own localStorage) with one page; problems collected while it lives. */
  newPage(options?: { viewport?: { width: number; height: number } }): Promise<{
    context: BrowserContext;
    page: Page;
    problems: PageProblems;
  }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const server: BrowserServer = await chromium.launchServer({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ARGS,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const pid = server.process().pid;
  const browser = await chromium.connect(server.wsEndpoint());
  return {
    browser,
    pid,
    async newPage(options = {}) {
      const context = await browser.newContext({
        viewport: options.viewport ?? { width: 420, height: 860 },
        locale: "da-DK",
        timezoneId: "Europe/Copenhagen",
      });
      const page = await context.newPage();
      const problems: PageProblems = { errors: [] };
      page.on("pageerror", (err) => problems.errors.push(`pageerror: ${err.message}`));
      page.on("console", (msg) => {
        // Expected noise, not bugs: a WebSocket that cannot connect while the gateway is down, and
        // the 401 a wrong token gets at sign-in. A 404 (a missing script) still counts.
        if (
          msg.type() === "error" &&
          !/WebSocket connection|ERR_CONNECTION_REFUSED|status of 401/.test(msg.text())
        )
          problems.errors.push(`console: ${msg.text()}`);
      });
      return { context, page, problems };
    },
    async close() {
      await Promise.race([
        (async () => {
          await browser.close().catch(() => {});
          await server.close();
        })(),
        new Promise((r) => setTimeout(r, 5000)),
      ]);
      // Whatever the graceful path left behind goes by PID.
      if (pid && isAlive(pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Gone between the check and the kill.
        }
      }
    },
  };
}

/** Where screenshots go (looked at by a person; not compared by the tests). */
export function screenshotPath(name: string): string {
  const dir = process.env.ATA_SCREENSHOTS ?? join(tmpdir(), "ata-screenshots");
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}.png`);
}

export function soundState(page: Page): Promise<SoundState> {
  return page.evaluate(() => (window as unknown as { __ataSound: SoundState }).__ataSound);
}
