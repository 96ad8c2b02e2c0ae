/**
 * Compare runs (issue 17 item 2) on the trace page: the recorded chord replayed as three runs of
 * one root task (new ids, shifted times; one slower header task, one that started later, one that
 * failed so the callback never ran), then Compare toggled on the last run: the cards are coloured
 * by their change and the biggest changes are listed, linked to their tasks.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingest, launchBrowser, screenshot, startServer, wireFixture, type Server } from "./harness";

type Ev = {
  kind: string;
  type: string;
  task_id: string;
  trace_id?: string | null;
  name?: string;
  ts: number;
  group_index?: number | null;
  runtime_ms?: number | null;
  result?: unknown;
  [k: string]: unknown;
};

const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const chord = (wireFixture("07_chord") as Ev[]).filter((e) => e.kind === "task");
const member = (i: number) => chord.find((e) => e.type === "published" && e.group_index === i)!.task_id;
const callback = chord.find((e) => e.name === "app.tsum")!.task_id;
const traceOf = (suffix: string) => `${chord[0]!.trace_id}-${suffix}`;
const id = (task: string, suffix: string) => `${task}-${suffix}`;

/** Another run of the recording: ids suffixed, names renamed, times shifted to `agoS` seconds ago, then `edit`. */
function replay(suffix: string, agoS: number, edit: (e: Ev) => Ev | null = (e) => e): Ev[] {
  const shift = Date.now() / 1000 - agoS - chord[0]!.ts;
  const text = JSON.stringify(chord)
    .replace(uuid, (x) => `${x}-${suffix}`)
    .replace(/"app\.(add|tsum)"/g, '"cmp.$1"');
  return (JSON.parse(text) as Ev[])
    .map((e) => edit({ ...e, ts: e.ts + shift }))
    .filter((e): e is Ev => e !== null);
}
const is = (e: Ev, task: string, type: string) => e.task_id.startsWith(task) && e.type === type;

let server: Server;
let browser: Browser;
let page: Page;
const A = traceOf("cmpa");
const B = traceOf("cmpb");
const C = traceOf("cmpc");

beforeAll(async () => {
  server = await startServer();
  await ingest(server.base, replay("cmpa", 3 * 3600));
  // B: header task 1 ran 2 s longer.
  await ingest(
    server.base,
    replay("cmpb", 2 * 3600, (e) =>
      is(e, member(1), "succeeded") ? { ...e, ts: e.ts + 2, runtime_ms: (e.runtime_ms ?? 0) + 2000 } : e,
    ),
  );
  // C: header task 0 waited 0.5 s longer, task 2 failed, so the callback never ran.
  await ingest(
    server.base,
    replay("cmpc", 3600, (e) => {
      if (e.task_id.startsWith(member(0)) && (e.type === "started" || e.type === "succeeded"))
        return { ...e, ts: e.ts + 0.5 };
      if (is(e, member(2), "succeeded")) {
        const { runtime_ms: _r, result: _res, ...rest } = e;
        return { ...rest, type: "failed", exception: { type: "ValueError", message: "boom" } };
      }
      return e.task_id.startsWith(callback) ? null : e;
    }),
  );
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // The index has a trace within a flush interval of its events: wait until the diff can find B.
  for (let i = 0; i < 60; i++) {
    const res = await fetch(`${server.base}/api/traces/${C}/diff?against=previous`);
    if (res.ok && ((await res.json()) as { against: { trace_ids: string[] } }).against.trace_ids[0] === B)
      break;
    await new Promise((r) => setTimeout(r, 500));
  }
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const card = (task: string) => page.locator(`.task-node[data-task-id="${task}"]`);

describe("Compare on the trace page", () => {
  it("colours the graph by the change since the previous run and lists the biggest changes", async () => {
    await page.goto(`${server.base}/traces/${C}`);
    await card(id(member(2), "cmpc")).waitFor();
    expect(await page.locator(".task-node[data-compare]").count()).toBe(0);

    await page.getByRole("button", { name: "⇄ Compare" }).click();
    await page.locator(".compare-changes li").first().waitFor();
    expect(new URL(page.url()).searchParams.get("compare")).toBe("previous");
    // What it was compared with: run B, named and linked.
    await expect
      .poll(() => page.locator("[data-compared-trace]").getAttribute("data-compared-trace"))
      .toBe(B);
    expect(await page.locator(".compare-against").textContent()).toContain("previous run of");

    expect(await card(id(member(2), "cmpc")).getAttribute("data-compare")).toBe("failed");
    expect(await card(id(callback, "cmpc")).getAttribute("data-compare")).toBe("not-run");
    // Header task 1 took 2 s in B and milliseconds now: far faster.
    expect(await card(id(member(1), "cmpc")).getAttribute("data-compare")).toBe("faster-3");
    expect(await card(id(member(0), "cmpc")).getAttribute("data-compare")).toBe("same");
    expect(
      await card(id(member(1), "cmpc"))
        .locator(".compare-chip")
        .textContent(),
    ).toMatch(/^−2\.00 s$/);

    const rows = page.locator(".compare-changes li");
    expect(await rows.evaluateAll((li) => li.map((x) => x.getAttribute("data-task-id")))).toEqual([
      id(member(2), "cmpc"),
      id(callback, "cmpc"),
      id(member(1), "cmpc"),
      id(member(0), "cmpc"),
    ]);
    expect(await rows.first().textContent()).toContain("newly failed");
    await screenshot(page, "70-compare-previous");

    // A change links to its task: the detail opens beside the graph.
    await rows.nth(2).getByRole("link").click();
    await page.locator(".side-panel").waitFor();
    expect(new URL(page.url()).searchParams.get("task")).toBe(id(member(1), "cmpc"));
    expect(await card(id(member(1), "cmpc")).getAttribute("class")).toContain("selected");
    await screenshot(page, "71-compare-selected");

    // The same marks in the dark theme (looked at: chips and rings stay readable).
    await page.emulateMedia({ colorScheme: "dark" });
    await screenshot(page, "74-compare-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  it("colours by queue wait on request", async () => {
    await page.locator(".compare-metric select").selectOption("queue_wait");
    await expect.poll(() => card(id(member(0), "cmpc")).getAttribute("data-compare")).toMatch(/^slower-/);
    expect(new URL(page.url()).searchParams.get("compare_by")).toBe("queue_wait");
  });

  it("compares with the median of the other runs, or with a trace given by id", async () => {
    await page.getByRole("button", { name: "median of last 20" }).click();
    await expect.poll(() => page.locator(".compare-against").textContent()).toContain("median of the last 2");
    await page.locator(".compare-metric select").selectOption("runtime");
    // The median of 2 runs is their mean: header task 1 is still more than 3× faster than that.
    await expect.poll(() => card(id(member(1), "cmpc")).getAttribute("data-compare")).toBe("faster-3");
    await screenshot(page, "72-compare-median");

    await page.getByLabel("Trace id to compare with").fill(A);
    await page.getByRole("button", { name: "Compare", exact: true }).click();
    await expect
      .poll(() => page.locator("[data-compared-trace]").getAttribute("data-compared-trace"))
      .toBe(A);
    // A ran header task 1 as fast as C: no change there.
    await expect.poll(() => card(id(member(1), "cmpc")).getAttribute("data-compare")).toBe("same");
    expect(await card(id(member(2), "cmpc")).getAttribute("data-compare")).toBe("failed");

    // A trace with no earlier run says so.
    await page.goto(`${server.base}/traces/${A}?compare=previous`);
    await page.locator(".compare-error").waitFor();
    await card(id(member(0), "cmpa")).waitFor();
    expect(await page.locator(".compare-error").textContent()).toContain("no earlier run of cmp.add");
    await screenshot(page, "73-compare-no-earlier-run");

    await page.getByRole("button", { name: "⇄ Compare" }).click();
    await expect.poll(() => page.locator(".compare-bar").count()).toBe(0);
  });
});
