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
  // One pass over the trace's events: every event time (for the span and the steps) and, per task,
  // the events up to `at` without their heavy fields.
  const rows = sql<{ task_id: string; times: string; events: string | null }>`
    SELECT t.task_id AS task_id, json_group_array(e.value ->> '$.ts') AS times,
           json_group_array(json(json_remove(e.value, '$.args', '$.kwargs', '$.result', '$.traceback')))
             FILTER (WHERE e.value ->> '$.ts' <= ${at}) AS events
    FROM tasks t, json_each(t.events) e
    WHERE t.trace_id = ${traceId}
    GROUP BY t.task_id`.toArray();
  const times: number[] = [];
  for (const r of rows) for (const ts of JSON.parse(r.times) as number[]) times.push(ts);
  if (times.length === 0) return null;
  times.sort((a, b) => a - b);
  const first = times[0]!;
  const last = times[times.length - 1]!;
  // Events at or before `at`: the index of the first one after it.
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid]! <= at) lo = mid + 1;
    else hi = mid;
  }
  const applied = lo;
  const current = applied > 0 ? times[applied - 1]! : null;
  let before = applied - 1;
  while (before >= 0 && times[before]! >= current!) before--;
  const density = new Array<number>(REPLAY_DENSITY_BUCKETS).fill(0);
  const width = (last - first) / REPLAY_DENSITY_BUCKETS;
  for (const ts of times)
    density[width > 0 ? Math.min(REPLAY_DENSITY_BUCKETS - 1, Math.floor((ts - first) / width)) : 0]!++;

  // Worker outages (cold shutdown, heartbeat loss) end running tasks only from their own moment on.
  const outages = sql<{ host: string; kind: string; ts: number }>`
    SELECT host, kind, ts FROM outages WHERE trace_id = ${traceId} AND ts <= ${at}`
    .toArray()
    .map((o) => ({ host: o.host, kind: o.kind as Outage["kind"], ts: o.ts }));
  const records: TaskRecord[] = [];
  for (const r of rows) {
    const events = r.events === null ? [] : (JSON.parse(r.events) as TaskEvent[]);
    if (events.length) records.push(foldTask(r.task_id, events, outages));
  }
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
      first_event_at: first,
      last_event_at: last,
      events_total: times.length,
      events_applied: applied,
      current_at: current,
      previous_at: before >= 0 ? times[before]! : null,
      next_at: applied < times.length ? times[applied]! : null,
      density,
    },
  };
}
