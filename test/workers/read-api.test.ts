/** The read API over real ingests: list filters and cursor pagination, search, registry, live deltas, alarms. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  AnomalyList,
  Registry,
  TaskListPage,
  TaskSearch,
  TraceList,
  TraceLiveMessage,
} from "../../shared/api";
import type { TaskEvent } from "../../shared/wire";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import { graphOf, settle, shards } from "./objects";

let n = 0;
function ev(task_id: string, type: TaskEvent["type"], extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `ra-${n}`,
    kind: "task",
    type,
    ts: 1_795_000_000 + n,
    seq: n,
    host: "w1@h",
    pid: 1,
    task_id,
    name: "app.read",
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
  await settle();
}

async function get<T>(path: string, schema: { parse(v: unknown): T }): Promise<T> {
  const res = await exports.default.fetch(`http://127.0.0.1${path}`);
  expect(res.status, path).toBe(200);
  return schema.parse(await res.json());
}

describe("GET /api/traces", () => {
  it("lists newest first, filters by state and name, and pages with a cursor", async () => {
    for (let i = 0; i < 5; i++)
      await post([
        ev(`list-${i}`, "published", { name: i % 2 ? "app.odd" : "app.even", ts: 1_796_000_000 + i }),
        ev(`list-${i}`, i === 4 ? "failed" : "succeeded", { name: i % 2 ? "app.odd" : "app.even" }),
      ]);
    const all = await get("/api/traces?limit=100&q=list-", TraceList);
    expect(all.traces.map((t) => t.trace_id)).toEqual(["list-4", "list-3", "list-2", "list-1", "list-0"]);
    const failed = await get("/api/traces?state=FAILURE&q=list-", TraceList);
    expect(failed.traces.map((t) => t.trace_id)).toEqual(["list-4"]);
    const odd = await get("/api/traces?name=app.odd", TraceList);
    expect(odd.traces.map((t) => t.trace_id)).toEqual(["list-3", "list-1"]);
    const page1 = await get("/api/traces?limit=2&q=list-", TraceList);
    expect(page1.traces.map((t) => t.trace_id)).toEqual(["list-4", "list-3"]);
    const page2 = await get(
      `/api/traces?limit=2&q=list-&cursor=${encodeURIComponent(page1.next_cursor!)}`,
      TraceList,
    );
    expect(page2.traces.map((t) => t.trace_id)).toEqual(["list-2", "list-1"]);
    const page3 = await get(
      `/api/traces?limit=2&q=list-&cursor=${encodeURIComponent(page2.next_cursor!)}`,
      TraceList,
    );
    expect(page3.traces.map((t) => t.trace_id)).toEqual(["list-0"]);
    expect(page3.next_cursor).toBeNull();
    const range = await get(`/api/traces?q=list-&from=${1_796_000_001}&to=${1_796_000_003}`, TraceList);
    expect(range.traces.map((t) => t.trace_id)).toEqual(["list-3", "list-2", "list-1"]);
  });

  it("rejects a bad cursor and bad numbers with 400", async () => {
    for (const q of ["cursor=garbage", "limit=zero", "from=yesterday"]) {
      const res = await exports.default.fetch(`http://127.0.0.1/api/traces?${q}`);
      expect(res.status, q).toBe(400);
    }
  });
});

describe("search and registry", () => {
  it("finds tasks by id prefix and by name, and counts runs per name", async () => {
    await post([
      ev("search-abc-1", "published", { name: "app.searchme" }),
      ev("search-abc-1", "started", { name: "app.searchme" }),
      ev("search-abc-1", "postrun", { name: "app.searchme", state: "SUCCESS", runtime_ms: 12 }),
    ]);
    await post([
      ev("search-abc-2", "published", { name: "app.searchme" }),
      ev("search-abc-2", "failed", { name: "app.searchme", exception: { type: "E", message: "m" } }),
    ]);
    const byId = await get("/api/tasks?q=search-abc-1", TaskSearch);
    expect(byId.tasks.map((t) => [t.task_id, t.trace_id])).toEqual([["search-abc-1", "search-abc-1"]]);
    const byName = await get("/api/tasks?q=app.searchme", TaskSearch);
    expect(byName.tasks.map((t) => t.task_id).sort()).toEqual(["search-abc-1", "search-abc-2"]);
    const registry = await get("/api/registry", Registry);
    const entry = registry.tasks.find((t) => t.name === "app.searchme");
    expect(entry).toMatchObject({
      status: "NOT_REGISTERED",
      runs: 2,
      failures: 1,
      failure_rate: 0.5,
      runtime_p50_ms: 12,
    });
    const filtered = await get("/api/registry?q=SEARCHME&status=not_registered", Registry);
    expect(filtered.tasks.map((t) => t.name)).toEqual(["app.searchme"]);
    expect((await get("/api/registry?status=active&q=searchme", Registry)).tasks).toEqual([]);
    expect((await exports.default.fetch("http://127.0.0.1/api/registry?status=bogus")).status).toBe(400);
    expect((await exports.default.fetch("http://127.0.0.1/api/workers/nobody@nowhere")).status).toBe(404);
  });

  it("lists every task (not trace), newest first, with filters, sorts and cursor pages", async () => {
    // Three standalone tasks and a workflow's child: four tasks, three traces.
    const t0 = 1_796_000_000;
    const task = (
      id: string,
      published: number,
      queued: number,
      ran: number,
      extra: Partial<TaskEvent> = {},
    ) => [
      ev(id, "published", { ts: t0 + published, host: null, name: "app.list", queue: "lists", ...extra }),
      ev(id, "received", { ts: t0 + published + queued / 2, name: "app.list", ...extra }),
      ev(id, "started", { ts: t0 + published + queued, name: "app.list", ...extra }),
      ev(id, "succeeded", {
        ts: t0 + published + queued + ran,
        name: "app.list",
        state: "SUCCESS",
        runtime_ms: ran * 1000,
        ...extra,
      }),
    ];
    await post([
      ...task("list-a", 1, 0.5, 2),
      ...task("list-b", 2, 3, 0.1),
      ...task("list-c", 3, 0.1, 0.2),
      ...task("list-a-child", 4, 1, 1, { trace_id: "list-a", parent_id: "list-a" }),
      ev("list-other", "published", { ts: t0 + 5, host: null, name: "app.other" }),
    ]);
    await settle();
    const res = await exports.default.fetch("http://127.0.0.1/api/tasks?name=app.list");
    if (shards === 0) {
      // One object per trace has no shard to read: the answer says so and what to use instead.
      expect(res.status).toBe(501);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain("?q=");
      return;
    }
    const ids = (page: TaskListPage) => page.tasks.map((t) => t.task_id);
    const newest = TaskListPage.parse(await res.json());
    expect(ids(newest)).toEqual(["list-a-child", "list-c", "list-b", "list-a"]);
    expect(newest.tasks[0]).toMatchObject({
      trace_id: "list-a",
      state: "SUCCESS",
      queue: "lists",
      worker: "w1@h",
    });
    expect(newest.tasks.find((t) => t.task_id === "list-b")?.queue_wait_ms).toBe(3000);
    const byWait = await get("/api/tasks?name=app.list&sort=queue_wait", TaskListPage);
    expect(ids(byWait)[0]).toBe("list-b");
    const byRuntime = await get("/api/tasks?name=app.list&sort=runtime", TaskListPage);
    expect(ids(byRuntime)[0]).toBe("list-a");
    // Cursor pages: two by two, nothing lost or repeated.
    const first = await get("/api/tasks?name=app.list&limit=2", TaskListPage);
    expect(ids(first)).toEqual(["list-a-child", "list-c"]);
    const second = await get(`/api/tasks?name=app.list&limit=2&cursor=${first.next_cursor}`, TaskListPage);
    expect(ids(second)).toEqual(["list-b", "list-a"]);
    expect(second.next_cursor).toBeNull();
    expect(ids(await get("/api/tasks?name=app.other&state=PENDING", TaskListPage))).toEqual(["list-other"]);
    expect(ids(await get(`/api/tasks?queue=lists&from=${t0 + 2.5}&to=${t0 + 3.5}`, TaskListPage))).toEqual([
      "list-c",
    ]);
    expect((await exports.default.fetch("http://127.0.0.1/api/tasks?cursor=bogus")).status).toBe(400);
    expect((await exports.default.fetch("http://127.0.0.1/api/tasks?sort=bogus")).status).toBe(400);
  });
});

describe("live updates", () => {
  it("sends hello, then one delta per ingest with an increasing seq", async () => {
    await post([ev("live-1", "published")]);
    const res = await exports.default.fetch("http://127.0.0.1/api/traces/live-1/live", {
      headers: { Upgrade: "websocket" },
    });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const frames: TraceLiveMessage[] = [];
    ws.addEventListener("message", (m) => frames.push(TraceLiveMessage.parse(JSON.parse(m.data as string))));
    ws.accept();
    await post([ev("live-1", "started")]);
    await post([
      ev("live-1", "succeeded"),
      ev("live-child", "published", { trace_id: "live-1", parent_id: "live-1" }),
    ]);
    await new Promise((r) => setTimeout(r, 50));
    ws.close();
    expect(frames.map((f) => f.type)).toEqual(["hello", "delta", "delta"]);
    const [hello, d1, d2] = frames as [
      TraceLiveMessage,
      Extract<TraceLiveMessage, { type: "delta" }>,
      Extract<TraceLiveMessage, { type: "delta" }>,
    ];
    expect(d1.seq).toBe(hello.seq + 1);
    expect(d2.seq).toBe(d1.seq + 1);
    expect(d1.nodes.map((x) => [x.id, x.state])).toEqual([["live-1", "STARTED"]]);
    expect(d1.structure_changed).toBe(false);
    expect(d2.structure_changed).toBe(true);
    expect(d2.summary.task_count).toBe(2);
  });

  it("refuses a plain GET on a live endpoint with 426", async () => {
    expect((await exports.default.fetch("http://127.0.0.1/api/traces/live-1/live")).status).toBe(426);
  });
});

describe("alarms", () => {
  it("reports a trace to the index at the flush (coalesced), and deletes it at retention", async () => {
    const stub = graphOf("alarm-trace");
    await stub.ingest(JSON.stringify([ev("alarm-trace", "published")]));
    await stub.flush();
    const listed = async () => (await get("/api/traces?q=alarm-trace", TraceList)).traces[0]?.state;
    expect(await listed()).toBe("PENDING");
    await stub.ingest(JSON.stringify([ev("alarm-trace", "started")]));
    // Not reported yet where flushes are deferred; the alarm (the next flush) reports it.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await listed()).toBe("STARTED");
    expect(
      (await get("/api/anomalies?trace_id=alarm-trace", AnomalyList)).anomalies.map((a) => a.kind),
    ).toEqual(["stuck_started"]);
    // Retention: the day's partition (every trace first written that day) is dropped.
    await runInDurableObject(stub, async (_obj: TraceGraph, state) => {
      state.storage.sql.exec("UPDATE deadlines SET due_at = 0 WHERE kind = 'drop'");
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.snapshot("alarm-trace")).toBeNull();
    // Gone from the list and the task lookup too, with its anomalies (it was stuck: 13 days old).
    expect(await listed()).toBeUndefined();
    expect((await exports.default.fetch("http://127.0.0.1/api/tasks/alarm-trace")).status).toBe(404);
    expect((await get("/api/anomalies?trace_id=alarm-trace", AnomalyList)).anomalies).toEqual([]);
  });
});
