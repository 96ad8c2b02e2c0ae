/** Starts wrangler dev (with the built web/dist) and headless Chromium; both stopped by PID. */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
// @ts-expect-error plain ESM helper shared with the benchmarks
import { ROOT, startWranglerDev } from "../../bench/wrangler-dev.mjs";

export const SCREENSHOTS = join(ROOT as string, "test-output", "screenshots");

export interface Server {
  base: string;
  stop(): Promise<void>;
}

export async function startServer(): Promise<Server> {
  return (await startWranglerDev()) as Server;
}

export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // playwright-core gives every launch a fresh temporary profile (the --user-data-dir of the probe).
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export function wireFixture(name: string): unknown[] {
  return (
    JSON.parse(readFileSync(join(ROOT as string, "test/fixtures/wire", `${name}.json`), "utf8")) as {
      events: unknown[];
    }
  ).events;
}

export async function ingest(base: string, events: unknown[]): Promise<void> {
  for (let i = 0; i < events.length; i += 500) {
    const res = await fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: events.slice(i, i + 500) }),
    });
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
}
