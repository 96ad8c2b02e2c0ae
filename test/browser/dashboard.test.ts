/**
 * The dashboard in headless Chromium: open anomalies first (with explanation and fix), throughput
 * and failure rate, busiest and slowest names, worker status; anomaly badges on the trace list,
 * the graph node, the task detail and the registry row. Screenshots go to test-output/screenshots.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

const UNREGISTERED = "09faf8c3-eece-4321-96cc-bf8b26ada5df"; // 12_unregistered: task_unknown
const STUCK = "dash-stuck-pending";
const now = () => Date.now() / 1000;
let n = 0;

function task(task_id: string, type: string, extra: Record<string, unknown> = {}) {
  n++;
  return {
    v: 1,
    id: `dash-${n}`,
    kind: "task",
    type,
    ts: now(),
    seq: n,
    host: "dash@host",
    pid: 7,
    task_id,
    name: "app.report",
    trace_id: task_id,
    ...extra,
  };
}

beforeAll(async () => {
  server = await startServer();
  await ingest(server.base, wireFixture("12_unregistered"));
  await ingest(server.base, [
    {
      v: 1,
      id: "dash-online",
      kind: "worker",
      type: "online",
      ts: now(),
      seq: 0,
      host: "dash@host",
      pid: 7,
      freq: 3600,
      pool: "prefork",
      concurrency: 4,
      queues: ["celery"],
      registered: [{ name: "app.report", module: "app", signature: "(day)", doc: null }],
    },
    task(STUCK, "published", { host: null, queue: "reports", ts: now() - 600 }),
  ]);
  // Some finished work for throughput, busiest and slowest.
  const done = [];
  for (let i = 0; i < 12; i++) {
    const id = `dash-done-${i}`;
    done.push(task(id, "started", { name: i % 3 ? "app.fast" : "app.slow", ts: now() - 30 }));
    done.push(
      task(id, i === 5 ? "failed" : "succeeded", {
        name: i % 3 ? "app.fast" : "app.slow",
        runtime_ms: i % 3 ? 20 : 4000,
        ...(i === 5 ? { exception: { type: "ValueError", message: "bad" } } : { state: "SUCCESS" }),
      }),
    );
  }
  await ingest(server.base, done);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("dashboard and anomaly badges", () => {
  it("shows open anomalies first, with the explanation and the fix", async () => {
    await page.goto(`${server.base}/dashboard`);
    const unregistered = page.locator(`.anomaly[data-anomaly="unregistered"][data-task="${UNREGISTERED}"]`);
    await unregistered.waitFor();
    expect(await unregistered.textContent()).toContain("What to do:");
    // The stuck task's deadline passed before it arrived: the trace's alarm flags it within moments.
    const stuck = page.locator(`.anomaly[data-anomaly="stuck_pending"][data-task="${STUCK}"]`);
    await stuck.waitFor({ timeout: 20_000 });
    expect(await stuck.textContent()).toContain("queue 'reports'");
    expect(await stuck.textContent()).toContain("no online worker consumes 'reports'");
    // Throughput, failure rate, busiest and slowest names, workers.
    expect(await page.locator(".throughput svg").count()).toBe(2);
    // Stat cards never wrap their headline (it read "8.3% / failed" on two lines).
    for (const h of await page.locator(".throughput .headline").all()) {
      const box = (await h.boundingBox())!;
      expect(box.height).toBeLessThan(40);
    }
    expect(await page.locator(".throughput").first().textContent()).toMatch(/12 finished 8\.3% failed/);
    // The bars have a scale: the busiest bucket's count on top, 0 below, and the first and last
    // bucket's times under them.
    const hour = page.locator(".throughput").first();
    const top = Number(await hour.locator(".axis-y span").first().textContent());
    expect(top).toBeGreaterThanOrEqual(1);
    expect(top).toBeLessThanOrEqual(12);
    expect(await hour.locator(".axis-y span").last().textContent()).toBe("0");
    const times = await hour.locator(".axis-x span").allTextContents();
    expect(times[0]).toMatch(/\d:\d\d/);
    expect(times[2]).toMatch(/\d:\d\d/);
    expect(times[0]).not.toBe(times[2]);
    await page.locator("text=Busiest task names").waitFor();
    expect(
      await page.locator(".card", { hasText: "Slowest task names" }).locator("tr").first().textContent(),
    ).toContain("slow");
    await page.locator('.worker-chip:has-text("dash@host")').waitFor();
    await screenshot(page, "20-dashboard");
  });

  it("marks the trace in the list, the node in the graph and the task detail", async () => {
    await page.goto(`${server.base}/`);
    await page.locator(`tr[data-trace-id="${STUCK}"] .anomaly-badge`).waitFor();
    await page.goto(`${server.base}/traces/${STUCK}`);
    await page.locator(`[data-task-id="${STUCK}"] .anomaly-dot`).waitFor();
    await page.goto(`${server.base}/tasks/${STUCK}`);
    const card = page.locator(`.task-anomalies .anomaly[data-anomaly="stuck_pending"]`);
    await card.waitFor();
    expect(await card.textContent()).toContain("no worker has received it");
    await screenshot(page, "21-task-anomaly");
  });

  it("puts an anomaly badge on the registry row", async () => {
    await page.goto(`${server.base}/registry`);
    const row = page.locator('tr[data-task-name="app.report"]');
    await row.waitFor();
    await row.locator(".anomaly-badge").waitFor();
    expect(await row.locator(".anomaly-badge").textContent()).toContain("1");
    await screenshot(page, "22-registry-anomaly");
  });
});
