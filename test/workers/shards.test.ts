/**
 * Trace shards: many traces in one TraceGraph object, each kept apart (snapshots, live sockets,
 * retention), batches durable before they are flushed, dedupe exact across flushes and restarts,
 * and objects written before shards (one per trace, schema v2) migrated in place and still read.
 * Runs in both layouts (TRACE_SHARDS from the vitest config).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TraceList, TraceLiveMessage, TraceSnapshot } from "../../shared/api";
import { foldTask } from "../../shared/task-fold";
import type { TaskEvent } from "../../shared/wire";
import { TRACE_GRAPH_MIGRATIONS, TraceGraph } from "../../durable-objects/trace-graph";
import { traceObjectName } from "../../durable-objects/shards";
import { migrate } from "../../durable-objects/sql";
import type { IndexReport } from "../../durable-objects/protocol";
import { INDEX_NAME, type Env } from "../../durable-objects/env";
import app from "../../worker/index";
import { graphOf, settle, shards } from "./objects";

let n = 0;
function ev(task_id: string, type: TaskEvent["type"], extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `sh-${n}`,
    kind: "task",
    type,
    ts: Date.now() / 1000 - 5 + n / 1000,
    seq: n,
    host: type === "published" ? null : "w1@h",
    pid: 1,
    task_id,
    name: "app.shard",
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
  return (await res.json()) as { accepted: number; duplicates: number; rejected: unknown[] };
}

/** Trace ids that all land in the same object (any ids do when every trace has its own). */
function sameObjectIds(prefix: string, count: number): string[] {
  const ids: string[] = [];
  const target = traceObjectName(`${prefix}-0`, shards);
  for (let i = 0; ids.length < count; i++)
    if (shards === 0 || traceObjectName(`${prefix}-${i}`, shards) === target) ids.push(`${prefix}-${i}`);
  return ids;
}

describe("many traces in one object", () => {
  it("keeps each trace apart: its own snapshot, summary and task lookup", async () => {
    const [a, b] = sameObjectIds("apart", 2) as [string, string];
    await post([
      ev(a, "published"),
      ev(a, "succeeded", { result: 1 }),
      ev(b, "published"),
      ev(b, "failed", { exception: { type: "KeyError", message: "x" } }),
    ]);
    await settle();
    const snapA = TraceSnapshot.parse(
      await (await exports.default.fetch(`http://127.0.0.1/api/traces/${a}`)).json(),
    );
    expect(snapA.nodes.map((x) => [x.id, x.state])).toEqual([[a, "SUCCESS"]]);
    expect(snapA.summary.task_count).toBe(1);
    const listed = TraceList.parse(
      await (await exports.default.fetch(`http://127.0.0.1/api/traces?q=apart-`)).json(),
    );
    expect(Object.fromEntries(listed.traces.map((t) => [t.trace_id, t.state]))).toMatchObject({
      [a]: "SUCCESS",
      [b]: "FAILURE",
    });
    expect((await exports.default.fetch(`http://127.0.0.1/api/tasks/${b}`)).status).toBe(200);
  });

  it("lands a batch of 200 independent tasks on at most TRACE_SHARDS objects, and lists all 200", async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `fan-${i}`);
    const res = await post(
      ids.flatMap((id) => [ev(id, "published"), ev(id, "received"), ev(id, "started"), ev(id, "succeeded")]),
    );
    expect(res).toMatchObject({ accepted: 800, duplicates: 0, rejected: [] });
    await settle();
    const objects = new Set(ids.map((id) => traceObjectName(id, shards)));
    expect(objects.size).toBe(shards === 0 ? 200 : Math.min(shards, 200));
    let held = 0;
    for (const name of objects)
      held += await runInDurableObject(
        env.TRACE_GRAPH.getByName(name),
        (_g: TraceGraph, state) =>
          state.storage.sql
            .exec<{ n: number }>(
              "SELECT COUNT(DISTINCT trace_id) AS n FROM tasks WHERE trace_id LIKE 'fan-%'",
            )
            .one().n,
      );
    expect(held).toBe(200);
    const listed = TraceList.parse(
      await (await exports.default.fetch("http://127.0.0.1/api/traces?q=fan-&limit=200")).json(),
    );
    expect(listed.traces).toHaveLength(200);
    expect(new Set(listed.traces.map((t) => t.state))).toEqual(new Set(["SUCCESS"]));
  });

  it("sends a trace's live deltas only to that trace's sockets", async () => {
    const [watched, other] = sameObjectIds("sockets", 2) as [string, string];
    await post([ev(watched, "published"), ev(other, "published")]);
    const res = await exports.default.fetch(`http://127.0.0.1/api/traces/${watched}/live`, {
      headers: { Upgrade: "websocket" },
    });
    const ws = res.webSocket!;
    const frames: TraceLiveMessage[] = [];
    ws.addEventListener("message", (m) => frames.push(TraceLiveMessage.parse(JSON.parse(m.data as string))));
    ws.accept();
    await post([ev(other, "started")]);
    await post([ev(watched, "started")]);
    await new Promise((r) => setTimeout(r, 50));
    ws.close();
    expect(frames.map((f) => [f.type, f.trace_id])).toEqual([
      ["hello", watched],
      ["delta", watched],
    ]);
  });
});

/** A task's five events (published … postrun), its trace given. */
function plain(id: string, trace: string, i: number, ts0: number) {
  return ["published", "received", "started", "succeeded", "postrun"].map((type, k) => ({
    v: 1,
    id: `${id}-e${k}`,
    kind: "task",
    type,
    ts: ts0 + i * 0.001 + k * 0.0001,
    seq: i * 5 + k,
    host: type === "published" ? null : "bench@host",
    pid: 100,
    task_id: id,
    name: `app.job${i % 5}`,
    trace_id: trace,
    root_id: trace,
    parent_id: null,
    retries: 0,
    queue: "celery",
    args: [i],
    kwargs: {},
    ...(type === "succeeded" ? { result: i } : {}),
    ...(type === "postrun" ? { state: "SUCCESS", runtime_ms: 1 } : {}),
  }));
}

describe("large batches", () => {
  // Many tasks in one flush once hit SQLite's 2 MB value limit (SQLITE_TOOBIG) and lost what was
  // pending: statements are now cut to stay under it, and tasks leave memory only once written.
  it("takes a 3,000-task trace beside 3,000 neighbours in 1,000-event batches, four at a time: every POST 202, every task kept", async () => {
    const big = "big-beside";
    const home = traceObjectName(big, shards);
    const neighbours: string[] = [];
    // One object per trace would make thousands of objects: fewer there (the limits are per object).
    const n = shards === 0 ? 300 : 3000;
    for (let i = 0; neighbours.length < n; i++)
      if (shards === 0 || traceObjectName(`beside-${i}`, shards) === home) neighbours.push(`beside-${i}`);
    const ts0 = Date.now() / 1000;
    const evs: unknown[] = [];
    for (let i = 0; i < 3000; i++) {
      if (i < n) evs.push(...plain(neighbours[i]!, neighbours[i]!, i, ts0));
      evs.push(...plain(`big-${i}`, big, i, ts0));
    }
    const batches: string[] = [];
    for (let i = 0; i < evs.length; i += 1000)
      batches.push(JSON.stringify({ events: evs.slice(i, i + 1000) }));
    let next = 0;
    const bad: string[] = [];
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (next < batches.length) {
          const b = batches[next++]!;
          const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: b,
          });
          const text = await res.text();
          if (res.status !== 202 || !text.includes('"rejected":[]'))
            bad.push(`${res.status} ${text.slice(0, 300)}`);
        }
      }),
    );
    const snap = (await (await exports.default.fetch(`http://127.0.0.1/api/traces/${big}`)).json()) as {
      nodes: unknown[];
    };
    expect(bad).toEqual([]);
    expect(snap.nodes.length).toBe(3000);
  });
});

describe("write-ahead log and flushes", () => {
  it("keeps an accepted batch through a restart before its flush, and dedupes exactly across flushes", async () => {
    const id = "durable-1";
    const published = ev(id, "published");
    const started = ev(id, "started");
    expect(await graphOf(id).ingest(JSON.stringify([published]))).toEqual({ accepted: 1, duplicates: 0 });
    await graphOf(id).flush();
    expect(await graphOf(id).ingest(JSON.stringify([published, started]))).toEqual({
      accepted: 1,
      duplicates: 1,
    });
    expect(await graphOf(id).ingest(JSON.stringify([started]))).toEqual({ accepted: 0, duplicates: 1 });
    await runInDurableObject(graphOf(id), async (_g: TraceGraph, state) => {
      if (shards !== 0) {
        // Not flushed yet: the row still says PENDING; the log has the started event.
        const row = state.storage.sql
          .exec<{ state: string }>("SELECT state FROM tasks WHERE trace_id = ?", id)
          .one();
        expect(row.state).toBe("PENDING");
      }
      // A new instance over the same storage is what a restart gives: it replays the log.
      const restarted = new TraceGraph(state, env);
      const snap = await restarted.snapshot(id);
      expect(snap!.nodes.map((x) => [x.id, x.state])).toEqual([[id, "STARTED"]]);
      expect(await restarted.ingest(JSON.stringify([started]))).toEqual({ accepted: 0, duplicates: 1 });
    });
  });

  it("writes a task whose events arrive in three batches once, at the flush", async () => {
    const id = "coalesced-1";
    const stub = graphOf(id);
    await stub.flush();
    const before = await stub.storageStats();
    await stub.ingest(JSON.stringify([ev(id, "published")]));
    await stub.ingest(JSON.stringify([ev(id, "received")]));
    await stub.ingest(
      JSON.stringify([ev(id, "started"), ev(id, "succeeded"), ev(id, "postrun", { state: "SUCCESS" })]),
    );
    await stub.flush();
    const written = (await stub.storageStats()).rows_written - before.rows_written;
    // Three log rows, one task row, the flushed mark, the day's retention row (and its sweep, the
    // first time today) and at most two alarm writes. (The per-trace layout of this suite flushes
    // at every ingest, FLUSH_INTERVAL_S=0: the task row is written three times there.)
    if (shards !== 0) expect(written).toBeLessThanOrEqual(9);
    const snap = (await stub.snapshot(id))!;
    expect(snap.nodes.map((x) => [x.id, x.state])).toEqual([[id, "SUCCESS"]]);
  });
});

describe("unfinished tasks wait in memory", () => {
  it("keeps a fresh unfinished task out of its row at the periodic flush, replays it after a restart, and writes it once finished", async () => {
    const { runDurableObjectAlarm } = await import("cloudflare:test");
    const id = "held-1";
    const stub = graphOf(id);
    const rowsOf = () =>
      runInDurableObject(stub, (_g: TraceGraph, state) =>
        state.storage.sql
          .exec<{ state: string }>("SELECT state FROM tasks WHERE trace_id = ?", id)
          .toArray()
          .map((r) => r.state),
      );
    await stub.ingest(JSON.stringify([ev(id, "published", { ts: Date.now() / 1000 })]));
    await runDurableObjectAlarm(stub); // the periodic flush (what the alarm does every FLUSH_INTERVAL_S)
    // Sharded, the task is held (not finished, its registry check 3 s away); per trace, every ingest flushes.
    expect(await rowsOf()).toEqual(shards === 0 ? ["PENDING"] : []);
    await runInDurableObject(stub, async (_g: TraceGraph, state) => {
      const restarted = new TraceGraph(state, env);
      expect((await restarted.snapshot(id))!.nodes.map((x) => [x.id, x.state])).toEqual([[id, "PENDING"]]);
    });
    await stub.ingest(JSON.stringify([ev(id, "received"), ev(id, "started"), ev(id, "succeeded")]));
    await runDurableObjectAlarm(stub);
    expect(await rowsOf()).toEqual(["SUCCESS"]);
  });
});

describe("retention by day partitions", () => {
  it("drops the traces first written on a day, with no rows written for them, and the list drops that day too", async () => {
    const { runDurableObjectAlarm } = await import("cloudflare:test");
    const [gone, kept] = sameObjectIds("retain", 2) as [string, string];
    await post([ev(gone, "published"), ev(gone, "succeeded")]);
    await settle();
    await graphOf(gone).flush();
    const today = Math.floor(Date.now() / 1000 / 86400);
    // The trace that stays was first written on a later day: its own partition.
    await runInDurableObject(graphOf(kept), async (_g: TraceGraph, state) => {
      const sql = state.storage.sql;
      // With one object per trace, kept's object is another, never written (no tables): nothing to prepare.
      if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = ?", `tasks_${today}`).toArray().length)
        sql.exec(`CREATE TABLE tasks_${today + 1} AS SELECT * FROM tasks_${today} WHERE 0`);
    });
    const before = await graphOf(gone).storageStats();
    await runInDurableObject(graphOf(gone), async (_g: TraceGraph, state) => {
      state.storage.sql.exec("UPDATE deadlines SET due_at = 0 WHERE key = ?", `drop:${today}`);
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(graphOf(gone))).toBe(true);
    const written = (await graphOf(gone).storageStats()).rows_written - before.rows_written;
    expect(written).toBeLessThan(10); // the deadline row, the view, an alarm: not a row per task
    expect((await exports.default.fetch(`http://127.0.0.1/api/traces/${gone}`)).status).toBe(404);
    const listed = TraceList.parse(
      await (await exports.default.fetch("http://127.0.0.1/api/traces?q=retain-")).json(),
    );
    expect(listed.traces.map((t) => t.trace_id)).not.toContain(gone);
    // A trace arriving afterwards starts again in a partition that exists.
    await post([ev(kept, "published")]);
    await settle();
    expect((await exports.default.fetch(`http://127.0.0.1/api/traces/${kept}`)).status).toBe(200);
  });
});

describe("objects written before shards", () => {
  it("migrates a one-trace object (schema v2) in place; the API still reads it", async () => {
    const traceId = "legacy-trace-1";
    const events = [
      ev(traceId, "published"),
      ev(traceId, "received"),
      ev(traceId, "started"),
      ev(`${traceId}-child`, "published", { parent_id: traceId, trace_id: traceId }),
    ];
    // The object that held this trace before shards was named by the trace id.
    await runInDurableObject(env.TRACE_GRAPH.getByName(traceId), async (_g: TraceGraph, state) => {
      const sql = state.storage.sql;
      // Back to the v2 schema with the rows the per-trace TraceGraph wrote.
      sql.exec("DROP VIEW IF EXISTS tasks");
      const tables = sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .toArray();
      for (const t of tables) sql.exec(`DROP TABLE IF EXISTS ${t.name}`);
      migrate(sql, TRACE_GRAPH_MIGRATIONS.slice(0, 2));
      sql.exec(
        "INSERT INTO meta (key, value) VALUES ('trace_id', ?), ('seq', '4'), ('updated_at', ?)",
        traceId,
        String(Date.now() / 1000),
      );
      for (const e of events)
        sql.exec(
          "INSERT INTO events (id, task_id, body) VALUES (?, ?, ?)",
          e.id,
          e.task_id,
          JSON.stringify(e),
        );
      for (const id of [traceId, `${traceId}-child`]) {
        const r = foldTask(
          id,
          events.filter((e) => e.task_id === id),
        );
        sql.exec(
          "INSERT INTO tasks (task_id, name, state, parent_id, worker, published_at, started_at, finished_at, runtime_ms, record, reported) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
          id,
          r.name,
          r.state,
          r.parent_id,
          r.worker,
          r.published_at,
          r.started_at,
          r.finished_at,
          r.runtime_ms,
          JSON.stringify(r),
        );
      }
      sql.exec(
        "INSERT INTO deadlines (key, kind, task_id, due_at) VALUES (?, 'stuck_started', ?, ?)",
        `watch:${traceId}`,
        traceId,
        Date.now() / 1000 + 3600,
      );
      sql.exec(
        "INSERT INTO anomalies (id, kind, task_id, task_name, since, detected_at, resolved_at, explanation, fix, reported) VALUES ('a1', 'stuck_pending', ?, 'app.shard', 1, 2, 3, 'e', 'f', 1)",
        traceId,
      );
      // What the v3 class does when it starts on such storage.
      migrate(sql, TRACE_GRAPH_MIGRATIONS);
      const row = sql
        .exec<{ trace_id: string; due_at: number; n: number }>(
          "SELECT trace_id, due_at, json_array_length(events) AS n FROM tasks WHERE task_id = ?",
          traceId,
        )
        .one();
      expect(row.trace_id).toBe(traceId);
      expect(row.n).toBe(3);
      expect(row.due_at).toBeGreaterThan(Date.now() / 1000);
      expect(
        sql.exec<{ seq: number }>("SELECT seq FROM live_seq WHERE trace_id = ?", traceId).one().seq,
      ).toBe(4);
      // What the class does next when it starts: the table becomes today's partition.
      const restarted = new TraceGraph(state, env);
      expect((await restarted.snapshot(traceId))!.nodes).toHaveLength(2);
      // The per-trace object had reported its trace to the index (reads of ids the index does not
      // know never touch an object named by the id): as it did, its summary goes to the index.
      const summaries = (
        restarted as unknown as { summariesOf(ids: string[], now: number): IndexReport["traces"] }
      ).summariesOf([traceId], Date.now() / 1000);
      await env.INDEX.getByName(INDEX_NAME).report({ traces: summaries, tasks: [], runs: [], anomalies: [] });
      expect(
        sql
          .exec<{ n: number }>(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'tasks'",
          )
          .one().n,
      ).toBe(0);
    });
    // Read through the API: from the shard it would live in now, falling back to its own object
    // while the deployment says such objects exist (LEGACY_TRACE_OBJECTS=1).
    const legacyFetch = (url: string) =>
      shards === 0
        ? exports.default.fetch(url)
        : app.fetch(new Request(url), { ...env, LEGACY_TRACE_OBJECTS: "1" } as Env);
    if (shards > 0)
      expect((await exports.default.fetch(`http://127.0.0.1/api/traces/${traceId}`)).status).toBe(404);
    const res = await legacyFetch(`http://127.0.0.1/api/traces/${traceId}`);
    expect(res.status).toBe(200);
    const snap = TraceSnapshot.parse(await res.json());
    expect(snap.nodes.map((x) => [x.id, x.state]).sort()).toEqual([
      [traceId, "STARTED"],
      [`${traceId}-child`, "PENDING"],
    ]);
    const detail = await legacyFetch(`http://127.0.0.1/api/tasks/${traceId}`);
    expect(detail.status).toBe(200);
    const anomalies = (await (
      await legacyFetch(`http://127.0.0.1/api/traces/${traceId}/anomalies`)
    ).json()) as { anomalies: { id: string }[] };
    expect(anomalies.anomalies.map((a) => a.id)).toEqual(["a1"]);
  });
});

describe("an index written before shards", () => {
  it("migrates its list, lookups and run statistics in place (schema v2 → v3 and today's partition)", async () => {
    const { TRACE_INDEX_MIGRATIONS, TraceIndex } = await import("../../durable-objects/trace-index");
    await runInDurableObject(
      env.INDEX.getByName("legacy-index"),
      async (_i: InstanceType<typeof TraceIndex>, state) => {
        const sql = state.storage.sql;
        for (const v of sql
          .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'view'")
          .toArray())
          sql.exec(`DROP VIEW ${v.name}`);
        for (const t of sql
          .exec<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf%'",
          )
          .toArray())
          sql.exec(`DROP TABLE IF EXISTS ${t.name}`);
        migrate(sql, TRACE_INDEX_MIGRATIONS.slice(0, 2));
        const now = Date.now() / 1000;
        const summary = {
          trace_id: "old-trace",
          state: "SUCCESS",
          root_task_id: "old-trace",
          root_name: "app.old",
          task_count: 2,
          failure_count: 0,
          started_at: now - 60,
          updated_at: now - 50,
          finished_at: now - 50,
          duration_ms: 10000,
          workers: ["w@h"],
          task_names: ["app.old", "app.child"],
          anomaly_count: 0,
        };
        sql.exec(
          "INSERT INTO traces VALUES ('old-trace', 'SUCCESS', ?, ?, ?, '|app.old|app.child|', '|w@h|', ?)",
          now - 60,
          now - 60,
          now - 50,
          JSON.stringify(summary),
        );
        sql.exec(
          "INSERT INTO tasks VALUES ('old-trace', 'old-trace', 'app.old', 'SUCCESS', 12, ?, 'w@h', ?), ('old-child', 'old-trace', 'app.child', 'FAILURE', 30, ?, 'w@h', ?)",
          now - 55,
          now - 50,
          now - 50,
          now - 50,
        );
        const index = new TraceIndex(state, env);
        const list = await index.listTraces({ q: "old-" });
        expect(list.traces.map((t) => t.trace_id)).toEqual(["old-trace"]);
        expect(await index.traceOfTask("old-child")).toBe("old-trace");
        const stats = (await index.runStats())
          .filter((r) => r.name === "app.old" || r.name === "app.child")
          .sort((a, b) => a.name.localeCompare(b.name));
        expect(stats.map((r) => [r.name, r.runs, r.failures, r.runtime_p50_ms])).toEqual([
          ["app.child", 1, 1, 30],
          ["app.old", 1, 0, 12],
        ]);
        expect(await index.counts()).toEqual({ traces: 1, tasks: 2 });
      },
    );
  });
});
