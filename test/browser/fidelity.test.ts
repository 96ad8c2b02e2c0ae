/**
 * Celery fidelity in the browser (issue 12), on real recordings: a chord in the middle of a chain
 * draws as CHORD → callback → next step; when a header task fails, the callback and the step after
 * it are NOT_RUN cards that open like any task, with chord_never_fired on the callback; a retried
 * task's waits are drawn as waiting, not running.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

const IN_CHAIN = {
  trace: "6cf33936-74c6-4e9b-a681-cf80c6a5b1b8",
  callback: "bec189b2-c8a0-401f-a9c3-5f489c0b788b",
  last: "ba411506-0b0d-41ec-b1c0-cefcca41145f",
};
const FAILS = {
  trace: "b0176ce2-7895-4bec-b9e0-41764263ad12",
  callback: "d35e2562-5c3f-4d47-a4c1-29b907948598",
  last: "7261d47d-6380-45a7-be5d-a2e190e1a3a4",
};
const RETRIED = "a44d6bda-7b42-4cee-9b8f-e18c92bb5079";

beforeAll(async () => {
  server = await startServer();
  for (const name of ["25a_chord_in_chain", "25b_chord_in_chain_header_fails", "03_retry_then_success"])
    await ingest(server.base, wireFixture(name));
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("Celery fidelity in the UI", () => {
  it("draws a chord inside a chain as CHORD → callback → the next step", async () => {
    await page.goto(`${server.base}/traces/${IN_CHAIN.trace}`);
    const chord = page.locator(`[data-container-id][data-kind="CHORD"]`);
    await chord.waitFor();
    const chordId = await chord.getAttribute("data-container-id");
    expect(await page.locator(`.react-flow__node[data-id="${chordId}"] .task-node`).count()).toBe(2);
    await page.locator(`[data-task-id="${IN_CHAIN.callback}"][data-state="SUCCESS"]`).waitFor();
    await page.locator(`[data-task-id="${IN_CHAIN.last}"][data-state="SUCCESS"]`).waitFor();
    expect(
      await page.locator(`[data-testid="rf__edge-chord:${chordId}->${IN_CHAIN.callback}"]`).count(),
    ).toBe(1);
    expect(
      await page.locator(`[data-testid="rf__edge-chain:${IN_CHAIN.callback}->${IN_CHAIN.last}"]`).count(),
    ).toBe(1);
    expect(await page.locator(".react-flow__edge.edge-spawn").count()).toBe(0);
    await screenshot(page, "20-chord-in-chain");
  });

  it("a failed header leaves the callback and the next step NOT_RUN, flagged once, and they open", async () => {
    await page.goto(`${server.base}/traces/${FAILS.trace}`);
    await page.locator(`[data-task-id="${FAILS.callback}"][data-state="NOT_RUN"]`).waitFor();
    await page.locator(`[data-task-id="${FAILS.last}"][data-state="NOT_RUN"]`).waitFor();
    // The graph check runs from the alarm about a second after the failure: reload until it flagged.
    for (let i = 0; i < 20 && !(await page.locator(".anomaly-badge").count()); i++) {
      await page.waitForTimeout(500);
      await page.reload();
      await page.locator(`[data-task-id="${FAILS.callback}"]`).waitFor();
    }
    expect(await page.locator(".trace-facts").innerText()).toMatch(/3\s+ran · 2\s+not run/);
    expect(await page.locator(`[data-task-id="${FAILS.callback}"]`).getAttribute("title")).toContain(
      "chord_never_fired",
    );
    expect(await page.locator(`[data-task-id="${FAILS.last}"]`).getAttribute("title")).not.toContain("⚠");
    // A click on the "not run" card opens the task, not "Could not load task".
    await page.locator(`[data-task-id="${FAILS.callback}"]`).click();
    const panel = page.locator("aside.side-panel");
    await panel.getByText("Parent").waitFor();
    expect(await panel.innerText()).not.toContain("Could not load");
    expect(await panel.innerText()).toContain("chord of 2 tasks");
    await screenshot(page, "21-chord-in-chain-header-fails");
    // The id the client holds (AsyncResult.id of the chain) opens as a page too.
    await page.goto(`${server.base}/tasks/${FAILS.last}`);
    await page.locator(`[data-state="NOT_RUN"]`).first().waitFor();
    expect(await page.locator("body").innerText()).not.toContain("Could not load");
  });

  it("draws a retried task's countdowns as waiting, each run as its own bar", async () => {
    await page.goto(`${server.base}/traces/${RETRIED}?view=timeline`);
    const item = page.locator(`.timeline-item[data-task-id="${RETRIED}"]`);
    await item.waitFor();
    expect(await item.locator("[data-run]").count()).toBe(3);
    expect(await item.locator("[data-wait]").count()).toBe(2);
    await screenshot(page, "22-retry-waits");
    // In the task detail each attempt says how long it waited and how long it ran.
    await page.goto(`${server.base}/tasks/${RETRIED}`);
    const segments = page.locator("[data-segments]");
    await segments.first().waitFor();
    expect(await segments.count()).toBe(3);
    expect(await segments.nth(1).innerText()).toMatch(/waited \(retry countdown\)\s+\d/);
    expect(await segments.nth(1).innerText()).toMatch(/running\s+\d+(\.\d+)?\s*ms/);
  });
});
