/**
 * Webhooks end to end inside workerd: events ingested through the Worker, flushed by the shards,
 * handed to the Webhooks object, delivered over real HTTP to the loopback receiver of
 * global-setup.ts (which checks each signature with node:crypto). Retries are made due with SQL
 * and run with runDurableObjectAlarm: no sleeps.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import type { TaskEvent } from "../../shared/wire";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import type { Webhooks } from "../../durable-objects/webhooks";
import {
  WebhookDelivery,
  WebhookDeliveryList,
  WebhookSettings,
  type WebhookDelivery as Delivery,
} from "../../shared/webhooks";
import { TraceList } from "../../shared/api";
import { graphOf, settle } from "../workers/objects";
import { scenario, taskEvents } from "../workers/scenarios";
import type { ReceivedRequest } from "./global-setup";

let n = 0;
const now = () => Date.now() / 1000;

function ev(task_id: string, type: TaskEvent["type"], extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `wh-${task_id}-${n}`,
    kind: "task",
    type,
    ts: now(),
    seq: n,
    host: "w1@h",
    pid: 1,
    task_id,
    name: "app.hooked",
    trace_id: task_id,
    ...extra,
  };
}

async function post(events: unknown[]) {
  const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(202);
  expect(((await res.json()) as { rejected: unknown[] }).rejected).toEqual([]);
  await settle();
}

/** A trace of one task that failed. */
const failedTrace = (id: string) => [
  ev(id, "received", { ts: now() - 3 }),
  ev(id, "started", { ts: now() - 2 }),
  ev(id, "failed", { ts: now() - 1, exception: { type: "ValueError", message: "boom" } }),
];

const hooks = () => env.WEBHOOKS.getByName("global");

async function api<T>(path: string, schema: { parse(v: unknown): T }, init?: RequestInit): Promise<T> {
  const res = await exports.default.fetch(`http://127.0.0.1${path}`, init);
  expect(res.status, path).toBe(200);
  return schema.parse(await res.json());
}

const deliveriesOf = async (traceId: string): Promise<Delivery[]> =>
  (await api("/api/webhooks/deliveries?limit=1000", WebhookDeliveryList)).deliveries.filter(
    (d) => d.trace_id === traceId,
  );

async function received(): Promise<ReceivedRequest[]> {
  const res = await fetch(`${inject("webhookReceiver")}/log`);
  return (await res.json()) as ReceivedRequest[];
}
const receivedFor = async (traceId: string) =>
  (await received()).filter(
    (r) => (r.body as { data?: { trace_id?: string } } | null)?.data?.trace_id === traceId,
  );

/**
 * Runs the Webhooks object's alarm until the trace's deliveries are all finished, making each
 * pending retry due first. Returns each attempt's scheduled wait (next attempt − that attempt).
 */
async function deliverAll(traceId: string): Promise<number[]> {
  const waits: number[] = [];
  for (let round = 0; round < 20; round++) {
    await runDurableObjectAlarm(hooks());
    const ds = await deliveriesOf(traceId);
    expect(ds.length, `deliveries of ${traceId}`).toBeGreaterThan(0);
    if (ds.every((d) => d.status !== "pending")) return waits;
    for (const d of ds)
      if (d.status === "pending" && d.next_attempt_at !== null && d.last_attempt_at !== null)
        waits.push(d.next_attempt_at - d.last_attempt_at);
    await runInDurableObject(hooks(), async (_o: Webhooks, state) => {
      state.storage.sql.exec(
        "UPDATE deliveries SET next_at = 0 WHERE status = 'pending' AND trace_id = ?",
        traceId,
      );
      await state.storage.setAlarm(Date.now());
    });
  }
  throw new Error(`the deliveries of ${traceId} did not finish in 20 alarms`);
}

describe("webhook deliveries", () => {
  it("shows the endpoints by host only, never the URL's path, query or the secret", async () => {
    const settings = await api("/api/webhooks", WebhookSettings);
    const { host } = new URL(inject("webhookReceiver"));
    expect(settings.endpoints).toEqual([{ host }]);
    expect(settings.events).toEqual(["anomaly.opened", "anomaly.resolved", "trace.failed"]);
    expect(settings.secret_set).toBe(true);
    expect(settings.problems).toEqual(["WEBHOOK_URLS entry 2 is not a URL; it is skipped"]);
    expect(JSON.stringify(settings)).not.toContain("url-token-123");
  });

  it("survives a receiver that fails twice: delivered on attempt 3, signed every time, accepted once", async () => {
    const id = `flaky-${crypto.randomUUID()}`;
    await post(failedTrace(id));
    const waits = await deliverAll(id);
    const [d, ...more] = await deliveriesOf(id);
    expect(more).toEqual([]);
    expect(d).toMatchObject({
      type: "trace.failed",
      event_id: `trace.failed:${id}:1`,
      status: "succeeded",
      attempts: 3,
      last_status: 200,
      last_error: null,
      next_attempt_at: null,
    });
    expect(d!.endpoint).toBe(new URL(inject("webhookReceiver")).host);
    expect(d!.delivered_at).not.toBeNull();
    // Backoff: about 30 s after the first failure, about 60 s after the second (±25 % jitter).
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(22.5);
    expect(waits[0]).toBeLessThanOrEqual(37.5);
    expect(waits[1]).toBeGreaterThanOrEqual(45);
    expect(waits[1]).toBeLessThanOrEqual(75);

    const got = await receivedFor(id);
    expect(got.map((r) => r.answered)).toEqual([500, 500, 200]);
    expect(got.every((r) => r.signature_ok)).toBe(true);
    expect(got.every((r) => r.delivery === d!.id && r.event === "trace.failed")).toBe(true);
    expect(got[0]!.path).toBe("/hook?token=url-token-123");
    expect(got[0]!.user_agent).toMatch(/^stemtrace-webhooks\//);
    const body = got[2]!.body as {
      id: string;
      type: string;
      created_at: number;
      data: { trace_id: string; state: string; failure_count: number; links: { trace: string } };
    };
    expect(body).toMatchObject({
      id: `trace.failed:${id}:1`,
      type: "trace.failed",
      data: { trace_id: id, state: "FAILURE", failure_count: 1, links: { trace: `/traces/${id}` } },
    });
    // The same body each time (receivers dedupe by its id).
    expect(new Set(got.map((r) => JSON.stringify(r.body))).size).toBe(1);
  });

  it("stops at once on 410 Gone: failed after one attempt, never retried", async () => {
    const id = `gone-${crypto.randomUUID()}`;
    await post(failedTrace(id));
    await deliverAll(id);
    const [d] = await deliveriesOf(id);
    expect(d).toMatchObject({ status: "failed", attempts: 1, last_status: 410, next_attempt_at: null });
    expect(d!.last_error).toBe("HTTP 410: receiver says 410");
    expect((await receivedFor(id)).map((r) => r.answered)).toEqual([410]);
  });

  it("honours Retry-After on 429", async () => {
    const id = `busy-${crypto.randomUUID()}`;
    await post(failedTrace(id));
    const waits = await deliverAll(id);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThanOrEqual(120); // not the 30 s backoff
    const [d] = await deliveriesOf(id);
    expect(d).toMatchObject({ status: "succeeded", attempts: 2 });
  });

  it("the recorded failure (02_failure) makes one delivery; a retried report or resent events make none more", async () => {
    const s = scenario("02_failure");
    const traceId = String(s.meta.ids.task);
    await post(taskEvents(s));
    await deliverAll(traceId);
    const first = await deliveriesOf(traceId);
    expect(first.map((d) => [d.type, d.status, d.event_id])).toEqual([
      ["trace.failed", "succeeded", `trace.failed:${traceId}:1`],
    ]);
    // The shard's report retried (the index or this object did not answer): the same summary again.
    const summary = (await api(`/api/traces?q=${traceId}`, TraceList)).traces[0]!;
    expect(summary.state).toBe("FAILURE");
    expect(await hooks().notify({ anomalies: [], traces: [summary] })).toEqual({ queued: 0 });
    // The producer resending its batch, and another flush.
    await post(taskEvents(s));
    await graphOf(traceId).flush();
    await runDurableObjectAlarm(hooks());
    expect(await deliveriesOf(traceId)).toEqual(first);
    expect((await receivedFor(traceId)).filter((r) => r.answered === 200)).toHaveLength(1);
  });

  it("the recorded unregistered task (12_unregistered) makes one anomaly.opened and one trace.failed delivery", async () => {
    const s = scenario("12_unregistered");
    const traceId = taskEvents(s)[0]!.trace_id!;
    await post(taskEvents(s));
    await deliverAll(traceId);
    const ds = await deliveriesOf(traceId);
    expect(ds.map((d) => [d.type, d.status]).sort()).toEqual([
      ["anomaly.opened", "succeeded"],
      ["trace.failed", "succeeded"],
    ]);
    const anomaly = (await receivedFor(traceId)).find((r) => r.event === "anomaly.opened")!;
    expect(anomaly.body).toMatchObject({ data: { kind: "unregistered", trace_id: traceId } });
    // Resent by the producer: nothing new.
    await post(taskEvents(s));
    await runDurableObjectAlarm(hooks());
    expect(await deliveriesOf(traceId)).toHaveLength(2);
  });

  it("a trace that fails, runs again and fails again is two events", async () => {
    const id = `again-${crypto.randomUUID()}`;
    await post(failedTrace(id));
    await post([ev(`${id}-child`, "received", { trace_id: id, parent_id: id })]); // running again
    await post([
      ev(`${id}-child`, "started", { trace_id: id, parent_id: id }),
      ev(`${id}-child`, "failed", {
        trace_id: id,
        parent_id: id,
        exception: { type: "KeyError", message: "x" },
      }),
    ]);
    await deliverAll(id);
    expect((await deliveriesOf(id)).map((d) => d.event_id).sort()).toEqual([
      `trace.failed:${id}:1`,
      `trace.failed:${id}:2`,
    ]);
  });

  it("an anomaly that opens makes one anomaly.opened delivery, and its resolution one anomaly.resolved", async () => {
    const id = `stuck-${crypto.randomUUID()}`;
    await post([ev(id, "published", { queue: "reports", ts: now() - 400, host: null })]);
    // The stuck-pending watch is due (published 400 s ago): the shard's alarm opens the anomaly.
    await graphOf(id).flush();
    await runInDurableObject(graphOf(id), async (_o: TraceGraph, state) => {
      const { part } = state.storage.sql
        .exec<{ part: number }>("SELECT part FROM tasks WHERE trace_id = ? LIMIT 1", id)
        .one();
      state.storage.sql.exec(
        `UPDATE tasks_${part} SET due_at = 0 WHERE trace_id = ? AND due_at IS NOT NULL`,
        id,
      );
      await state.storage.setAlarm(Date.now());
    });
    await runDurableObjectAlarm(graphOf(id));
    await runDurableObjectAlarm(graphOf(id)); // the registry check first, then the stuck watch
    await deliverAll(id);
    const opened = await deliveriesOf(id);
    expect(opened.map((d) => [d.type, d.status])).toEqual([["anomaly.opened", "succeeded"]]);
    const [req] = await receivedFor(id);
    expect(req!.body).toMatchObject({
      type: "anomaly.opened",
      data: {
        kind: "stuck_pending",
        trace_id: id,
        task_id: id,
        resolved_at: null,
        links: { trace: `/traces/${id}`, task: `/tasks/${id}` },
      },
    });

    await post([ev(id, "received")]);
    await deliverAll(id);
    expect((await deliveriesOf(id)).map((d) => d.type).sort()).toEqual([
      "anomaly.opened",
      "anomaly.resolved",
    ]);
  });

  it("redelivers from the log on request, with the same event id and a new signature", async () => {
    const id = `redo-${crypto.randomUUID()}`;
    await post(failedTrace(id));
    await deliverAll(id);
    const [d] = await deliveriesOf(id);
    const again = await api(`/api/webhooks/deliveries/${d!.id}/redeliver`, WebhookDelivery, {
      method: "POST",
    });
    expect(again).toMatchObject({ id: d!.id, status: "succeeded", attempts: 2 });
    const got = await receivedFor(id);
    expect(got).toHaveLength(2);
    expect(got.every((r) => r.signature_ok)).toBe(true);
    expect(got[0]!.body).toEqual(got[1]!.body);

    // A web page elsewhere cannot make the user's browser redeliver (cross-site write).
    const crossSite = await exports.default.fetch(
      `http://127.0.0.1/api/webhooks/deliveries/${d!.id}/redeliver`,
      {
        method: "POST",
        headers: { Origin: "https://evil.example" },
      },
    );
    expect(crossSite.status).toBe(403);
    expect(await receivedFor(id)).toHaveLength(2);

    const missing = await exports.default.fetch(
      "http://127.0.0.1/api/webhooks/deliveries/dlv_nope/redeliver",
      {
        method: "POST",
      },
    );
    expect(missing.status).toBe(404);
  });
});
