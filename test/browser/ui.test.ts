/**
 * The UI in headless Chromium against wrangler dev with recorded scenarios ingested: the traces
 * list shows them, a chord renders as a container with its callback, a live event changes a node
 * without a reload, the task detail shows a traceback. Screenshots go to test-output/screenshots.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

const CHORD_GROUP = "d1d062f7-e9fe-4c5b-b161-46ca668ebb50";
const CHORD_CALLBACK = "a8a105c9-4b68-4925-8153-5ab3d922fc62";
const FAILED_TASK = "e6f835a4-3694-4b3b-8f7e-0a24625da7a4";

beforeAll(async () => {
  server = await startServer();
  for (const name of [
    "01_single_success",
    "02_failure",
    "05_chain",
    "07_chord",
    "10a_chord_header_fails",
    "03_retry_then_success",
    "09a_chain_with_group",
    "00_worker_lifecycle",
  ])
    await ingest(server.base, wireFixture(name));
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("stemtrace UI", () => {
  it("lists the ingested traces with their states", async () => {
    await page.goto(server.base + "/");
    await page.locator(`tr[data-trace-id="${CHORD_GROUP}"]`).waitFor();
    const rows = await page.locator("tr[data-trace-id]").count();
    expect(rows).toBeGreaterThanOrEqual(7);
    expect(await page.locator(`tr[data-trace-id="${FAILED_TASK}"] [data-state="FAILURE"]`).count()).toBe(1);
    await page.locator(".connection.live").waitFor();
    await screenshot(page, "01-traces");
  });

  it("draws a chord as a container with its callback and a chord edge", async () => {
    await page.goto(`${server.base}/traces/${CHORD_GROUP}`);
    await page.locator(`[data-container-id="${CHORD_GROUP}"][data-kind="CHORD"]`).waitFor();
    await page.locator(`[data-task-id="${CHORD_CALLBACK}"][data-state="SUCCESS"]`).waitFor();
    expect(await page.locator(`.react-flow__node[data-id="${CHORD_GROUP}"] .container-node`).count()).toBe(1);
    // The three header members are drawn inside the chord box; the callback outside it.
    expect(await page.locator(`.react-flow__node[data-id="${CHORD_GROUP}"] .task-node`).count()).toBe(3);
    expect(await page.locator(`.react-flow__node[data-id="${CHORD_CALLBACK}"] .task-node`).count()).toBe(1);
    expect(await page.locator(".react-flow__edge.edge-chord").count()).toBe(1);
    await screenshot(page, "02-chord-graph");
  });

  it("shows a failed chord's callback as not run", async () => {
    await page.goto(`${server.base}/traces/0e8252d6-c130-4c46-8bbb-6a7efd01a0f1`);
    await page
      .locator(`[data-task-id="d6bbf20c-b8eb-426a-a60a-79b6a0eb50f3"][data-state="NOT_RUN"]`)
      .waitFor();
    await page.locator(`[data-container-id="0e8252d6-c130-4c46-8bbb-6a7efd01a0f1"]`).waitFor();
    await screenshot(page, "03-chord-header-fails");
  });

  it("changes a node's state live, without a reload", async () => {
    const taskId = "live-ui-task";
    const ev = (type: string, n: number, extra: object = {}) => ({
      v: 1,
      id: `live-ui-${n}`,
      kind: "task",
      type,
      ts: Date.now() / 1000,
      seq: n,
      host: type === "published" ? null : "ui@host",
      pid: 1,
      task_id: taskId,
      name: "app.live",
      trace_id: taskId,
      ...extra,
    });
    await ingest(server.base, [ev("published", 1), ev("started", 2)]);
    await page.goto(`${server.base}/traces/${taskId}`);
    const node = page.locator(`[data-task-id="${taskId}"]`);
    await node.and(page.locator('[data-state="STARTED"]')).waitFor();
    await page.locator(".connection.live").waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await ingest(server.base, [
      ev("succeeded", 3, { result: 1 }),
      ev("postrun", 4, { state: "SUCCESS", runtime_ms: 5 }),
    ]);
    await page.locator(`[data-task-id="${taskId}"][data-state="SUCCESS"]`).waitFor({ timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42); // same page: no reload
    await screenshot(page, "04-live-update");
  });

  it("shows the traceback in the task detail", async () => {
    await page.goto(`${server.base}/traces/${FAILED_TASK}?task=${FAILED_TASK}`);
    const tb = page.locator(".side-panel .traceback");
    await tb.waitFor();
    expect(await tb.textContent()).toMatch(/Traceback[\s\S]*ValueError|raise ValueError/);
    expect(await page.locator(".side-panel .exception").textContent()).toMatch(/ValueError: boom! x=7/);
    await screenshot(page, "05-task-detail");
  });

  it("shows retries as attempts and a timeline view", async () => {
    await page.goto(
      `${server.base}/traces/a44d6bda-7b42-4cee-9b8f-e18c92bb5079?task=a44d6bda-7b42-4cee-9b8f-e18c92bb5079`,
    );
    await page.locator(".side-panel .attempt").nth(2).waitFor();
    expect(await page.locator(".side-panel .attempt").count()).toBe(3);
    await page.goto(`${server.base}/traces/5adc8709-a080-47a4-b72f-56557d872262?view=timeline`);
    await page.locator(".timeline-row").first().waitFor();
    expect(await page.locator(".timeline-row").count()).toBe(4);
    await screenshot(page, "06-timeline");
  });

  it("keeps a 600-task trace usable: folded group and fan-out that expand on click", async () => {
    const traceId = "big-ui-trace";
    let n = 0;
    const ev = (task_id: string, type: string, extra: object = {}) => ({
      v: 1,
      id: `big-${n++}`,
      kind: "task",
      type,
      ts: 1_795_000_000 + n / 1000,
      seq: n,
      host: type === "published" ? null : "w1@host",
      pid: 1,
      task_id,
      name: task_id === traceId ? "app.fan_out" : "app.work",
      trace_id: traceId,
      ...extra,
    });
    const events = [
      ev(traceId, "published"),
      ev(traceId, "started"),
      ev(traceId, "succeeded"),
      ev(traceId, "postrun", { state: "SUCCESS", runtime_ms: 4 }),
    ];
    for (let i = 0; i < 300; i++) {
      const g = { group_id: "big-group", group_index: i, parent_id: traceId };
      events.push(
        ev(`m-${i}`, "published", g),
        ev(`m-${i}`, "started", g),
        ev(`m-${i}`, i === 7 ? "failed" : "succeeded", g),
        ev(`m-${i}`, "postrun", { ...g, state: i === 7 ? "FAILURE" : "SUCCESS", runtime_ms: 3 }),
      );
      events.push(ev(`s-${i}`, "published", { parent_id: traceId }));
    }
    await ingest(server.base, events);
    await page.goto(`${server.base}/traces/${traceId}`);
    await page.locator(`[data-container-id="big-group"]`).waitFor();
    expect(await page.locator("[data-more]").count()).toBe(2);
    expect(await page.locator(".graph-status").textContent()).toMatch(/41 of 601 tasks drawn/);
    await screenshot(page, "10-big-trace-folded");
    await page.locator('[data-container-id="big-group"] [data-more]').click();
    await page.locator('[data-task-id="m-299"]').waitFor();
    expect(await page.locator(".graph-status").textContent()).toMatch(/321 of 601 tasks drawn/);
    await screenshot(page, "11-big-trace-expanded");
  });

  it("keeps a trace of many groups within the card budget: later groups on a shelf that opens them", async () => {
    const traceId = "shelf-ui-trace";
    let n = 0;
    const ev = (task_id: string, type: string, extra: object = {}) => ({
      v: 1,
      id: `shelf-${n++}`,
      kind: "task",
      type,
      ts: 1_795_000_000 + n / 1000,
      seq: n,
      host: type === "published" ? null : "w1@host",
      pid: 1,
      task_id,
      name: task_id === traceId ? "app.fan_out" : "app.work",
      trace_id: traceId,
      ...extra,
    });
    const events = [
      ev(traceId, "published"),
      ev(traceId, "started"),
      ev(traceId, "succeeded"),
      ev(traceId, "postrun", { state: "SUCCESS", runtime_ms: 4 }),
    ];
    // 12 groups of 50: nine fit the 500-card budget with the root, three go on the shelf.
    for (let g = 0; g < 12; g++)
      for (let i = 0; i < 50; i++) {
        const id = `sg${g}-${i}`;
        const x = { group_id: `shelf-g${g}`, group_index: i, parent_id: traceId };
        const failed = g === 10 && i === 4;
        events.push(
          ev(id, "published", x),
          ev(id, "started", x),
          ev(id, failed ? "failed" : "succeeded", x),
          ev(id, "postrun", { ...x, state: failed ? "FAILURE" : "SUCCESS", runtime_ms: 3 }),
        );
      }
    await ingest(server.base, events);
    await page.goto(`${server.base}/traces/${traceId}`);
    await page.locator('[data-container-id="shelf-g0"]').waitFor();
    expect(await page.locator(".graph-status").textContent()).toMatch(/451 of 601 tasks drawn/);
    // The shelf is further down: move there through the overview.
    const spot = (await page.locator('.overview rect[data-id^="shelf:"]').boundingBox())!;
    await page.mouse.click(spot.x + spot.width / 2, spot.y + spot.height / 2);
    await page.locator('[data-summary-id="shelf-g10"][data-state="FAILURE"]').waitFor();
    expect(await page.locator("[data-summary-id]").count()).toBe(3);
    expect(await page.locator('[data-summary-id="shelf-g10"]').textContent()).toMatch(/50 tasks.*1 failed/);
    await screenshot(page, "14-shelf");
    // Live: a member of a shelved group fails; its summary says so without a reload.
    await page.locator(".connection.live").waitFor();
    const late = { group_id: "shelf-g11", group_index: 3, parent_id: traceId };
    await ingest(server.base, [
      ev("sg11-3", "retried", late),
      ev("sg11-3", "failed", { ...late, retries: 1 }),
      ev("sg11-3", "postrun", { ...late, retries: 1, state: "FAILURE", runtime_ms: 3 }),
    ]);
    await page.locator('[data-summary-id="shelf-g11"]', { hasText: "1 failed" }).waitFor({ timeout: 10_000 });
    await page.locator('[data-summary-id="shelf-g10"]').click();
    await page.locator('[data-container-id="shelf-g10"] [data-task-id="sg10-49"]').waitFor();
    expect(await page.locator(".graph-status").textContent()).toMatch(/501 of 601 tasks drawn/);
    await screenshot(page, "15-shelf-group-opened");
    // The view moved to the opened group; back on the shelf, two groups are left.
    const rest = (await page.locator('.overview rect[data-id^="shelf:"]').boundingBox())!;
    await page.mouse.click(rest.x + rest.width / 2, rest.y + rest.height / 2);
    await page.locator('[data-summary-id="shelf-g11"]').waitFor();
    expect(await page.locator("[data-summary-id]").count()).toBe(2);
    await page.locator(".shelf-open-all").click();
    await page.locator('.overview rect[data-id="shelf-g11"]').waitFor({ state: "attached" });
    expect(await page.locator('.overview rect[data-id^="shelf:"]').count()).toBe(0);
    expect(await page.locator(".graph-status").textContent()).not.toMatch(/tasks drawn/);
  });

  it("reads well in the dark theme, and shows the timeline by worker", async () => {
    await page.goto(`${server.base}/traces/${CHORD_GROUP}?task=${CHORD_CALLBACK}`);
    await page.evaluate(() => localStorage.setItem("stemtrace-theme", "dark"));
    await page.reload();
    await page.locator(`[data-container-id="${CHORD_GROUP}"]`).waitFor();
    await page.locator(".side-panel .task-detail").waitFor();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe("dark");
    await screenshot(page, "12-dark-chord");
    await page.goto(`${server.base}/traces/5adc8709-a080-47a4-b72f-56557d872262?view=timeline`);
    await page.getByRole("button", { name: "by worker" }).click();
    await page.locator('.timeline-row[data-row="lab1@vm"]').waitFor();
    // Each worker row says how many ran at once, and its lanes are numbered.
    expect(await page.locator('.timeline-row[data-row="lab1@vm"] [data-lanes]').innerText()).toMatch(
      /4 tasks · up to 3 at once/,
    );
    expect(await page.locator('.timeline-row[data-row="lab1@vm"] .timeline-lane-label').count()).toBe(3);
    await screenshot(page, "13-dark-timeline-by-worker");
    // The everyday pages in the dark theme, to look at.
    for (const [path, name] of [
      ["/tasks", "tasks"],
      ["/registry", "registry"],
      ["/workers", "workers"],
      ["/dashboard", "dashboard"],
    ] as const) {
      await page.goto(server.base + path);
      await page.locator(".page").first().waitFor();
      await page.waitForTimeout(300);
      await screenshot(page, `13-dark-${name}`);
    }
    await page.evaluate(() => localStorage.setItem("stemtrace-theme", "auto"));
  });

  it("renders the workers, registry and dashboard pages", async () => {
    await page.goto(`${server.base}/workers`);
    await page.locator('tr[data-worker="lab0@vm"]').waitFor();
    await screenshot(page, "07-workers");
    await page.goto(`${server.base}/registry`);
    await page.locator('tr[data-task-name="app.add"]').waitFor();
    await screenshot(page, "08-registry");
    await page.goto(`${server.base}/dashboard`);
    await page.locator(".stat-cards .throughput").first().waitFor();
    await screenshot(page, "09-dashboard");
  });
});
