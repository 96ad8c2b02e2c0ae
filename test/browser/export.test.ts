/**
 * Export (issue 17 item 3) from the trace page: the Export link downloads one JSON file holding
 * the trace's events and graph, and that file is accepted by `POST /api/import`.
 */
import { readFileSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImportResponse, TraceExport } from "../../shared/export";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

const chord = wireFixture("07_chord") as { kind: string; id: string; trace_id?: string | null }[];
const chordTrace = chord.find((e) => e.kind === "task")!.trace_id!;

beforeAll(async () => {
  server = await startServer();
  await ingest(server.base, chord);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("export from the trace page", () => {
  it("downloads the trace as a file that parses, holds its events and imports", async () => {
    await page.goto(`${server.base}/traces/${chordTrace}`);
    const link = page.locator(".trace-header").getByRole("link", { name: "Export" });
    await link.waitFor();
    await screenshot(page, "60-trace-export-link");
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    expect(download.suggestedFilename()).toBe(`stemtrace-${chordTrace}.json`);
    const path = await download.path();
    const file = TraceExport.parse(JSON.parse(readFileSync(path, "utf8")));
    expect(file.trace_id).toBe(chordTrace);
    const ids = new Set((file.events as { id: string }[]).map((e) => e.id));
    for (const e of chord.filter((x) => x.kind === "task")) expect(ids.has(e.id), e.id).toBe(true);
    expect(file.graph.nodes.length).toBeGreaterThan(1);

    // The downloaded file is what /api/import takes; here every event is already stored.
    const res = await fetch(`${server.base}/api/import`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(file),
    });
    expect(res.status).toBe(200);
    const result = ImportResponse.parse(await res.json());
    expect(result).toMatchObject({ accepted: 0, duplicates: file.events.length, rejected: [] });
  });
});
