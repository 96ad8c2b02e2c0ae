import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { IngestResponse } from "../../shared/wire";

let counter = 0;
function taskEvent(overrides: Record<string, unknown> = {}) {
  counter++;
  return {
    v: 1,
    id: `ev-${Date.now()}-${counter}`,
    kind: "task",
    type: "published",
    ts: 1795334409 + counter / 1000,
    seq: counter,
    host: null,
    pid: 1,
    task_id: `task-${counter}`,
    name: "app.add",
    ...overrides,
  };
}

async function post(body: BodyInit, headers: Record<string, string> = {}) {
  return exports.default.fetch("http://127.0.0.1/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body,
  });
}

async function gzip(text: string): Promise<ArrayBuffer> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

describe("POST /v1/events", () => {
  it("keeps the valid events of a batch and rejects each bad one with its index and reason", async () => {
    const good = taskEvent({ task_id: "keep-1", trace_id: "trace-keep" });
    const res = await post(
      JSON.stringify({
        events: [
          good,
          { v: 1, kind: "task" },
          taskEvent({ ts: "yesterday" }),
          taskEvent({ task_id: "keep-2", trace_id: "trace-keep" }),
        ],
      }),
    );
    expect(res.status).toBe(202);
    const body = IngestResponse.parse(await res.json());
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => r.index)).toEqual([1, 2]);
    expect(body.rejected[1]?.error).toMatch(/ts/);
    const snapshot = await exports.default.fetch("http://127.0.0.1/api/traces/trace-keep");
    const graph = (await snapshot.json()) as { nodes: { id: string }[] };
    expect(graph.nodes.map((n) => n.id).sort()).toEqual(["keep-1", "keep-2"]);
  });

  it("deduplicates by event id within a batch and across batches", async () => {
    const e = taskEvent({ trace_id: "trace-dupe" });
    const first = IngestResponse.parse(await (await post(JSON.stringify({ events: [e, e] }))).json());
    expect(first).toEqual({ accepted: 1, duplicates: 1, rejected: [] });
    const second = IngestResponse.parse(await (await post(JSON.stringify({ events: [e] }))).json());
    expect(second).toEqual({ accepted: 0, duplicates: 1, rejected: [] });
  });

  it("accepts gzip bodies", async () => {
    const res = await post(await gzip(JSON.stringify({ events: [taskEvent({ trace_id: "trace-gz" })] })), {
      "Content-Encoding": "gzip",
    });
    expect(res.status).toBe(202);
    expect(IngestResponse.parse(await res.json()).accepted).toBe(1);
  });

  it("answers 400 with a message a person can act on for non-JSON, no events, and broken gzip", async () => {
    const notJson = await post("{nope");
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { message: string } }).error.message).toMatch(/not JSON/);
    const noEvents = await post(JSON.stringify({ events: [] }));
    expect(noEvents.status).toBe(400);
    const badGzip = await post("definitely not gzip", { "Content-Encoding": "gzip" });
    expect(badGzip.status).toBe(400);
  });

  it("answers 413 over 1000 events and over 1 MiB decompressed", async () => {
    const many = Array.from({ length: 1001 }, () => taskEvent());
    const tooMany = await post(JSON.stringify({ events: many }));
    expect(tooMany.status).toBe(413);
    expect(((await tooMany.json()) as { error: { message: string } }).error.message).toMatch(/at most 1000/);
    const big = JSON.stringify({ events: [taskEvent({ args: ["x".repeat(1_100_000)] })] });
    const tooBig = await post(await gzip(big), { "Content-Encoding": "gzip" });
    expect(tooBig.status).toBe(413);
  });

  it("expands a coalesced end event into the received, started and succeeded it stands for", async () => {
    const end = taskEvent({
      type: "succeeded",
      host: "w1@h",
      task_id: "co-1",
      trace_id: "trace-co",
      root_id: "co-1",
      queue: "celery",
      retries: 0,
      received_ts: 1795334500.5,
      started_ts: 1795334500.75,
      ts: 1795334501,
      state: "SUCCESS",
      runtime_ms: 250,
      result: 7,
    });
    const first = IngestResponse.parse(await (await post(JSON.stringify({ events: [end] }))).json());
    expect(first).toEqual({ accepted: 3, duplicates: 0, rejected: [] });
    // Sent again (a retried POST): the derived ids dedupe like the event's own.
    const again = IngestResponse.parse(await (await post(JSON.stringify({ events: [end] }))).json());
    expect(again).toEqual({ accepted: 0, duplicates: 3, rejected: [] });
    const snapshot = (await (await exports.default.fetch("http://127.0.0.1/api/traces/trace-co")).json()) as {
      nodes: {
        id: string;
        state: string;
        worker: string;
        received_at: number;
        started_at: number;
        finished_at: number;
      }[];
    };
    const node = snapshot.nodes.find((n) => n.id === "co-1")!;
    expect(node).toMatchObject({
      state: "SUCCESS",
      worker: "w1@h",
      received_at: 1795334500.5,
      started_at: 1795334500.75,
      finished_at: 1795334501,
    });
  });

  it("routes by trace_id ?? root_id ?? task_id", async () => {
    await post(
      JSON.stringify({
        events: [
          taskEvent({ task_id: "r-a", trace_id: "route-trace" }),
          taskEvent({ task_id: "r-b", root_id: "route-root" }),
          taskEvent({ task_id: "route-self" }),
        ],
      }),
    );
    for (const [trace, task] of [
      ["route-trace", "r-a"],
      ["route-root", "r-b"],
      ["route-self", "route-self"],
    ] as const) {
      const res = await exports.default.fetch(`http://127.0.0.1/api/traces/${trace}`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { nodes: { id: string }[] }).nodes.map((n) => n.id)).toContain(task);
    }
  });
});

describe("read API", () => {
  it("answers 404 with a clear message for unknown ids", async () => {
    for (const path of ["/api/traces/never-seen", "/api/tasks/never-seen", "/api/nothing-here"]) {
      const res = await exports.default.fetch(`http://127.0.0.1${path}`);
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("not_found");
      expect(body.error.message.length).toBeGreaterThan(10);
    }
  });

  it("reports health", async () => {
    const res = await exports.default.fetch("http://127.0.0.1/api/health");
    expect(await res.json()).toMatchObject({ ok: true, index_backend: "durable-object" });
  });
});

describe("TraceGraph task order", () => {
  it("lists records in SQLite's order (published_at IS NULL, published_at, task_id) however they are read", async () => {
    const { env, runInDurableObject } = await import("cloudflare:test");
    // Ties on published_at are broken by task_id in UTF-8 byte order, where "😀" sorts after "\uffff" (not in JS).
    const ids = ["b", "a", "é", "\uffff", "😀", "\ue000", "Z", "a-long", "0", "~"];
    const events = ids.map((id, i) =>
      taskEvent({
        task_id: `order-${id}`,
        trace_id: "trace-order",
        type: i % 4 === 3 ? "received" : "published",
        ts: 1795334409 + (i === 1 || i === 6 ? 1 : 0),
      }),
    );
    const res = await post(JSON.stringify({ events }));
    expect(res.status).toBe(202);
    const { shardCount, traceObjectName } = await import("../../durable-objects/shards");
    const stub = env.TRACE_GRAPH.getByName(traceObjectName("trace-order", shardCount(env)));
    await stub.flush();
    await runInDurableObject(stub, async (graph, state) => {
      const expected = state.storage.sql
        .exec<{ task_id: string }>(
          "SELECT task_id FROM tasks WHERE trace_id = 'trace-order' ORDER BY published_at IS NULL, published_at, task_id",
        )
        .toArray()
        .map((r) => r.task_id);
      expect(expected).toHaveLength(ids.length);
      type Records = (traceId: string, limit?: number) => { records: { task_id: string }[] };
      const records = (graph as unknown as { records: Records }).records.bind(graph);
      expect(records("trace-order").records.map((r) => r.task_id)).toEqual(expected);
      expect(records("trace-order", 4).records.map((r) => r.task_id)).toEqual(expected.slice(0, 4));
    });
  });
});
