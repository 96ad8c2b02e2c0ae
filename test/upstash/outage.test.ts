/**
 * An Upstash outage loses no trace data: with redis-server stopped, ingestion into the trace
 * objects goes on and trace pages answer, `/api/health` says the index is degraded, and once
 * redis-server is back the shards' retried reports bring the list up to date. The Worker here runs
 * with UPSTASH_REDIS_REST_URL/TOKEN set (vitest.config.ts): the Upstash backend is the index.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { graphOf, settle } from "../workers/objects";

let counter = 0;
function published(traceId: string, taskId: string) {
  counter++;
  return {
    v: 1,
    id: `outage-${Date.now()}-${counter}`,
    kind: "task",
    type: "published",
    ts: Date.now() / 1000,
    seq: counter,
    host: null,
    pid: 1,
    task_id: taskId,
    trace_id: traceId,
    name: "app.outage",
  };
}

const api = (path: string, init?: RequestInit) => exports.default.fetch(`http://127.0.0.1${path}`, init);

async function ingest(traceId: string): Promise<void> {
  const res = await api("/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events: [published(traceId, traceId), published(traceId, `${traceId}-child`)] }),
  });
  expect(res.status).toBe(202);
}

/** Flushes the shards and the trace's own object: what they hold goes to the index (or is kept). */
async function report(traceId: string): Promise<void> {
  await settle();
  await graphOf(traceId).flush();
}

async function admin(action: "stop" | "start"): Promise<void> {
  const { url, token } = inject("upstash");
  const res = await fetch(`${url}/__admin/${action}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
}

async function listed(): Promise<string[]> {
  const res = await api("/api/traces?limit=200");
  expect(res.status).toBe(200);
  return ((await res.json()) as { traces: { trace_id: string }[] }).traces.map((t) => t.trace_id);
}

async function health() {
  return (await (await api("/api/health")).json()) as {
    index_backend: string;
    index_degraded?: boolean;
    index_degraded_reason?: string;
  };
}

describe("/api/live with the Upstash index", () => {
  it("still broadcasts each report's summaries from the index object (which stores nothing)", async () => {
    const res = await api("/api/live", { headers: { Upgrade: "websocket" } });
    const ws = res.webSocket!;
    const frames: { type: string; summary?: { trace_id: string } }[] = [];
    ws.accept();
    ws.addEventListener("message", (m) => frames.push(JSON.parse(m.data as string)));
    const traceId = `live-upstash-${Date.now()}`;
    await ingest(traceId);
    await report(traceId);
    await new Promise((r) => setTimeout(r, 50)); // frames are delivered on the next turn
    expect(frames.some((f) => f.type === "trace" && f.summary?.trace_id === traceId)).toBe(true);
    ws.close();
    // The list is Redis's: the index object's own list never got the trace.
    const { env } = await import("cloudflare:test");
    expect(await env.INDEX.getByName("global").knowsTrace(traceId)).toBe(false);
    expect(await listed()).toContain(traceId);
  });
});

describe("Upstash outage", () => {
  it("keeps ingesting, says degraded, and the list recovers the traces ingested meanwhile", async () => {
    const before = `outage-before-${Date.now()}`;
    const during = `outage-during-${Date.now()}`;
    await ingest(before);
    await report(before);
    expect(await listed()).toContain(before);
    expect(await health()).toMatchObject({ index_backend: "upstash" });
    expect((await health()).index_degraded).toBeUndefined();

    await admin("stop");
    try {
      await ingest(during);
      await report(during);
      // The trace page is read from the trace's object, not the index.
      const page = await api(`/api/traces/${during}`);
      expect(page.status).toBe(200);
      const graph = (await page.json()) as { nodes: { id: string }[] };
      expect(graph.nodes.map((n) => n.id).sort()).toEqual([during, `${during}-child`]);
      const h = await health();
      expect(h.index_degraded).toBe(true);
      expect(h.index_degraded_reason).toMatch(/Upstash Redis/);
      // The list itself is in Redis: it fails rather than answers wrong.
      const list = await api("/api/traces");
      expect(list.status).toBe(503);
      expect(((await list.json()) as { error: { code: string } }).error.code).toBe("index_unavailable");
    } finally {
      await admin("start");
    }

    // The next flush retries the kept report.
    await report(during);
    const after = await listed();
    expect(after).toContain(before);
    expect(after).toContain(during);
    expect((await health()).index_degraded).toBeUndefined();
    const search = (await (await api(`/api/tasks?q=${during}`)).json()) as { tasks: { task_id: string }[] };
    expect(search.tasks.map((t) => t.task_id).sort()).toEqual([during, `${during}-child`]);
  });
});
