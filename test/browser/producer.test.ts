/**
 * What the producer's hardening shows in the UI: a task that returned NaN (sent as the marked value
 * {"__float__": "NaN"}) shows a NaN badge in its detail, and a worker whose producer lost events has
 * a warning-coloured "dropped" count on the Workers page (0 plain for one that lost none).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

const TASK = "producer-nan-task";
const now = () => Date.now() / 1000;
let n = 0;

function task(type: string, extra: Record<string, unknown> = {}) {
  n++;
  return {
    v: 1,
    id: `producer-ui-${n}`,
    kind: "task",
    type,
    ts: now(),
    seq: n,
    host: "lossy@host",
    pid: 7,
    task_id: TASK,
    name: "app.ratio",
    trace_id: TASK,
    ...extra,
  };
}

function online(host: string, pid: number) {
  n++;
  return {
    v: 1,
    id: `producer-ui-${n}`,
    kind: "worker",
    type: "online",
    ts: now(),
    seq: n,
    host,
    pid,
    freq: 3600,
    pool: "prefork",
    concurrency: 2,
    queues: ["celery"],
  };
}

beforeAll(async () => {
  server = await startServer();
  await ingest(server.base, [
    online("clean@host", 8),
    task("published", { host: null, args: [1, { __float__: "Infinity" }], kwargs: {} }),
    task("started"),
    task("succeeded", {
      state: "SUCCESS",
      runtime_ms: 3,
      result: { ratio: { __float__: "NaN" }, low: { __float__: "-Infinity" } },
    }),
  ]);
  // The drop report rides on a batch's envelope.
  const res = await fetch(`${server.base}/v1/events`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      events: [online("lossy@host", 7)],
      producer: { host: "lossy@host", pid: 7, process: "a", dropped: { buffer_full: 1234 } },
    }),
  });
  expect(res.status).toBe(202);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("producer hardening in the UI", () => {
  it("shows non-finite floats as marked values, not as objects", async () => {
    await page.goto(`${server.base}/traces/${TASK}?task=${TASK}`);
    await page.locator(".side-panel .json-float").first().waitFor();
    expect(await page.locator(".side-panel .json-float").allTextContents()).toEqual([
      "Infinity",
      "NaN",
      "-Infinity",
    ]);
    expect((await page.locator(".side-panel .json").allTextContents()).join("")).not.toContain("__float__");
    await screenshot(page, "producer-nan-result");
  });

  it("shows each worker's dropped events, warning-coloured when any", async () => {
    await page.goto(`${server.base}/workers`);
    const lossy = page.locator('tr[data-worker="lossy@host"] td.dropped-warn');
    await lossy.waitFor();
    expect(await lossy.textContent()).toBe((1234).toLocaleString("en-US"));
    const clean = page.locator('tr[data-worker="clean@host"] td').last();
    expect(await clean.textContent()).toBe("0");
    expect(await page.locator('tr[data-worker="clean@host"] td.dropped-warn').count()).toBe(0);
    const color = await lossy.evaluate((el) => getComputedStyle(el).backgroundColor);
    expect(color).not.toBe("rgba(0, 0, 0, 0)");
    await screenshot(page, "producer-workers-dropped");
  });
});
