/**
 * Issue 15, item 7: reads of unknown trace and task ids create no object and write no row.
 * Observed through the runtime itself: `listDurableObjectIds` lists every TraceGraph object that
 * has storage (a `.sqlite` file), and each object's own meter counts the rows it wrote.
 * Runs in both layouts.
 */
import { env, listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardNames } from "../../durable-objects/shards";
import { TraceList } from "../../shared/api";
import { graphOf, settle, shards } from "./objects";

const now = () => Date.now() / 1000;
let n = 0;
function ev(traceId: string, taskId: string, type: string, extra: Record<string, unknown> = {}) {
  n++;
  return {
    v: 1,
    id: `rd-${n}`,
    kind: "task",
    type,
    ts: now() - 10 + n / 1000,
    seq: n,
    host: type === "published" ? null : "w@h",
    pid: 1,
    task_id: taskId,
    name: "app.read",
    trace_id: traceId,
    ...extra,
  };
}

const get = (path: string) => exports.default.fetch(`http://127.0.0.1${path}`);
const objectIds = async () =>
  new Set((await listDurableObjectIds(env.TRACE_GRAPH)).map((id) => id.toString()));

describe("reads of unknown ids", () => {
  it("create no object and write no row, in either layout, while known ids still read", async () => {
    const known = "read-known";
    const post = await exports.default.fetch("http://127.0.0.1/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        events: [
          ev(known, known, "published"),
          ev(known, known, "received"),
          ev(known, known, "started"),
          ev(known, known, "succeeded", { result: 1, runtime_ms: 5 }),
          ev(known, "read-child", "published", { parent_id: known }),
          ev(known, "read-child", "succeeded", { runtime_ms: 1 }),
        ],
      }),
    });
    expect(post.status).toBe(202);
    await settle();
    expect((await get(`/api/traces/${known}`)).status).toBe(200);

    // Whatever the object's alarm still had to do for the ingest runs now, not amid the reads (on a
    // loaded machine it fired between the two meter readings: one row that no read wrote).
    await runDurableObjectAlarm(graphOf(known));
    const before = await objectIds();
    const written = (await graphOf(known).storageStats()).rows_written;
    const unknown = Array.from(
      { length: 40 },
      (_, i) => `never-seen-${i}-${Math.random().toString(36).slice(2)}`,
    );
    for (const id of unknown) {
      expect((await get(`/api/traces/${id}`)).status).toBe(404);
      expect((await get(`/api/tasks/${id}`)).status).toBe(404);
      expect((await get(`/api/traces/${id}/anomalies`)).status).toBe(200);
      // A live socket of an unknown trace: refused (per-trace layout) or upgraded on its shard.
      expect([404, 426]).toContain((await get(`/api/traces/${id}/live`)).status);
    }
    // Unknown tasks of a known trace, and the known trace itself, read too.
    expect((await get(`/api/tasks/never-seen-task-of-known`)).status).toBe(404);
    expect((await get(`/api/traces/${known}`)).status).toBe(200);
    expect((await get(`/api/tasks/read-child`)).status).toBe(200);

    const after = await objectIds();
    const named = new Set(unknown.map((id) => env.TRACE_GRAPH.idFromName(id).toString()));
    const shardIds = new Set(shardNames(shards).map((name) => env.TRACE_GRAPH.idFromName(name).toString()));
    const created = [...after].filter((id) => !before.has(id));
    // No object named by an unknown id; with shards, at most shards (a fixed set) may start.
    expect(created.filter((id) => named.has(id))).toEqual([]);
    expect(created.filter((id) => !shardIds.has(id))).toEqual([]);
    if (shards === 0) expect(after.size).toBe(before.size);
    // The object that holds the known trace wrote nothing for all those reads.
    expect((await graphOf(known).storageStats()).rows_written).toBe(written);
  });

  it("a shard that was never written answers reads without making its tables", async () => {
    if (shards === 0) return; // per-trace objects are never reached for unknown ids (above)
    // A fresh object of the TraceGraph class, reached directly.
    const stub = env.TRACE_GRAPH.getByName(`never-written-${Math.random()}`);
    expect(await stub.snapshotJson("x")).toBeNull();
    expect(await stub.task("x", "y")).toBeNull();
    expect(await stub.anomalyList("x")).toEqual([]);
    expect(await stub.hasTrace("x")).toBe(false);
    expect((await stub.storageStats()).rows_written).toBe(0);
    const tables = await runInDurableObject(stub, (_g, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\'")
        .toArray(),
    );
    expect(tables).toEqual([]);
  });

  it("pages the trace list past ids of any characters (the cursor used to refuse non-Latin-1)", async () => {
    const ids = ["page-🦀-1", "page-日本-2", "page-é-3"];
    const post = await exports.default.fetch("http://127.0.0.1/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: ids.map((id, i) => ev(id, id, "published", { ts: now() - 100 + i })) }),
    });
    expect(post.status).toBe(202);
    await settle();
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(
        `/api/traces?limit=1&q=page-${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(res.status).toBe(200);
      const page = TraceList.parse(await res.json());
      seen.push(...page.traces.map((t) => t.trace_id));
      cursor = page.next_cursor;
    } while (cursor && seen.length < 10);
    expect(seen.sort()).toEqual([...ids].sort());
  });
});
