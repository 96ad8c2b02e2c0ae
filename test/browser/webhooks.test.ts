/**
 * The Webhooks page (issue 17 item 5) against `wrangler dev` configured with WEBHOOK_URLS that
 * point at a receiver on loopback: the endpoint by host only, the delivery log with a delivered, a
 * refused (410) and a retrying (500) delivery, and Redeliver once the receiver accepts.
 */
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebhookDeliveryList, type WebhookDelivery } from "../../shared/webhooks";
import { ingest, launchBrowser, screenshot, wireFixture, type Server } from "./harness";
// @ts-expect-error plain ESM helper shared with the benchmarks
import { startWranglerDev } from "../../bench/wrangler-dev.mjs";

let server: Server;
let receiver: HttpServer;
let browser: Browser;
let page: Page;
/** Whether the receiver accepts the `flaky-` trace's deliveries yet. */
let acceptFlaky = false;

const failure = wireFixture("02_failure") as { kind: string; trace_id?: string | null }[];
const failureTrace = failure.find((e) => e.kind === "task")!.trace_id!;
const gone = `gone-${Date.now()}`;
const flaky = `flaky-${Date.now()}`;

let seq = 0;
function failedTrace(id: string) {
  const now = Date.now() / 1000;
  return (["received", "started", "failed"] as const).map((type, i) => ({
    v: 1,
    id: `${id}-${++seq}`,
    kind: "task",
    type,
    ts: now - 3 + i,
    seq,
    host: "w1@h",
    pid: 1,
    task_id: id,
    name: "app.hooked",
    trace_id: id,
    ...(type === "failed" ? { exception: { type: "ValueError", message: "boom" } } : {}),
  }));
}

async function deliveries(): Promise<WebhookDelivery[]> {
  const res = await fetch(`${server.base}/api/webhooks/deliveries`);
  return WebhookDeliveryList.parse(await res.json()).deliveries;
}

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const traceId = String((JSON.parse(raw) as { data: { trace_id: string } }).data.trace_id);
      const status = traceId === gone ? 410 : traceId === flaky && !acceptFlaky ? 500 : 200;
      res
        .writeHead(status, { "Content-Type": "text/plain" })
        .end(status === 200 ? "ok" : status === 410 ? "unsubscribed" : "receiver busy");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const { port } = receiver.address() as AddressInfo;
  server = (await startWranglerDev({
    vars: {
      WEBHOOK_URLS: `http://127.0.0.1:${port}/hooks/stemtrace?token=never-shown`,
      WEBHOOK_SECRET: "browser-test-secret",
    },
  })) as Server;
  await ingest(server.base, [...failure, ...failedTrace(gone), ...failedTrace(flaky)]);
  // Deliveries go out from the Webhooks object's alarm within a few seconds of the shards' flush.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ds = await deliveries();
    if (ds.length === 3 && ds.every((d) => d.attempts > 0)) break;
    if (Date.now() > deadline) throw new Error(`deliveries not attempted: ${JSON.stringify(ds)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
});

describe("webhooks page", () => {
  it("shows the endpoint by host only and the delivery log; Redeliver sends a retrying delivery now", async () => {
    await page.goto(`${server.base}/webhooks`);
    const rows = page.locator("table.webhook-log tbody tr");
    await rows.nth(2).waitFor();
    await screenshot(page, "70-webhooks-log");

    const { port } = receiver.address() as AddressInfo;
    await expect(page.locator(".webhook-config [data-endpoint]").allTextContents()).resolves.toEqual([
      `127.0.0.1:${port}`,
    ]);
    const body = await page.locator("main").innerText();
    expect(body).not.toContain("never-shown");
    expect(body).not.toContain("browser-test-secret");
    expect(body).toContain("trace.failed");

    const deliveryOf = async (traceId: string) => (await deliveries()).find((x) => x.trace_id === traceId)!;
    const row = (d: WebhookDelivery) => page.locator(`tr[data-delivery="${d.id}"]`);
    const ok = row(await deliveryOf(failureTrace));
    await expect(ok.getAttribute("data-status")).resolves.toBe("succeeded");
    await expect(ok.innerText()).resolves.toContain("HTTP 200");
    const refused = row(await deliveryOf(gone));
    await expect(refused.getAttribute("data-status")).resolves.toBe("failed");
    await expect(refused.innerText()).resolves.toContain("HTTP 410");
    const before = await deliveryOf(flaky);
    const retrying = row(before);
    await expect(retrying.getAttribute("data-status")).resolves.toBe("pending");
    await expect(retrying.innerText()).resolves.toMatch(/HTTP 500[\s\S]*in \d+ (s|min)/);

    acceptFlaky = true;
    await retrying.getByRole("button", { name: "Redeliver" }).click();
    await page.locator(`tr[data-delivery="${before.id}"][data-status="succeeded"]`).waitFor();
    const after = await deliveryOf(flaky);
    expect(after).toMatchObject({ status: "succeeded", last_status: 200, next_attempt_at: null });
    expect(after.attempts).toBeGreaterThan(before.attempts);
    await screenshot(page, "71-webhooks-redelivered");
  });
});
