/**
 * Everyday use (issue 14): an unknown task id gets a page that says what it means and a way on,
 * and the search it links to is filled in.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  server = await startServer();
  const now = Date.now() / 1000;
  await ingest(server.base, [
    {
      v: 1,
      id: "ev-online",
      kind: "worker",
      type: "online",
      ts: now,
      seq: 0,
      host: "every@host",
      pid: 4242,
      freq: 3600,
      pool: "prefork",
      concurrency: 2,
      queues: ["celery"],
      registered: [
        { name: "app.add", module: "app", signature: "(x, y)", doc: "Adds." },
        { name: "app.boom", module: "app", signature: "(x=None)", doc: null },
      ],
    },
  ]);
  for (const name of ["01_single_success", "02_failure", "12_unregistered"])
    await ingest(server.base, wireFixture(name));
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("everyday use", () => {
  it("an unknown task id explains itself and links to a search for it", async () => {
    await page.goto(`${server.base}/tasks/0000dead-beef-4000-8000-000000000000`);
    const box = page.locator("[data-task-error]");
    await box.waitFor();
    const message = await box.innerText();
    expect(message).toContain("is not available");
    expect(message).toContain("retention period");
    await screenshot(page, "40-unknown-task");
    await box.getByRole("link", { name: "search for it" }).click();
    await page.waitForURL(/\/\?q=0000dead/);
    expect(await page.getByLabel("Find a task by id").inputValue()).toBe(
      "0000dead-beef-4000-8000-000000000000",
    );
  });

  it("the registry searches, filters by status, explains 'Not registered' and opens a name's recent runs", async () => {
    await page.goto(`${server.base}/registry`);
    await page.locator('tr[data-task-name="app.add"]').waitFor();
    expect(await page.title()).toBe("Task registry · stemtrace");
    expect(await page.locator("[data-not-registered-help]").innerText()).toContain(
      "no online worker registers this name",
    );
    // Queue wait beside run time (published → started of the recorded run).
    expect(await page.locator('tr[data-task-name="app.add"] [data-queue-p50]').innerText()).toMatch(
      /\d+(\.\d+)? (ms|s)/,
    );
    await page.getByLabel("Search task names").fill("boo");
    await page.locator('tr[data-task-name="app.add"]').waitFor({ state: "detached" });
    expect(await page.locator('tr[data-task-name="app.boom"]').count()).toBe(1);
    await page.getByLabel("Search task names").fill("");
    await page.getByLabel("Status").selectOption("NOT_REGISTERED");
    expect(await page.locator("tr[data-task-name]").count()).toBe(1);
    await page.getByLabel("Status").selectOption("");
    await page.locator('tr[data-task-name="app.boom"]').click();
    const runs = page.locator('[data-recent-runs="app.boom"]');
    await runs.waitFor();
    expect(await runs.innerText()).toMatch(/1 failed/);
    await screenshot(page, "41-registry-expanded");
  });

  it("the workers page shows each worker's pid and its registered task names", async () => {
    await page.goto(`${server.base}/workers`);
    const row = page.locator('tr[data-worker="every@host"]');
    await row.waitFor();
    expect(await page.title()).toBe("Workers · stemtrace");
    expect(await row.innerText()).toContain("4242");
    await row.locator("summary").click();
    expect(await row.locator(".registered-names li").allInnerTexts()).toEqual(["app.add", "app.boom"]);
    await screenshot(page, "42-workers-registered");
  });

  it("the Tasks page lists every task, sorts by a column, filters, and opens a task in its trace", async () => {
    await page.goto(`${server.base}/tasks`);
    const list = page.locator("[data-task-list]");
    await list.waitFor();
    expect(await page.title()).toBe("Tasks · stemtrace");
    // The check-free recordings: 01 (app.add), 02 (app.boom), 12 (does.not.exist): one task each.
    await page.locator('tr[data-task-id="e6f835a4-3694-4b3b-8f7e-0a24625da7a4"]').waitFor();
    expect(await list.locator("tbody tr").count()).toBeGreaterThanOrEqual(3);
    await page.getByRole("button", { name: "runtime" }).click();
    await page.waitForURL(/sort=runtime/);
    await page.getByLabel("State").selectOption("FAILURE");
    await page.waitForURL(/state=FAILURE/);
    await page
      .locator('tr[data-task-id="d2b0bddd-04b6-47c2-bff0-5bb4d253c9e0"]')
      .waitFor({ state: "detached" });
    const rows = list.locator("tbody tr");
    expect(await rows.count()).toBe(1);
    await screenshot(page, "43-tasks");
    await rows.first().click();
    await page.waitForURL(/\/traces\/.+\?task=e6f835a4/);
    await page.locator("aside.side-panel").waitFor();
  });
});
