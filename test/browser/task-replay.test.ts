/**
 * The side panel while replaying (`?at=`): a task clicked in the replayed graph opens as it was at
 * that moment (`GET /api/tasks/:taskId?at=`), said so ("as of … (replay)"), and as it is now once
 * the page is back to live. On a recorded chord.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;

type Event = { kind: string; ts: number; task_id: string; type: string; trace_id?: string | null };
const chord = wireFixture("07_chord") as Event[];
const trace = chord.find((e) => e.kind === "task")!.trace_id!;
const FIRST = "980cf0c5-aba0-4198-8d65-f0cc400ba427";
const CALLBACK = "a8a105c9-4b68-4925-8153-5ab3d922fc62";
// Mid-run: the first header task has started and not finished; the callback is only announced.
const mid = chord.find((e) => e.task_id === FIRST && e.type === "started")!.ts;

const panel = () => page.locator("aside.side-panel");
const badge = () => panel().locator(".task-detail h2 .state-badge");

beforeAll(async () => {
  server = await startServer();
  await ingest(server.base, chord);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("the task panel while replaying", () => {
  it("opens a running task as it was then, says so, and shows it as it is once back to live", async () => {
    await page.goto(`${server.base}/traces/${trace}?at=${mid}`);
    await page.locator(`[data-task-id="${FIRST}"][data-state="STARTED"]`).click();
    const asOf = panel().locator("[data-replay-as-of]");
    await asOf.waitFor();
    expect(Number(await asOf.getAttribute("data-replay-as-of"))).toBe(mid);
    expect(await asOf.innerText()).toMatch(/As of .* \(replay\)/);
    expect(await badge().getAttribute("data-state")).toBe("STARTED");
    const text = await panel().innerText();
    // Headings are upper-cased by CSS: innerText reads them so. Not finished: no result section.
    expect(text).not.toMatch(/^result$/im);
    expect(text).toMatch(/^attempts \(1\)$/im);
    expect(text).toMatch(/^events \(3\)$/im);
    await screenshot(page, "76-replay-task-as-of");

    // The announced callback had not been sent yet: the panel says so instead of showing it now.
    // Its card's left edge: the open panel covers the right part of the graph.
    await page
      .locator(`[data-task-id="${CALLBACK}"][data-state="PENDING"]`)
      .click({ position: { x: 15, y: 15 } });
    await page.waitForURL(`**task=${CALLBACK}**`);
    await panel()
      .getByText(/did not exist yet/)
      .waitFor();
    expect(await panel().innerText()).toMatch(/was not published yet at .* \(replay\)/);
    await screenshot(page, "77-replay-task-not-yet");

    // Back to the first task, then back to live: the same panel shows the finished task.
    await page.locator(`[data-task-id="${FIRST}"][data-state="STARTED"]`).click();
    await badge().and(page.locator('[data-state="STARTED"]')).waitFor();
    await page.getByRole("button", { name: "Back to live" }).click();
    await badge().and(page.locator('[data-state="SUCCESS"]')).waitFor();
    expect(await panel().locator("[data-replay-as-of]").count()).toBe(0);
    await panel().getByText("Result").waitFor();
    await screenshot(page, "78-replay-task-live");
  });

  it("links from the replayed task to the task as it is now", async () => {
    await page.goto(`${server.base}/traces/${trace}?at=${mid}&task=${FIRST}`);
    await panel().locator("[data-replay-as-of]").waitFor();
    await panel().getByRole("link", { name: "see it now" }).click();
    await page.waitForURL(`**/tasks/${FIRST}`);
    await page.locator('.task-detail h2 .state-badge[data-state="SUCCESS"]').waitFor();
    expect(await page.locator("[data-replay-as-of]").count()).toBe(0);
  });
});
