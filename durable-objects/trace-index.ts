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
import { isFailed, RUNNING, SUMMARY_STATES, TERMINAL } from "../shared/states";

/** Task states held by a worker: what its outage can interrupt. */
const ON_A_WORKER = JSON.stringify([...RUNNING, "RECEIVED", "SCHEDULED"]);
/** Trace states that are not finished. */
const UNFINISHED = JSON.stringify(SUMMARY_STATES.filter((s) => !TERMINAL.has(s)));
import type { Env } from "./env";
import { acceptLiveSocket, answerPings, broadcastFrame, reciprocateClose } from "./live-sockets";
import { ident, jsonChunks, migrate, sqlFor, type Sql, type StorageMeter } from "./sql";
import { shardCount } from "./shards";
import type { IndexReport } from "./protocol";
import { decodeCursor, encodeCursor } from "../shared/cursor";
import { byUpdatedDesc, likeLiteral } from "../shared/index-match";
import {
  addRunRow,
  percentile,
  runStatsOf,
  topNamesOf,
  type NameRuns,
  type RunPercentiles,
  type RunStats,
} from "./run-stats";

export type { RunPercentiles, RunStats };

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
  forgetDay(day: number): Promise<void>;
  listAnomalies(query: AnomalyQuery): Promise<AnomalyList>;
  anomalyCounts(): Promise<{
    open: number;
    by_kind: Record<string, number>;
    by_name: Record<string, number>;
  }>;
  tracesRunningOn(host: string, taskIds: string[]): Promise<string[]>;
  runtimeProfile(name: string): Promise<RuntimeProfile>;
  listTraces(query: TraceQuery): Promise<TraceList>;
  traceOfTask(taskId: string): Promise<string | null>;
  knowsTrace(traceId: string): Promise<boolean>;
  searchTasks(q: string, limit: number): Promise<TaskSearch>;
  runStats(): Promise<RunStats[]>;
  finishedSince(since: number): Promise<{ finished: number; failed: number }>;
  counts(): Promise<{ traces: number; tasks: number }>;
  throughput(bucketS: number, buckets: number): Promise<ThroughputBucket[]>;
  topNames(
    since: number,
    limit: number,
  ): Promise<{ busiest: NameStat[]; slowest: NameStat[]; longestWait: NameStat[] }>;
}

/** States that count as a failed run (the v3 migration's SQL lists the same). */

export const TRACE_INDEX_MIGRATIONS = [
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
  // v3 (trace shards): rows written are the bill, so every table is clustered by what its queries
  // need and carries no secondary index that a report would have to update:
  // - traces by (sort_at, trace_id), sort_at being the time the trace was first seen, which never
  //   changes (the shard sends it with every report), so an update rewrites one row;
  // - tasks only for the task → trace lookup of tasks that are not their trace's root (a root's
  //   trace id is its own id), and for search;
  // - runs: per task name and minute, the finished runs, failures and runtimes (run statistics,
  //   throughput, runtime profiles), one row per name and minute however many tasks.
  `CREATE TABLE traces_v3 (
     sort_at REAL NOT NULL, trace_id TEXT NOT NULL, state TEXT NOT NULL, started_at REAL, updated_at REAL NOT NULL,
     names TEXT NOT NULL, workers TEXT NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (sort_at, trace_id)) WITHOUT ROWID;
   INSERT INTO traces_v3 SELECT sort_at, trace_id, state, started_at, updated_at, names, workers, summary FROM traces;
   DROP TABLE traces;
   ALTER TABLE traces_v3 RENAME TO traces;
   CREATE TABLE runs (
     name TEXT NOT NULL, minute INTEGER NOT NULL, finished INTEGER NOT NULL, failed INTEGER NOT NULL,
     runtimes TEXT NOT NULL, last_at REAL NOT NULL, PRIMARY KEY (name, minute)) WITHOUT ROWID;
   INSERT INTO runs SELECT COALESCE(name, ''), CAST(finished_at / 60 AS INTEGER), COUNT(*),
       SUM(state IN ('FAILURE', 'UNREGISTERED', 'INTERRUPTED', 'LOST', 'REJECTED')),
       COALESCE(json_group_array(runtime_ms) FILTER (WHERE runtime_ms IS NOT NULL), '[]'), MAX(finished_at)
     FROM tasks WHERE finished_at IS NOT NULL GROUP BY 1, 2;
   CREATE INDEX runs_by_minute ON runs (minute);
   CREATE TABLE counters (key TEXT PRIMARY KEY, value REAL NOT NULL);
   INSERT INTO counters SELECT 'tasks', COUNT(*) FROM tasks;
   INSERT INTO counters SELECT 'traces', COUNT(*) FROM traces;
   CREATE TABLE tasks_v3 (task_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, name TEXT, state TEXT NOT NULL, worker TEXT,
     updated_at REAL NOT NULL) WITHOUT ROWID;
   INSERT INTO tasks_v3 SELECT task_id, trace_id, name, state, worker, updated_at FROM tasks WHERE task_id <> trace_id;
   DROP TABLE tasks;
   ALTER TABLE tasks_v3 RENAME TO tasks;`,
  // v4: queue waits (published → started, see shared/queue-wait.ts) sampled beside the runtimes in
  // the same (name, minute) rows, so a run costs no more rows written than before. Rows from
  // before have none ('[]': their wait percentiles are null until new runs come).
  `ALTER TABLE runs ADD COLUMN waits TEXT NOT NULL DEFAULT '[]';`,
];

/**
 * The list and the task lookup are partitioned like the shards' task rows: by the day (UTC) a
 * trace was first written (`traces_<day>`, `tasks_<day>`, views `traces` and `tasks` for reads).
 * A shard that drops a day's partition at retention tells the index to drop the same day
 * (`forgetDay`): `DROP TABLE` writes no rows, so the list costs nothing to expire.
 */
const DAY_S = 86_400;
const TRACE_COLUMNS = "sort_at, trace_id, state, started_at, updated_at, names, workers, summary";
const TASK_COLUMNS = "task_id, trace_id, name, state, worker, updated_at";

function partitionDdl(day: number, idIndexed: boolean): string {
  return `CREATE TABLE IF NOT EXISTS traces_${day} (
     sort_at REAL NOT NULL, trace_id TEXT NOT NULL, state TEXT NOT NULL, started_at REAL, updated_at REAL NOT NULL,
     names TEXT NOT NULL, workers TEXT NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (sort_at, trace_id)) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS tasks_${day} (task_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, name TEXT, state TEXT NOT NULL, worker TEXT,
     updated_at REAL NOT NULL) WITHOUT ROWID;
   ${idIndexed ? traceIdIndexDdl(day) : ""}`;
}

/**
 * Whether a trace exists, by id (\`knowsTrace\`): the Worker asks before it touches an object named
 * by an id from a URL, so that reads of unknown ids create nothing. One index row per trace,
 * written once (an update of a summary does not change its key) — a row per trace that only the
 * layouts that name objects by trace id need: one object per trace (TRACE_SHARDS=0), or shards
 * with the pre-shard objects still read (LEGACY_TRACE_OBJECTS=1). With shards alone it would be
 * a third of the rows a standalone task costs, for nothing (bench/results/rows-written.json).
 */
function traceIdIndexDdl(day: number): string {
  return `CREATE INDEX IF NOT EXISTS traces_${day}_by_id ON traces_${day} (trace_id);`;
}

/** Run statistics are kept per minute of finishing. */
const MINUTE_S = 60;
/** Runtimes (and, apart, queue waits) kept per task name and minute (beyond it percentiles come from a sample). */
const MAX_RUNTIMES_PER_MINUTE = 2_000;
/** Run statistics gathered from reports are written this often (seconds). */
const RUNS_WRITE_S = 10;

function groupBy<T, K>(items: T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const list = groups.get(key);
    if (list) list.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/** A row's JSON array of samples (stored rows from before v4 have '[]'). */
function samples(json: string | null): number[] {
  return JSON.parse(json ?? "[]") as number[];
}

/**
 * The embedded index (one object, named "global"): trace summaries for the list, task id → trace,
 * per-name run statistics, and the `/api/live` sockets. TraceGraphs write here coalesced, about
 * once a second each, so its write rate follows the number of active traces, not of events.
 */
export class TraceIndex extends DurableObject<Env> implements IndexBackend {
  private sql: Sql;
  /**
   * The `/api/live` sequence: consecutive within this object's life, and starting from the clock
   * (µs-scaled) when it wakes, so it never goes back after an eviction: a client sees the jump as a
   * gap and refetches, which is right, since it may have missed frames meanwhile.
   */
  private liveSeq = Date.now() * 1000;
  /** Whether the day partitions index traces by id (see traceIdIndexDdl). */
  private readonly idIndexed: boolean;

  /** The day partitions that exist, oldest first. */
  private days: number[] = [];

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    answerPings(ctx);
    this.sql = sqlFor(ctx.storage.sql);
    // Synchronous SQL finishes before the object takes any call.
    migrate(ctx.storage.sql, TRACE_INDEX_MIGRATIONS);
    this.idIndexed = shardCount(env) === 0 || env.LEGACY_TRACE_OBJECTS === "1";
    this.loadPartitions();
  }

  /** Finds the day partitions; the `traces` and `tasks` tables from before partitions become today's. */
  private loadPartitions(): void {
    const legacy = this.sql<{
      name: string;
    }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('traces', 'tasks')`.toArray();
    if (legacy.length) {
      const today = Math.floor(Date.now() / 1000 / DAY_S);
      this.ctx.storage.sql.exec(partitionDdl(today, this.idIndexed));
      for (const { name } of legacy) {
        const columns = name === "traces" ? TRACE_COLUMNS : TASK_COLUMNS;
        this.ctx.storage.sql.exec(
          `INSERT OR IGNORE INTO ${name}_${today} (${columns}) SELECT ${columns} FROM ${name}`,
        );
        this.ctx.storage.sql.exec(`DROP TABLE ${name}`);
      }
    }
    this.days = this.sql<{
      name: string;
    }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'traces_[0-9]*'`
      .toArray()
      .map((t) => Number(t.name.slice("traces_".length)))
      .sort((a, b) => a - b);
    // Partitions made before the id index existed get it (a no-op once they have it).
    if (this.idIndexed) for (const day of this.days) this.ctx.storage.sql.exec(traceIdIndexDdl(day));
    if (this.days.length === 0) this.ensureDay(Math.floor(Date.now() / 1000 / DAY_S));
    else this.rebuildViews();
  }

  private rebuildViews(): void {
    this.sql`DROP VIEW IF EXISTS traces`;
    this.sql`DROP VIEW IF EXISTS tasks`;
    this.ctx.storage.sql.exec(
      `CREATE VIEW traces AS ${this.days.map((d) => `SELECT ${d} AS day, ${TRACE_COLUMNS} FROM traces_${d}`).join(" UNION ALL ")}`,
    );
    this.ctx.storage.sql.exec(
      `CREATE VIEW tasks AS ${this.days.map((d) => `SELECT ${d} AS day, ${TASK_COLUMNS} FROM tasks_${d}`).join(" UNION ALL ")}`,
    );
  }

  private ensureDay(day: number): void {
    if (this.days.includes(day)) return;
    this.ctx.storage.sql.exec(partitionDdl(day, this.idIndexed));
    this.days = [...this.days, day].sort((a, b) => a - b);
    this.rebuildViews();
  }

  /**
   * Retention: a shard dropped its partition of `day`, so the list and lookups of that day go too
   * (with their anomalies). Idempotent: every shard that had traces that day asks.
   */
  async forgetDay(day: number): Promise<void> {
    if (!this.days.includes(day)) return;
    this.writeRuns();
    const traces = ident(`traces_${day}`);
    const gone = this.sql<{ traces: number; tasks: number | null }>`
      SELECT COUNT(*) AS traces, SUM(summary ->> '$.task_count') AS tasks FROM ${traces}`.one();
    this.sql`DELETE FROM anomalies WHERE trace_id IN (SELECT trace_id FROM ${traces})`;
    this.sql`DROP TABLE ${traces}`;
    this.sql`DROP TABLE ${ident(`tasks_${day}`)}`;
    this.days = this.days.filter((d) => d !== day);
    if (this.days.length === 0) this.ensureDay(Math.floor(Date.now() / 1000 / DAY_S));
    else this.rebuildViews();
    await this.addCounter("traces", -gone.traces);
    await this.addCounter("tasks", -(gone.tasks ?? 0));
  }

  /** Rows written and read by this object's statements (and alarm writes) since it started: the bill's unit. */
  async storageStats(): Promise<StorageMeter & { db_bytes: number }> {
    return { ...this.sql.meter(), db_bytes: this.ctx.storage.sql.databaseSize };
  }

  /**
   * One shard's coalesced report: every changed trace's summary, the changed tasks that are not
   * their trace's root, newly finished runs, anomalies opened or resolved. One statement per table
   * for the whole report, so calls and rows here grow with shards and traces, not with events.
   */
  async report(report: IndexReport): Promise<void> {
    const now = Date.now() / 1000;
    for (const [day, traces] of groupBy(report.traces, (t) => t.day)) {
      this.ensureDay(day);
      const table = ident(`traces_${day}`);
      // The deployment's trace and task counts move by the difference from what was stored.
      const keys = JSON.stringify(traces.map((t) => [t.sort_at, t.summary.trace_id]));
      const before = this.sql<{ n: number; tasks: number | null }>`
        SELECT COUNT(*) AS n, SUM(summary ->> '$.task_count') AS tasks FROM ${table}
        WHERE (sort_at, trace_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(${keys}))`.one();
      const after = traces.reduce((sum, t) => sum + t.summary.task_count, 0);
      // Names and workers as "|a|b|": a LIKE '%|x|%' matches whole entries.
      const rows = traces.map((t) => ({
        t: t.sort_at,
        s: t.summary,
        n: "|" + t.summary.task_names.join("|") + "|",
        w: "|" + t.summary.workers.join("|") + "|",
      }));
      for (const chunk of jsonChunks(rows))
        this
          .sql`INSERT INTO ${table} (sort_at, trace_id, state, started_at, updated_at, names, workers, summary)
               SELECT value ->> '$.t', value ->> '$.s.trace_id', value ->> '$.s.state', value ->> '$.s.started_at', value ->> '$.s.updated_at',
                      value ->> '$.n', value ->> '$.w', json(value -> '$.s')
               FROM json_each(${chunk}) WHERE true
               ON CONFLICT (sort_at, trace_id) DO UPDATE SET state = excluded.state, started_at = excluded.started_at,
                 updated_at = excluded.updated_at, names = excluded.names, workers = excluded.workers, summary = excluded.summary`;
      if (after !== (before.tasks ?? 0)) await this.addCounter("tasks", after - (before.tasks ?? 0));
      if (traces.length !== before.n) await this.addCounter("traces", traces.length - before.n);
    }
    for (const [day, tasks] of groupBy(report.tasks, (t) => t.day)) {
      this.ensureDay(day);
      for (const chunk of jsonChunks(tasks))
        // An announcement (a placeholder, PENDING) only fills in what nothing else said: it never
        // overwrites a row of the task's own events (which may arrive first, in any order).
        this.sql`INSERT INTO ${ident(`tasks_${day}`)} (task_id, trace_id, name, state, worker, updated_at)
               SELECT value ->> '$.task_id', value ->> '$.trace_id', value ->> '$.name', value ->> '$.state', value ->> '$.worker', ${now}
               FROM json_each(${chunk}) WHERE true
               ON CONFLICT (task_id) DO UPDATE SET trace_id = excluded.trace_id, name = excluded.name, state = excluded.state,
                 worker = excluded.worker, updated_at = excluded.updated_at
               WHERE NOT (excluded.state = 'PENDING' AND excluded.worker IS NULL AND ${ident(`tasks_${day}`)}.state <> 'PENDING')`;
    }
    if (report.runs.length) await this.addRuns(report.runs);
    for (const a of report.anomalies) {
      this.sql`INSERT INTO anomalies (id, trace_id, task_id, task_name, kind, detected_at, resolved_at, body)
               VALUES (${a.id}, ${a.trace_id}, ${a.task_id}, ${a.task_name}, ${a.kind}, ${a.detected_at}, ${a.resolved_at}, ${JSON.stringify(a)})
               ON CONFLICT (id) DO UPDATE SET resolved_at = excluded.resolved_at, body = excluded.body`;
      this.broadcast({ type: "anomaly", seq: ++this.liveSeq, anomaly: a });
    }
    for (const t of report.traces) this.broadcast({ type: "trace", seq: ++this.liveSeq, summary: t.summary });
    this.pruneRuns(now);
  }

  /** Counter changes are gathered in memory and written with the run statistics. */
  private async addCounter(key: string, delta: number): Promise<void> {
    this.pendingCounters.set(key, (this.pendingCounters.get(key) ?? 0) + delta);
    await this.scheduleWrite();
  }

  /** One alarm RUNS_WRITE_S from the first change gathered in memory. */
  private async scheduleWrite(): Promise<void> {
    if (this.runsAlarmSet) return;
    this.runsAlarmSet = true;
    this.sql.countAlarmWrite();
    await this.ctx.storage.setAlarm(Date.now() + RUNS_WRITE_S * 1000);
  }

  /**
   * Adds finished runs to their (name, minute) groups in memory; the groups are written every
   * RUNS_WRITE_S (and before any query of them): one row per name and minute however many shards
   * report. A crash loses at most that many seconds of run statistics, never trace data.
   */
  private async addRuns(runs: IndexReport["runs"]): Promise<void> {
    for (const r of runs) {
      const minute = Math.floor(r.finished_at / MINUTE_S);
      const key = `${r.name ?? ""}\u0000${minute}`;
      const g = this.pendingRuns.get(key) ?? {
        name: r.name ?? "",
        minute,
        finished: 0,
        failed: 0,
        runtimes: [],
        waits: [],
        last: 0,
      };
      g.finished++;
      if (isFailed(r.state as TaskState)) g.failed++;
      if (r.runtime_ms !== null && g.runtimes.length < MAX_RUNTIMES_PER_MINUTE) g.runtimes.push(r.runtime_ms);
      // Absent from a shard on older code, null when the task never started.
      const wait = r.queue_wait_ms ?? null;
      if (wait !== null && g.waits.length < MAX_RUNTIMES_PER_MINUTE) g.waits.push(wait);
      g.last = Math.max(g.last, r.finished_at);
      this.pendingRuns.set(key, g);
    }
    await this.scheduleWrite();
  }

  async alarm(): Promise<void> {
    this.runsAlarmSet = false;
    this.writeRuns();
  }

  /** Writes the run groups and counter changes gathered in memory. */
  private writeRuns(): void {
    for (const [key, delta] of this.pendingCounters)
      if (delta !== 0)
        this
          .sql`INSERT INTO counters (key, value) VALUES (${key}, ${delta}) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value`;
    this.pendingCounters.clear();
    if (this.pendingRuns.size === 0) return;
    const groups = [...this.pendingRuns.values()];
    this.pendingRuns.clear();
    for (const chunk of jsonChunks(groups))
      this.sql`INSERT INTO runs (name, minute, finished, failed, runtimes, waits, last_at)
             SELECT value ->> '$.name', value ->> '$.minute', value ->> '$.finished', value ->> '$.failed', json(value -> '$.runtimes'),
                    json(value -> '$.waits'), value ->> '$.last'
             FROM json_each(${chunk}) WHERE true
             ON CONFLICT (name, minute) DO UPDATE SET finished = finished + excluded.finished, failed = failed + excluded.failed,
               last_at = MAX(last_at, excluded.last_at),
               runtimes = CASE WHEN json_array_length(runtimes) >= ${MAX_RUNTIMES_PER_MINUTE} THEN runtimes ELSE (
                 SELECT json_group_array(value) FROM (
                   SELECT value FROM json_each(runs.runtimes) UNION ALL SELECT value FROM json_each(excluded.runtimes))) END,
               waits = CASE WHEN json_array_length(waits) >= ${MAX_RUNTIMES_PER_MINUTE} THEN waits ELSE (
                 SELECT json_group_array(value) FROM (
                   SELECT value FROM json_each(runs.waits) UNION ALL SELECT value FROM json_each(excluded.waits))) END`;
  }

  private prunedAt = 0;
  private pendingRuns = new Map<
    string,
    {
      name: string;
      minute: number;
      finished: number;
      failed: number;
      runtimes: number[];
      waits: number[];
      last: number;
    }
  >();
  private runsAlarmSet = false;
  private pendingCounters = new Map<string, number>();

  /** Run statistics older than the retention period go, at most once an hour. */
  private pruneRuns(now: number): void {
    if (now - this.prunedAt < 3600) return;
    this.prunedAt = now;
    const days = Number(this.env.RETENTION_DAYS ?? 7) || 7;
    this.sql`DELETE FROM runs WHERE minute < ${Math.floor((now - days * 86400) / MINUTE_S)}`;
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
      ORDER BY resolved_at IS NOT NULL, detected_at DESC, id DESC LIMIT ${limit}`.toArray();
    return { anomalies: rows.map((r) => JSON.parse(r.body) as Anomaly) };
  }

  async anomalyCounts(): Promise<{
    open: number;
    by_kind: Record<string, number>;
    by_name: Record<string, number>;
  }> {
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

  /**
   * Traces with tasks running (or about to) on a worker, plus the traces of the given task ids.
   * Only used with one object per trace (shards are asked directly): a scan, on worker loss only.
   * A task id the lookup does not know is a root task, whose trace id is its own.
   */
  async tracesRunningOn(host: string, taskIds: string[]): Promise<string[]> {
    const running = this.sql<{ trace_id: string }>`
      SELECT DISTINCT trace_id FROM tasks WHERE worker = ${host} AND state IN (SELECT value FROM json_each(${ON_A_WORKER}))`
      .toArray()
      .map((r) => r.trace_id);
    const known = new Map(
      this.sql<{
        task_id: string;
        trace_id: string;
      }>`SELECT task_id, trace_id FROM tasks WHERE task_id IN (SELECT value FROM json_each(${JSON.stringify(taskIds)}))`
        .toArray()
        .map((r) => [r.task_id, r.trace_id]),
    );
    const roots = this.sql<{ trace_id: string }>`
      SELECT trace_id FROM traces WHERE instr(workers, ${"|" + host + "|"}) > 0 AND state IN (SELECT value FROM json_each(${UNFINISHED}))`
      .toArray()
      .map((r) => r.trace_id);
    return [...new Set([...running, ...roots, ...taskIds.map((id) => known.get(id) ?? id)])];
  }

  /** Runtimes of a name's finished runs, newest minutes first, at most `limit`. */
  private runtimesOf(name: string, limit: number): number[] {
    const out: number[] = [];
    for (const row of this.sql<{
      runtimes: string;
    }>`SELECT runtimes FROM runs WHERE name = ${name} ORDER BY minute DESC`) {
      for (const v of JSON.parse(row.runtimes) as number[]) out.push(v);
      if (out.length >= limit) break;
    }
    return out.slice(0, limit);
  }

  /** How long a task name usually runs: finished runs and their 99th percentile. */
  async runtimeProfile(name: string): Promise<RuntimeProfile> {
    this.writeRuns();
    const runtimes = this.runtimesOf(name, 1000).sort((a, b) => a - b);
    return { runs: runtimes.length, p99_ms: percentile(runtimes, 99) };
  }

  async listTraces(query: TraceQuery): Promise<TraceList> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 200);
    const cursor = query.cursor ? decodeCursor(query.cursor) : null;
    // Newest first by the time each trace was first seen (the table's own order); from/to filter
    // on when its first task was published or started.
    // Each day's partition gives its first limit+1 in order; merged, the first limit+1 of all.
    const rows = this.days
      .flatMap((day) =>
        this.sql<{ summary: string; sort_at: number; trace_id: string }>`
      SELECT summary, sort_at, trace_id FROM ${ident(`traces_${day}`)}
      WHERE (${query.state ?? null} IS NULL OR state = ${query.state ?? null})
        AND (${query.name ?? null} IS NULL OR names LIKE ${"%" + likeLiteral(query.name ?? "") + "%"} ESCAPE '\\')
        AND (${query.worker ?? null} IS NULL OR instr(workers, ${"|" + (query.worker ?? "") + "|"}) > 0)
        AND (${query.from ?? null} IS NULL OR COALESCE(started_at, sort_at) >= ${query.from ?? null})
        AND (${query.to ?? null} IS NULL OR COALESCE(started_at, sort_at) <= ${query.to ?? null})
        AND (${query.q ?? null} IS NULL OR trace_id LIKE ${likeLiteral(query.q ?? "") + "%"} ESCAPE '\\'
          OR names LIKE ${"%" + likeLiteral(query.q ?? "") + "%"} ESCAPE '\\')
        AND (${cursor ? 1 : 0} = 0 OR sort_at < ${cursor?.[0] ?? 0} OR (sort_at = ${cursor?.[0] ?? 0} AND trace_id < ${cursor?.[1] ?? ""}))
      ORDER BY sort_at DESC, trace_id DESC LIMIT ${limit + 1}`.toArray(),
      )
      .sort(
        (a, b) => b.sort_at - a.sort_at || (a.trace_id < b.trace_id ? 1 : a.trace_id > b.trace_id ? -1 : 0),
      )
      .slice(0, limit + 1);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      traces: page.map((r) => JSON.parse(r.summary) as TraceSummary),
      next_cursor: rows.length > limit && last ? encodeCursor(last.sort_at, last.trace_id) : null,
    };
  }

  /** The trace of a task that is not its trace's root (null: it is a root, or not seen yet). */
  /** Whether the list has this trace (through each day's id index). */
  async knowsTrace(traceId: string): Promise<boolean> {
    return (
      this.sql<{ one: number }>`SELECT 1 AS one FROM traces WHERE trace_id = ${traceId} LIMIT 1`.toArray()
        .length > 0
    );
  }

  async traceOfTask(taskId: string): Promise<string | null> {
    return (
      this.sql<{ trace_id: string }>`SELECT trace_id FROM tasks WHERE task_id = ${taskId}`.toArray()[0]
        ?.trace_id ?? null
    );
  }

  /** Tasks by id prefix or name: those in the lookup, and the traces' root tasks (from their summaries). */
  async searchTasks(q: string, limit: number): Promise<TaskSearch> {
    // Literal text: an underscore in a task name is not a wildcard (shared/index-match.ts).
    const like = likeLiteral(q);
    type Found = {
      task_id: string;
      name: string | null;
      trace_id: string;
      state: string;
      updated_at: number;
    };
    const members = this.sql<Found>`
      SELECT task_id, name, trace_id, state, updated_at FROM tasks
      WHERE task_id LIKE ${like + "%"} ESCAPE '\\' OR name LIKE ${"%" + like + "%"} ESCAPE '\\'
      ORDER BY updated_at DESC, task_id DESC LIMIT ${limit}`.toArray();
    const roots = this.sql<Found>`
      SELECT summary ->> '$.root_task_id' AS task_id, summary ->> '$.root_name' AS name, trace_id, state, updated_at FROM traces
      WHERE summary ->> '$.root_task_id' = trace_id
        AND (trace_id LIKE ${like + "%"} ESCAPE '\\' OR summary ->> '$.root_name' LIKE ${"%" + like + "%"} ESCAPE '\\')
      ORDER BY sort_at DESC, trace_id DESC LIMIT ${limit}`.toArray();
    const rows = [...members, ...roots].sort(byUpdatedDesc).slice(0, limit);
    return { tasks: rows.map((r) => ({ ...r, state: r.state as TaskState })) };
  }

  async runStats(): Promise<RunStats[]> {
    this.writeRuns();
    return runStatsOf(this.runsByName(null));
  }

  /** The (name, minute) groups finished since `minute` (all: null), gathered per name. */
  private runsByName(minute: number | null): Map<string, NameRuns> {
    const byName = new Map<string, NameRuns>();
    for (const r of this.sql<{
      name: string;
      finished: number;
      failed: number;
      runtimes: string;
      waits: string;
      last_at: number;
    }>`
      SELECT name, finished, failed, runtimes, waits, last_at FROM runs
      WHERE name <> '' AND (${minute} IS NULL OR minute >= ${minute})`)
      addRunRow(byName, {
        name: r.name,
        finished: r.finished,
        failed: r.failed,
        runtimes: samples(r.runtimes),
        waits: samples(r.waits),
        last: r.last_at,
      });
    return byName;
  }

  /** Runs finished since `since` (to the minute). */
  async finishedSince(since: number): Promise<{ finished: number; failed: number }> {
    this.writeRuns();
    const row = this.sql<{ finished: number | null; failed: number | null }>`
      SELECT SUM(finished) AS finished, SUM(failed) AS failed FROM runs WHERE minute >= ${Math.floor(since / MINUTE_S)}`.one();
    return { finished: row.finished ?? 0, failed: row.failed ?? 0 };
  }

  /** Finished / failed runs per bucket of `bucketS` seconds (a multiple of a minute), `buckets` buckets ending now, oldest first. */
  async throughput(bucketS: number, buckets: number): Promise<ThroughputBucket[]> {
    this.writeRuns();
    const end = Math.ceil(Date.now() / 1000 / bucketS) * bucketS;
    const start = end - bucketS * buckets;
    const rows = this.sql<{ bucket: number; finished: number; failed: number }>`
      SELECT CAST((minute * ${MINUTE_S} - ${start}) / ${bucketS} AS INTEGER) AS bucket, SUM(finished) AS finished, SUM(failed) AS failed
      FROM runs WHERE minute >= ${Math.floor(start / MINUTE_S)} GROUP BY bucket`.toArray();
    const byBucket = new Map(rows.map((r) => [r.bucket, r]));
    return Array.from({ length: buckets }, (_, i) => ({
      start: start + i * bucketS,
      finished: byBucket.get(i)?.finished ?? 0,
      failed: byBucket.get(i)?.failed ?? 0,
    }));
  }

  /**
   * Over runs finished since `since`: the names that ran most, the slowest by p95 runtime and
   * those that waited longest for a worker by p95 queue wait.
   */
  async topNames(
    since: number,
    limit: number,
  ): Promise<{ busiest: NameStat[]; slowest: NameStat[]; longestWait: NameStat[] }> {
    this.writeRuns();
    return topNamesOf(this.runsByName(Math.floor(since / MINUTE_S)), limit);
  }

  async counts(): Promise<{ traces: number; tasks: number }> {
    this.writeRuns();
    return {
      traces:
        this.sql<{ value: number }>`SELECT value FROM counters WHERE key = 'traces'`.toArray()[0]?.value ?? 0,
      tasks:
        this.sql<{ value: number }>`SELECT value FROM counters WHERE key = 'tasks'`.toArray()[0]?.value ?? 0,
    };
  }

  /**
   * With the Upstash index (index-backend.ts) the list lives in Redis, but the `/api/live` sockets
   * stay here: a shard sends each report's summaries and anomalies for broadcast only, nothing stored.
   */
  async broadcastReport(report: Pick<IndexReport, "traces" | "anomalies">): Promise<void> {
    for (const a of report.anomalies) this.broadcast({ type: "anomaly", seq: ++this.liveSeq, anomaly: a });
    for (const t of report.traces) this.broadcast({ type: "trace", seq: ++this.liveSeq, summary: t.summary });
  }

  /** Fans a message out to every `/api/live` socket (also used by the Fleet for worker and anomaly news). */
  async publish(message: GlobalLiveMessage): Promise<void> {
    this.broadcast({ ...message, seq: ++this.liveSeq } as GlobalLiveMessage);
  }

  private broadcast(message: GlobalLiveMessage): void {
    broadcastFrame(this.ctx, message);
  }

  async fetch(request: Request): Promise<Response> {
    return acceptLiveSocket(this.ctx, request, {
      type: "hello",
      seq: this.liveSeq,
    } satisfies GlobalLiveMessage);
  }

  /** Clients send nothing but "ping", which the runtime answers (answerPings). */
  async webSocketMessage(): Promise<void> {}

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    reciprocateClose(ws, code, reason);
  }
}

export type { RegistryEntry };
