/**
 * Queue wait vs run time per task name, through the API: tasks ingested with known publish,
 * receive, start and finish times (including a client clock ahead of the worker's), and the
 * p50/p95/p99 that `/api/registry` and `/api/stats` give for them; the runs table from before
 * queue waits, migrated in place.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Registry, Stats } from "../../shared/api";
import type { TaskEvent } from "../../shared/wire";
import { migrate } from "../../durable-objects/sql";
import { settle } from "./objects";

let n = 0;
/** An event at `ts` (epoch seconds); by default from the worker w1@h. */
function ev(
  task_id: string,
  name: string,
  type: TaskEvent["type"],
  ts: number,
  extra: Partial<TaskEvent> = {},
): TaskEvent {
  n++;
  return {
    v: 1,
    id: `qw-${n}`,
    kind: "task",
    type,
    ts,
    seq: n,
    host: "w1@h",
    pid: 1,
    task_id,
    name,
    trace_id: task_id,
    ...extra,
  };
}

/**
 * A task's life: published by a client (its own clock) at `published`, received and started by
 * the worker, finished `runtime` ms after it started. Offsets in seconds from `t0`; null: no event.
 */
function run(
  id: string,
  name: string,
  t0: number,
  times: {
    published: number | null;
    received: number | null;
    started: number;
    runtimeMs: number;
    eta?: number;
  },
): TaskEvent[] {
  const eta = times.eta === undefined ? {} : { eta: new Date((t0 + times.eta) * 1000).toISOString() };
  const events: TaskEvent[] = [];
  if (times.published !== null)
    events.push(ev(id, name, "published", t0 + times.published, { host: null, ...eta }));
  if (times.received !== null) events.push(ev(id, name, "received", t0 + times.received, eta));
  events.push(ev(id, name, "started", t0 + times.started));
  events.push(
    ev(id, name, "postrun", t0 + times.started + times.runtimeMs / 1000, {
      state: "SUCCESS",
      runtime_ms: times.runtimeMs,
    }),
  );
  events.push(
    ev(id, name, "succeeded", t0 + times.started + times.runtimeMs / 1000, { runtime_ms: times.runtimeMs }),
  );
  return events;
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

const PERCENTILES = [
  "runtime_p50_ms",
  "runtime_p95_ms",
  "runtime_p99_ms",
  "queue_wait_p50_ms",
  "queue_wait_p95_ms",
  "queue_wait_p99_ms",
] as const;
const pick = (o: Partial<Record<(typeof PERCENTILES)[number], unknown>> | undefined) =>
  o && Object.fromEntries(PERCENTILES.map((k) => [k, o[k]]));

describe("queue wait and runtime percentiles per task name", () => {
  it("measures published → started (worker-clock floor, clamped at 0) and runtime, in /api/registry and /api/stats", async () => {
    // Ten minutes ago, whole seconds: inside the last 24 h of /api/stats.
    const t0 = Math.floor(Date.now() / 1000) - 600;
    const events: TaskEvent[] = [];
    // app.qw.busy: waits of 100..1000 ms (published → started; received after half of it), runtimes 10..100 ms.
    for (let i = 1; i <= 10; i++)
      events.push(
        ...run(`qw-busy-${i}`, "app.qw.busy", t0 + i, {
          published: 0,
          received: i / 20,
          started: i / 10,
          runtimeMs: i * 10,
        }),
      );
    // app.qw.skew: the client's clock is ahead of the worker's.
    // - published 5 s "after" it started, received 40 ms before it started: the worker saw 40 ms.
    events.push(
      ...run("qw-skew-1", "app.qw.skew", t0 + 20, { published: 5, received: 0, started: 0.04, runtimeMs: 7 }),
    );
    // - published 2 s "after" it started, no received event: clamped at 0.
    events.push(
      ...run("qw-skew-2", "app.qw.skew", t0 + 21, { published: 2, received: null, started: 0, runtimeMs: 9 }),
    );
    // - not published by an instrumented client: received → started alone (worker clock).
    events.push(
      ...run("qw-skew-3", "app.qw.skew", t0 + 22, {
        published: null,
        received: 0,
        started: 0.3,
        runtimeMs: 11,
      }),
    );
    // app.qw.eta: a countdown of 60 s is not waiting for a worker: the wait counts from when it was due.
    events.push(
      ...run("qw-eta-1", "app.qw.eta", t0 + 30, {
        published: 0,
        received: 0.01,
        started: 60.25,
        runtimeMs: 5,
        eta: 60,
      }),
    );
    // app.qw.never: revoked before it ran: a finished run, with neither runtime nor queue wait.
    events.push(ev("qw-never-1", "app.qw.never", "published", t0 + 40, { host: null }));
    events.push(ev("qw-never-1", "app.qw.never", "revoked", t0 + 41));
    await post(events);

    const registry = await get("/api/registry?q=app.qw.", Registry);
    const entry = (name: string) => registry.tasks.find((t) => t.name === name);
    expect(entry("app.qw.busy")?.runs).toBe(10);
    // Nearest rank over 10 samples: p50 the 5th, p95 and p99 the 10th.
    expect(pick(entry("app.qw.busy"))).toEqual({
      runtime_p50_ms: 50,
      runtime_p95_ms: 100,
      runtime_p99_ms: 100,
      queue_wait_p50_ms: 500,
      queue_wait_p95_ms: 1000,
      queue_wait_p99_ms: 1000,
    });
    // Waits 0, 40, 300 ms.
    expect(pick(entry("app.qw.skew"))).toEqual({
      runtime_p50_ms: 9,
      runtime_p95_ms: 11,
      runtime_p99_ms: 11,
      queue_wait_p50_ms: 40,
      queue_wait_p95_ms: 300,
      queue_wait_p99_ms: 300,
    });
    expect(entry("app.qw.eta")).toMatchObject({
      queue_wait_p50_ms: 250,
      queue_wait_p99_ms: 250,
      runtime_p50_ms: 5,
    });
    expect(entry("app.qw.never")).toMatchObject({
      runs: 1,
      runtime_p50_ms: null,
      runtime_p99_ms: null,
      queue_wait_p50_ms: null,
      queue_wait_p95_ms: null,
      queue_wait_p99_ms: null,
    });

    const stats = await get("/api/stats", Stats);
    // By p95 queue wait, longest first; a name without waits is not listed.
    expect(stats.longest_queue_wait_names?.map((s) => [s.name, s.queue_wait_p95_ms])).toEqual([
      ["app.qw.busy", 1000],
      ["app.qw.skew", 300],
      ["app.qw.eta", 250],
    ]);
    expect(pick(stats.longest_queue_wait_names?.[0])).toEqual(pick(entry("app.qw.busy")));
    expect(stats.slowest_names.map((s) => [s.name, s.runtime_p95_ms, s.runtime_p99_ms])).toEqual([
      ["app.qw.busy", 100, 100],
      ["app.qw.skew", 11, 11],
      ["app.qw.eta", 5, 5],
    ]);
    expect(stats.busiest_names[0]).toMatchObject({
      name: "app.qw.busy",
      runs: 10,
      queue_wait_p50_ms: 500,
      runtime_p50_ms: 50,
    });
  });

  it("keeps the run statistics stored before queue waits, and adds waits to the same minute's row", async () => {
    const { TRACE_INDEX_MIGRATIONS, TraceIndex } = await import("../../durable-objects/trace-index");
    await runInDurableObject(env.INDEX.getByName("qw-legacy-index"), async (_i: unknown, state) => {
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
      // The schema of v3: runs without waits, and one row of it.
      migrate(sql, TRACE_INDEX_MIGRATIONS.slice(0, 3));
      const now = Date.now() / 1000;
      const minute = Math.floor(now / 60);
      sql.exec(
        "INSERT INTO runs (name, minute, finished, failed, runtimes, last_at) VALUES ('app.qw.old', ?, 2, 0, '[10, 30]', ?)",
        minute,
        now,
      );

      const index = new TraceIndex(state, env);
      const before = (await index.runStats()).find((r) => r.name === "app.qw.old");
      expect(before).toMatchObject({
        runs: 2,
        runtime_p50_ms: 10,
        runtime_p99_ms: 30,
        queue_wait_p50_ms: null,
        queue_wait_p99_ms: null,
      });

      // A run with a wait, and one from a shard on older code (no queue_wait_ms): both counted, one wait.
      await index.report({
        traces: [],
        tasks: [],
        anomalies: [],
        runs: [
          { name: "app.qw.old", state: "SUCCESS", runtime_ms: 20, queue_wait_ms: 70, finished_at: now },
          { name: "app.qw.old", state: "FAILURE", runtime_ms: null, finished_at: now },
        ],
      });
      const after = (await index.runStats()).find((r) => r.name === "app.qw.old");
      expect(after).toMatchObject({
        runs: 4,
        failures: 1,
        runtime_p50_ms: 20,
        runtime_p99_ms: 30,
        queue_wait_p50_ms: 70,
        queue_wait_p99_ms: 70,
      });
      // Still one row for the name and minute.
      expect(
        sql
          .exec<{ n: number; waits: string }>(
            "SELECT COUNT(*) AS n, MAX(waits) AS waits FROM runs WHERE name = 'app.qw.old'",
          )
          .one(),
      ).toEqual({
        n: 1,
        waits: "[70]",
      });
    });
  });
});
