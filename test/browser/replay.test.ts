/**
 * Time-travel replay on the trace page (issue 17 item 1): open replay, step through a recorded
 * chord event by event, see the graph and the timeline as they were, keep the moment in the URL
 * (a reload opens there), ignore live deltas while replaying, play to the end, go back to live.
 */
import type { Browser, Page, WebSocket } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

let server: Server;
let browser: Browser;
let page: Page;
/** The page's sockets (the trace's live socket among them), to see a delta frame arrive. */
const sockets: WebSocket[] = [];

type Event = { kind: string; ts: number; task_id: string; type: string; trace_id?: string | null };
const chord = wireFixture("07_chord") as Event[];
const trace = chord.find((e) => e.kind === "task")!.trace_id!;
const HEADER = ["980cf0c5-aba0-4198-8d65-f0cc400ba427", "67278e89-5bc2-4280-bda3-b76219f0edb4"] as const;
const THIRD = "07b6e364-f211-4951-8903-8d920f49c7b1";
const CALLBACK = "a8a105c9-4b68-4925-8153-5ab3d922fc62";
// The run up to the third header task starting is stored first; the rest arrives while replaying.
const cut = chord.find((e) => e.task_id === THIRD && e.type === "started")!.ts;
const early = chord.filter((e) => e.ts <= cut);
const late = chord.filter((e) => e.ts > cut);
const moments = [...new Set(early.map((e) => e.ts))].sort((a, b) => a - b);

const task = (id: string, state: string) => page.locator(`[data-task-id="${id}"][data-state="${state}"]`);
const atInUrl = () => new URL(page.url()).searchParams.get("at");
const readout = () => page.locator(".replay-readout");

/** Clicks a step button and waits for the moment it leads to (the count of applied events). */
async function step(name: "Next event" | "Previous event", applied: number, total: number) {
  await page.getByRole("button", { name, exact: true }).click();
  await readout().getByText(`${applied} of ${total} events`).waitFor();
}

beforeAll(async () => {
  server = await startServer();
  await ingest(server.base, early);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("websocket", (ws) => sockets.push(ws));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("replay on the trace page", () => {
  it("opens at the start, steps event by event, and redraws graph and timeline as they were", async () => {
    await page.goto(`${server.base}/traces/${trace}`);
    await task(THIRD, "STARTED").waitFor();
    await page.locator(".connection.live").waitFor();
    await screenshot(page, "69-replay-button");
    await page.getByRole("button", { name: "Replay", exact: true }).click();
    await readout().getByText(`1 of ${early.length} events`).waitFor();
    expect(Number(atInUrl())).toBe(moments[0]);
    // The first event: the first header task published, its chord's callback announced.
    await task(HEADER[0], "PENDING").waitFor();
    expect(await page.locator(`[data-task-id="${THIRD}"]`).count()).toBe(0);
    await screenshot(page, "70-replay-open");

    for (let k = 1; k <= 5; k++) await step("Next event", k + 1, early.length);
    expect(Number(atInUrl())).toBe(moments[5]);
    await task(HEADER[0], "STARTED").waitFor();
    await task(HEADER[1], "RECEIVED").waitFor();
    await task(THIRD, "PENDING").waitFor();
    await task(CALLBACK, "PENDING").waitFor();
    await screenshot(page, "71-replay-step");

    await step("Previous event", 5, early.length);
    await task(HEADER[0], "RECEIVED").waitFor();
    await step("Next event", 6, early.length);
    await task(HEADER[0], "STARTED").waitFor();

    // The timeline of that moment: three tasks sent so far (the callback is only announced).
    await page.getByRole("tab", { name: "Timeline" }).click();
    await page.locator(".timeline-item").first().waitFor();
    expect(await page.locator(".timeline-item").count()).toBe(3);
    expect(Number(atInUrl())).toBe(moments[5]);
    await screenshot(page, "72-replay-timeline");
    await page.getByRole("tab", { name: "Graph" }).click();
    await task(HEADER[0], "STARTED").waitFor();
  });

  it("keeps the replayed moment while live deltas arrive", async () => {
    // The trace's socket is open: wait for the frame the late events cause.
    const frame = new Promise<void>((resolve) => {
      const watch = (data: string | Buffer) => {
        if (String(data).includes('"type":"delta"')) resolve();
      };
      for (const ws of sockets) ws.on("framereceived", ({ payload }) => watch(payload));
    });
    await ingest(server.base, late);
    await frame;
    // The live snapshot refetches or patches itself now; let that finish before looking.
    await page.waitForLoadState("networkidle");
    await task(HEADER[0], "STARTED").waitFor();
    await task(CALLBACK, "PENDING").waitFor();
    for (const id of [THIRD, CALLBACK])
      for (const state of ["STARTED", "SUCCESS"])
        expect(
          await page.locator(`[data-task-id="${id}"][data-state="${state}"]`).count(),
          `${id} ${state}`,
        ).toBe(0);
    await readout().getByText(`6 of ${early.length} events`).waitFor();
  });

  it("opens a shared link at the same moment", async () => {
    const url = page.url();
    expect(url).toContain(`at=${moments[5]}`);
    await page.reload();
    // All events are stored now: the same moment, out of more events.
    await readout().getByText(`6 of ${chord.length} events`).waitFor();
    await task(HEADER[0], "STARTED").waitFor();
    await task(HEADER[1], "RECEIVED").waitFor();
    await task(CALLBACK, "PENDING").waitFor();
    expect(page.url()).toBe(url);
    await screenshot(page, "73-replay-shared-link");
  });

  it("plays to the end, then goes back to live", async () => {
    await page.getByRole("combobox", { name: "Speed" }).selectOption({ label: "4 events/s" });
    await page.getByRole("button", { name: "Play", exact: true }).click();
    await page.getByRole("button", { name: "Pause", exact: true }).waitFor();
    await readout().getByText(`${chord.length} of ${chord.length} events`).waitFor({ timeout: 30_000 });
    await task(CALLBACK, "SUCCESS").waitFor();
    await page.getByRole("button", { name: "Play", exact: true }).waitFor();
    await screenshot(page, "74-replay-end");

    await page.getByRole("button", { name: "Back to live" }).click();
    expect(atInUrl()).toBeNull();
    expect(await page.locator(".replay-bar").count()).toBe(0);
    await task(CALLBACK, "SUCCESS").waitFor();
    await task(THIRD, "SUCCESS").waitFor();
  });

  it("explains a link whose moment is not a number, and shows the trace live", async () => {
    await page.goto(`${server.base}/traces/${trace}?at=yesterday`);
    await page
      .locator(".replay-error")
      .getByText(/finite number of epoch seconds/)
      .waitFor();
    await task(CALLBACK, "SUCCESS").waitFor();
    await screenshot(page, "75-replay-bad-link");
  });
});
