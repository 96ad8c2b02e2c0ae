import { DurableObject } from "cloudflare:workers";
import type {
  Anomaly,
  AnomalyKind,
  AnomalyList,
  GlobalLiveMessage,
  NameStat,
  RegistryEntry,
  TaskSearch,
  TaskState,
  ThroughputBucket,
  TraceList,
  TraceSummary,
} from "../shared/api";
import type { RuntimeProfile } from "../shared/anomalies";
import type { Env } from "./env";
import { acceptLiveSocket, answerPing, broadcastFrame, reciprocateClose } from "./live-sockets";
import { migrate, sqlFor, type Sql, type StorageMeter } from "./sql";
import type { IndexReport } from "./contracts";

/** Filters of `GET /api/traces`. Times are epoch seconds. */
export interface TraceQuery {
  state?: string | undefined;
  name?: string | undefined;
  worker?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  q?: string | undefined;
  cursor?: string | undefined;
  limit?: number | undefined;
}

/** Per-name run statistics; `registered` comes from the Fleet. */
export interface RunStats {
  name: string;
  runs: number;
  failures: number;
  runtime_p50_ms: number | null;
  runtime_p95_ms: number | null;
  last_run_at: number | null;
}

/** Filters of `GET /api/anomalies`. */
export interface AnomalyQuery {
  status?: "open" | "resolved" | "all" | undefined;
  kind?: AnomalyKind | undefined;
  trace_id?: string | undefined;
  name?: string | undefined;
  limit?: number | undefined;
}

/** The narrow interface both index backends implement (Durable Object, Upstash Redis). */
export interface IndexBackend {
  report(report: IndexReport): Promise<void>;
  forgetTraces(traceIds: string[]): Promise<void>;
  listAnomalies(query: AnomalyQuery): Promise<AnomalyList>;
  anomalyCounts(): Promise<{ open: number; by_kind: Record<string, number>; by_name: Record<string, number> }>;
  tracesRunningOn(host: string, taskIds: string[]): Promise<string[]>;
  runtimeProfile(name: string): Promise<RuntimeProfile>;
  listTraces(query: TraceQuery): Promise<TraceList>;
  traceOfTask(taskId: string): Promise<string | null>;
  searchTasks(q: string, limit: number): Promise<TaskSearch>;
  runStats(): Promise<RunStats[]>;
  finishedSince(since: number): Promise<{ finished: number; failed: number }>;
  counts(): Promise<{ traces: number; tasks: number }>;
  throughput(bucketS: number, buckets: number): Promise<ThroughputBucket[]>;
  topNames(since: number, limit: number): Promise<{ busiest: NameStat[]; slowest: NameStat[] }>;
}

const FAILED_STATES = ["FAILURE", "UNREGISTERED", "INTERRUPTED", "LOST", "REJECTED"];
const FINISHED_STATES = ["SUCCESS", "REVOKED", "IGNORED", "REPLACED", ...FAILED_STATES];
/** FAILED_STATES for SQL (`state IN (SELECT value FROM json_each(...))`): one list for JS and SQL. */
const FAILED_STATES_JSON = JSON.stringify(FAILED_STATES);

const MIGRATIONS = [
  `CREATE TABLE traces (
     trace_id TEXT PRIMARY KEY, state TEXT NOT NULL, sort_at REAL NOT NULL, started_at REAL, updated_at REAL NOT NULL,
     names TEXT NOT NULL, workers TEXT NOT NULL, summary TEXT NOT NULL);
   CREATE INDEX traces_by_time ON traces (sort_at DESC, trace_id DESC);
   CREATE TABLE tasks (
     task_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, name TEXT, state TEXT NOT NULL, runtime_ms REAL,
     finished_at REAL, worker TEXT, updated_at REAL NOT NULL);
   CREATE INDEX tasks_by_name ON tasks (name, finished_at);
   CREATE INDEX tasks_by_finished ON tasks (finished_at);`,
  `CREATE TABLE anomalies (
     id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, task_id TEXT NOT NULL, task_name TEXT, kind TEXT NOT NULL,
     detected_at REAL NOT NULL, resolved_at REAL, body TEXT NOT NULL);
   CREATE INDEX anomalies_by_time ON anomalies (detected_at DESC);
   CREATE INDEX anomalies_open ON anomalies (kind) WHERE resolved_at IS NULL;
   CREATE INDEX tasks_by_worker ON tasks (worker, state);`,
];

export function encodeCursor(sortAt: number, traceId: string): string {
  return btoa(JSON.stringify([sortAt, traceId]));
}

export function decodeCursor(cursor: string): [number, string] | null {
  try {
    const value: unknown = JSON.parse(atob(cursor));
    if (Array.isArray(value) && typeof value[0] === "number" && typeof value[1] === "string") return [value[0], value[1]];
  } catch {
    // fall through: a malformed cursor is reported by the caller
  }
  return null;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? null;
}

/**
 * The embedded index (one object, named "global"): trace summaries for the list, task id → trace,
 * per-name run statistics, and the `/api/live` sockets. TraceGraphs write here coalesced, about
 * once a second each, so its write rate follows the number of active traces, not of events.
 */
export class TraceIndex extends DurableObject<Env> implements IndexBackend {
  private sql: Sql;
  private liveSeq = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = sqlFor(ctx.storage.sql);
    ctx.blockConcurrencyWhile(async () => migrate(ctx.storage.sql, MIGRATIONS));
  }

  /** Rows written and read by this object's statements (and alarm writes) since it started: the bill's unit. */
  async storageStats(): Promise<StorageMeter> {
    return this.sql.meter();
  }

  /**
   * One shard's coalesced report: every changed trace's summary, every changed task, anomalies
   * opened or resolved. A statement per table for the whole report (per-row statements dominated
   * the index's cost), so calls here grow with the number of shards, not of traces.
   */
  async report(report: IndexReport): Promise<void> {
    const now = Date.now() / 1000;
    if (report.traces.length) {
      // Names and workers as "|a|b|": a LIKE '%|x|%' matches whole entries.
      const rows = report.traces.map((s) => ({ s, n: "|" + s.task_names.join("|") + "|", w: "|" + s.workers.join("|") + "|" }));
      this.sql`INSERT INTO traces (trace_id, state, sort_at, started_at, updated_at, names, workers, summary)
               SELECT value ->> '$.s.trace_id', value ->> '$.s.state', COALESCE(value ->> '$.s.started_at', value ->> '$.s.updated_at'),
                      value ->> '$.s.started_at', value ->> '$.s.updated_at', value ->> '$.n', value ->> '$.w', json(value -> '$.s')
               FROM json_each(${JSON.stringify(rows)}) WHERE true
               ON CONFLICT (trace_id) DO UPDATE SET state = excluded.state, sort_at = excluded.sort_at,
                 started_at = excluded.started_at, updated_at = excluded.updated_at, names = excluded.names,
                 workers = excluded.workers, summary = excluded.summary`;
    }
    if (report.tasks.length)
      this.sql`INSERT INTO tasks (task_id, trace_id, name, state, runtime_ms, finished_at, worker, updated_at)
               SELECT value ->> '$.task_id', value ->> '$.trace_id', value ->> '$.name', value ->> '$.state', value ->> '$.runtime_ms',
                      value ->> '$.finished_at', value ->> '$.worker', ${now}
               FROM json_each(${JSON.stringify(report.tasks)}) WHERE true
               ON CONFLICT (task_id) DO UPDATE SET trace_id = excluded.trace_id, name = excluded.name, state = excluded.state,
                 runtime_ms = excluded.runtime_ms, finished_at = excluded.finished_at, worker = excluded.worker,
                 updated_at = excluded.updated_at`;
    for (const a of report.anomalies) {
      this.sql`INSERT INTO anomalies (id, trace_id, task_id, task_name, kind, detected_at, resolved_at, body)
               VALUES (${a.id}, ${a.trace_id}, ${a.task_id}, ${a.task_name}, ${a.kind}, ${a.detected_at}, ${a.resolved_at}, ${JSON.stringify(a)})
               ON CONFLICT (id) DO UPDATE SET resolved_at = excluded.resolved_at, body = excluded.body`;
      this.broadcast({ type: "anomaly", seq: ++this.liveSeq, anomaly: a });
    }
    for (const summary of report.traces) this.broadcast({ type: "trace", seq: ++this.liveSeq, summary });
  }

  /** Traces deleted by retention: their summaries, task lookups and anomalies go with them. */
  async forgetTraces(traceIds: string[]): Promise<void> {
    const ids = JSON.stringify(traceIds);
    this.sql`DELETE FROM traces WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
    this.sql`DELETE FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
    this.sql`DELETE FROM anomalies WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
  }

  async listAnomalies(query: AnomalyQuery): Promise<AnomalyList> {
    const status = query.status ?? "all";
    const limit = Math.min(Math.max(query.limit ?? 200, 1), 1000);
    const rows = this.sql<{ body: string }>`
      SELECT body FROM anomalies
      WHERE (${status} = 'all' OR (${status} = 'open' AND resolved_at IS NULL) OR (${status} = 'resolved' AND resolved_at IS NOT NULL))
        AND (${query.kind ?? null} IS NULL OR kind = ${query.kind ?? null})
        AND (${query.trace_id ?? null} IS NULL OR trace_id = ${query.trace_id ?? null})
        AND (${query.name ?? null} IS NULL OR task_name = ${query.name ?? null})
      ORDER BY resolved_at IS NOT NULL, detected_at DESC LIMIT ${limit}`.toArray();
    return { anomalies: rows.map((r) => JSON.parse(r.body) as Anomaly) };
  }

  async anomalyCounts(): Promise<{ open: number; by_kind: Record<string, number>; by_name: Record<string, number> }> {
    const byKind: Record<string, number> = {};
    const byName: Record<string, number> = {};
    let open = 0;
    for (const row of this.sql<{ kind: string; task_name: string | null; n: number }>`
      SELECT kind, task_name, COUNT(*) AS n FROM anomalies WHERE resolved_at IS NULL GROUP BY kind, task_name`) {
      open += row.n;
      byKind[row.kind] = (byKind[row.kind] ?? 0) + row.n;
      if (row.task_name) byName[row.task_name] = (byName[row.task_name] ?? 0) + row.n;
    }
    return { open, by_kind: byKind, by_name: byName };
  }

  /** Traces with tasks running (or about to) on a worker, plus the traces of the given task ids. */
  async tracesRunningOn(host: string, taskIds: string[]): Promise<string[]> {
    return this.sql<{ trace_id: string }>`
      SELECT DISTINCT trace_id FROM tasks WHERE worker = ${host} AND state IN ('STARTED', 'RECEIVED', 'SCHEDULED', 'RETRY')
      UNION SELECT trace_id FROM tasks WHERE task_id IN (SELECT value FROM json_each(${JSON.stringify(taskIds)}))`
      .toArray()
      .map((r) => r.trace_id);
  }

  /** How long a task name usually runs: finished runs and their 99th percentile. */
  async runtimeProfile(name: string): Promise<RuntimeProfile> {
    const runtimes = this.sql<{ runtime_ms: number }>`
      SELECT runtime_ms FROM tasks WHERE name = ${name} AND runtime_ms IS NOT NULL ORDER BY finished_at DESC LIMIT 1000`
      .toArray()
      .map((r) => r.runtime_ms)
      .sort((a, b) => a - b);
    return { runs: runtimes.length, p99_ms: percentile(runtimes, 99) };
  }

  async listTraces(query: TraceQuery): Promise<TraceList> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 200);
    const cursor = query.cursor ? decodeCursor(query.cursor) : null;
    const rows = this.sql<{ summary: string; sort_at: number; trace_id: string }>`
      SELECT summary, sort_at, trace_id FROM traces
      WHERE (${query.state ?? null} IS NULL OR state = ${query.state ?? null})
        AND (${query.name ?? null} IS NULL OR names LIKE ${"%" + (query.name ?? "") + "%"})
        AND (${query.worker ?? null} IS NULL OR workers LIKE ${"%|" + (query.worker ?? "") + "|%"})
        AND (${query.from ?? null} IS NULL OR sort_at >= ${query.from ?? null})
        AND (${query.to ?? null} IS NULL OR sort_at <= ${query.to ?? null})
        AND (${query.q ?? null} IS NULL OR trace_id LIKE ${(query.q ?? "") + "%"} OR names LIKE ${"%" + (query.q ?? "") + "%"})
        AND (${cursor ? 1 : 0} = 0 OR sort_at < ${cursor?.[0] ?? 0} OR (sort_at = ${cursor?.[0] ?? 0} AND trace_id < ${cursor?.[1] ?? ""}))
      ORDER BY sort_at DESC, trace_id DESC LIMIT ${limit + 1}`.toArray();
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      traces: page.map((r) => JSON.parse(r.summary) as TraceSummary),
      next_cursor: rows.length > limit && last ? encodeCursor(last.sort_at, last.trace_id) : null,
    };
  }

  async traceOfTask(taskId: string): Promise<string | null> {
    return this.sql<{ trace_id: string }>`SELECT trace_id FROM tasks WHERE task_id = ${taskId}`.toArray()[0]?.trace_id ?? null;
  }

  async searchTasks(q: string, limit: number): Promise<TaskSearch> {
    const rows = this.sql<{ task_id: string; name: string | null; trace_id: string; state: string; updated_at: number }>`
      SELECT task_id, name, trace_id, state, updated_at FROM tasks
      WHERE task_id LIKE ${q + "%"} OR name LIKE ${"%" + q + "%"} ORDER BY updated_at DESC LIMIT ${limit}`.toArray();
    return { tasks: rows.map((r) => ({ ...r, state: r.state as TaskState })) };
  }

  async runStats(): Promise<RunStats[]> {
    const rows = this.sql<{ name: string; state: string; runtime_ms: number | null; finished_at: number | null }>`
      SELECT name, state, runtime_ms, finished_at FROM tasks WHERE name IS NOT NULL`.toArray();
    const byName = new Map<string, { runs: number; failures: number; runtimes: number[]; last: number | null }>();
    for (const r of rows) {
      const s = byName.get(r.name) ?? { runs: 0, failures: 0, runtimes: [], last: null };
      if (FINISHED_STATES.includes(r.state)) s.runs++;
      if (FAILED_STATES.includes(r.state)) s.failures++;
      if (r.runtime_ms !== null) s.runtimes.push(r.runtime_ms);
      if (r.finished_at !== null) s.last = Math.max(s.last ?? 0, r.finished_at);
      byName.set(r.name, s);
    }
    return [...byName].map(([name, s]) => {
      const sorted = s.runtimes.sort((a, b) => a - b);
      return {
        name,
        runs: s.runs,
        failures: s.failures,
        runtime_p50_ms: percentile(sorted, 50),
        runtime_p95_ms: percentile(sorted, 95),
        last_run_at: s.last,
      };
    });
  }

  async finishedSince(since: number): Promise<{ finished: number; failed: number }> {
    const row = this.sql<{ finished: number; failed: number }>`
      SELECT COUNT(*) AS finished, SUM(CASE WHEN state IN (SELECT value FROM json_each(${FAILED_STATES_JSON})) THEN 1 ELSE 0 END) AS failed
      FROM tasks WHERE finished_at >= ${since}`.one();
    return { finished: row.finished, failed: row.failed ?? 0 };
  }

  /** Finished / failed tasks per bucket of `bucketS` seconds, `buckets` buckets ending now, oldest first. */
  async throughput(bucketS: number, buckets: number): Promise<ThroughputBucket[]> {
    const end = Math.ceil(Date.now() / 1000 / bucketS) * bucketS;
    const start = end - bucketS * buckets;
    const rows = this.sql<{ bucket: number; finished: number; failed: number }>`
      SELECT CAST((finished_at - ${start}) / ${bucketS} AS INTEGER) AS bucket, COUNT(*) AS finished,
             SUM(CASE WHEN state IN (SELECT value FROM json_each(${FAILED_STATES_JSON})) THEN 1 ELSE 0 END) AS failed
      FROM tasks WHERE finished_at >= ${start} GROUP BY bucket`.toArray();
    const byBucket = new Map(rows.map((r) => [r.bucket, r]));
    return Array.from({ length: buckets }, (_, i) => ({
      start: start + i * bucketS,
      finished: byBucket.get(i)?.finished ?? 0,
      failed: byBucket.get(i)?.failed ?? 0,
    }));
  }

  /** Over tasks finished since `since`: the names that ran most and the slowest by p95. */
  async topNames(since: number, limit: number): Promise<{ busiest: NameStat[]; slowest: NameStat[] }> {
    const byName = new Map<string, { runs: number; failures: number; runtimes: number[] }>();
    for (const r of this.sql<{ name: string; state: string; runtime_ms: number | null }>`
      SELECT name, state, runtime_ms FROM tasks WHERE finished_at >= ${since} AND name IS NOT NULL`) {
      const s = byName.get(r.name) ?? { runs: 0, failures: 0, runtimes: [] };
      s.runs++;
      if (FAILED_STATES.includes(r.state)) s.failures++;
      if (r.runtime_ms !== null) s.runtimes.push(r.runtime_ms);
      byName.set(r.name, s);
    }
    const stats: NameStat[] = [...byName].map(([name, s]) => ({
      name,
      runs: s.runs,
      failures: s.failures,
      runtime_p95_ms: percentile(s.runtimes.sort((a, b) => a - b), 95),
    }));
    return {
      busiest: [...stats].sort((a, b) => b.runs - a.runs || (a.name < b.name ? -1 : 1)).slice(0, limit),
      slowest: stats
        .filter((s) => s.runtime_p95_ms !== null)
        .sort((a, b) => b.runtime_p95_ms! - a.runtime_p95_ms! || (a.name < b.name ? -1 : 1))
        .slice(0, limit),
    };
  }

  async counts(): Promise<{ traces: number; tasks: number }> {
    return {
      traces: this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM traces`.one().n,
      tasks: this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM tasks`.one().n,
    };
  }

  /** Fans a message out to every `/api/live` socket (also used by the Fleet for worker and anomaly news). */
  async publish(message: GlobalLiveMessage): Promise<void> {
    this.broadcast({ ...message, seq: ++this.liveSeq } as GlobalLiveMessage);
  }

  private broadcast(message: GlobalLiveMessage): void {
    broadcastFrame(this.ctx, message);
  }

  async fetch(request: Request): Promise<Response> {
    return acceptLiveSocket(this.ctx, request, { type: "hello", seq: this.liveSeq } satisfies GlobalLiveMessage);
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    answerPing(ws, message);
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    reciprocateClose(ws, code, reason);
  }
}

export type { RegistryEntry };
