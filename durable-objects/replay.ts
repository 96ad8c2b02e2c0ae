/**
 * Time-travel replay of one trace (shared/replay.ts): its task records re-folded from the stored
 * events whose `ts` is at or before a moment, and where that moment sits among all its events.
 * Read-only, and only run for `?at=`: the live snapshot reads the folded records as before.
 */
import type { Outage } from "../shared/anomalies";
import { REPLAY_DENSITY_BUCKETS, type ReplayInfo } from "../shared/replay";
import { foldTask, type TaskRecord } from "../shared/task-fold";
import type { TaskEvent } from "../shared/wire";
import type { Sql } from "./sql";

/** A trace's records as they were at `at`, at most `limit` (the earliest published), with the moment's place. */
export interface ReplayRead {
  records: TaskRecord[];
  /** Tasks with at least one event by `at` (more than `records.length` when cut to `limit`). */
  total: number;
  info: ReplayInfo;
}

/**
 * Reads a trace at a moment; null when the object holds no event of the trace. SQLite filters the
 * events by time and drops the heavy fields the fold never reads (args, kwargs, result,
 * traceback), so only what the graph needs is parsed.
 */
export function readTraceAt(sql: Sql, traceId: string, at: number, limit: number): ReplayRead | null {
  const stats = sql<{
    n: number;
    first: number | null;
    last: number | null;
    applied: number | null;
    current: number | null;
    next: number | null;
  }>`
    SELECT COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last, SUM(ts <= ${at}) AS applied,
           MAX(CASE WHEN ts <= ${at} THEN ts END) AS current, MIN(CASE WHEN ts > ${at} THEN ts END) AS next
    FROM (SELECT e.value ->> '$.ts' AS ts FROM tasks t, json_each(t.events) e WHERE t.trace_id = ${traceId})`.one();
  if (stats.n === 0 || stats.first === null || stats.last === null) return null;
  const current = stats.current;
  const previous =
    current === null
      ? null
      : sql<{ ts: number | null }>`
          SELECT MAX(e.value ->> '$.ts') AS ts FROM tasks t, json_each(t.events) e
          WHERE t.trace_id = ${traceId} AND e.value ->> '$.ts' < ${current}`.one().ts;
  const density = new Array<number>(REPLAY_DENSITY_BUCKETS).fill(0);
  const width = (stats.last - stats.first) / REPLAY_DENSITY_BUCKETS;
  for (const row of sql<{ b: number; n: number }>`
    SELECT MIN(${REPLAY_DENSITY_BUCKETS - 1}, CAST((e.value ->> '$.ts' - ${stats.first}) / ${width || 1} AS INTEGER)) AS b, COUNT(*) AS n
    FROM tasks t, json_each(t.events) e WHERE t.trace_id = ${traceId} GROUP BY b`)
    density[Math.max(0, row.b)]! += row.n;

  const rows = sql<{ task_id: string; events: string }>`
    SELECT t.task_id AS task_id,
           json_group_array(json(json_remove(e.value, '$.args', '$.kwargs', '$.result', '$.traceback'))) AS events
    FROM tasks t, json_each(t.events) e
    WHERE t.trace_id = ${traceId} AND e.value ->> '$.ts' <= ${at}
    GROUP BY t.task_id`.toArray();
  // Worker outages (cold shutdown, heartbeat loss) end running tasks only from their own moment on.
  const outages = sql<{ host: string; kind: string; ts: number }>`
    SELECT host, kind, ts FROM outages WHERE trace_id = ${traceId} AND ts <= ${at}`
    .toArray()
    .map((o) => ({ host: o.host, kind: o.kind as Outage["kind"], ts: o.ts }));
  const records = rows.map((r) => foldTask(r.task_id, JSON.parse(r.events) as TaskEvent[], outages));
  // The live snapshot's order and cut: earliest published first, unpublished last, then by id.
  records.sort(
    (a, b) =>
      (a.published_at === null ? 1 : 0) - (b.published_at === null ? 1 : 0) ||
      (a.published_at ?? 0) - (b.published_at ?? 0) ||
      (a.task_id < b.task_id ? -1 : a.task_id > b.task_id ? 1 : 0),
  );
  return {
    records: records.slice(0, limit),
    total: records.length,
    info: {
      at,
      first_event_at: stats.first,
      last_event_at: stats.last,
      events_total: stats.n,
      events_applied: stats.applied ?? 0,
      current_at: current,
      previous_at: previous,
      next_at: stats.next,
      density,
    },
  };
}
