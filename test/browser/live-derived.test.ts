/**
 * Live deltas carry what only the whole graph knows (issue 13): with a trace page open, a GROUP
 * badge turns from Running to Success and a chain step turns NOT_RUN from the deltas alone, with
 * no refetch of the snapshot.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;
let n = 0;
const now = Date.now() / 1000;

function ev(taskId: string, type: string, extra: Record<string, unknown> = {}) {
  n++;
  return {
    v: 1,
    id: `live-derived-${n}`,
    kind: "task",
    type,
    ts: now + n / 1000,
    seq: n,
    host: type === "published" ? null : "w1@live",
    pid: 7,
    task_id: taskId,
    name: "app.step",
    ...extra,
  };
}

/** Counts GETs of one trace's snapshot made by the page. */
function snapshotFetches(p: Page, traceId: string): () => number {
  let count = 0;
  p.on("request", (r) => {
    if (r.method() === "GET" && new URL(r.url()).pathname === `/api/traces/${traceId}`) count++;
  });
  return () => count;
}

beforeAll(async () => {
  server = await startServer();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("live deltas carry derived state", () => {
  it("a GROUP badge turns from Running to Success without a refetch", async () => {
    const g = "live-group-1";
    const members = ["live-m1", "live-m2"].map((id, i) => ({ id, i }));
    await ingest(
      server.base,
      members.flatMap(({ id, i }) => [
        ev(id, "published", { trace_id: g, group_id: g, group_index: i }),
        ev(id, "received", { trace_id: g, group_id: g, group_index: i }),
        ev(id, "started", { trace_id: g }),
      ]),
    );
    const fetches = snapshotFetches(page, g);
    await page.goto(`${server.base}/traces/${g}`);
    await page.locator(`[data-container-id="${g}"][data-state="STARTED"]`).waitFor();
    await page.locator(".connection.live").waitFor();
    const before = fetches();
    await ingest(
      server.base,
      members.map(({ id }) => ev(id, "succeeded", { trace_id: g, state: "SUCCESS", result: 1 })),
    );
    await page.locator(`[data-container-id="${g}"][data-state="SUCCESS"]`).waitFor({ timeout: 15_000 });
    expect(fetches()).toBe(before);
    await screenshot(page, "30-live-group-success");
  });

  it("a chain step turns NOT_RUN when the step before it fails, without a refetch", async () => {
    const a = "live-chain-a";
    await ingest(server.base, [
      ev(a, "published", {
        chain: [
          { task_id: "live-chain-b", name: "app.b" },
          { task_id: "live-chain-c", name: "app.c" },
        ],
      }),
      ev(a, "received"),
      ev(a, "started"),
    ]);
    const fetches = snapshotFetches(page, a);
    await page.goto(`${server.base}/traces/${a}`);
    await page.locator(`[data-task-id="live-chain-b"][data-state="PENDING"]`).waitFor();
    await page.locator(".connection.live").waitFor();
    const before = fetches();
    await ingest(server.base, [ev(a, "failed", { exception: { type: "ValueError", message: "no" } })]);
    await page.locator(`[data-task-id="live-chain-b"][data-state="NOT_RUN"]`).waitFor({ timeout: 15_000 });
    await page.locator(`[data-task-id="live-chain-c"][data-state="NOT_RUN"]`).waitFor();
    expect(fetches()).toBe(before);
    await screenshot(page, "31-live-chain-not-run");
  });
});
