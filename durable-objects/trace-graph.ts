import { DurableObject } from "cloudflare:workers";
import type {
  Anomaly,
  GraphContainer,
  GraphNode,
  TaskDetail,
  TaskLink,
  TaskRow,
  TraceLiveMessage,
  TraceSnapshot,
  TraceSummary,
} from "../shared/api";
import { anomalyConfigFrom, type Outage, type Watch } from "../shared/anomalies";
import { announcedTasks, buildGraph, summarizeGraph, toGraphNode } from "../shared/graph";
import {
  compareTaskEvents,
  foldAttempts,
  foldPayload,
  foldTask,
  isTerminal,
  type TaskRecord,
} from "../shared/task-fold";
import { traceKeyOf, type TaskEvent } from "../shared/wire";
import { failureCount, summarize, type StateCounts } from "../shared/states";
import { AnomalyWatch, type TaskWatch } from "./anomaly-watch";
import { queueWaitMs } from "../shared/queue-wait";
import type {
  FinishedRun,
  IndexedTask,
  IndexReport,
  IngestResult,
  TaskListQuery,
  WorkerChange,
} from "./protocol";
import { FLEET_NAME, numberVar, WEBHOOKS_NAME, type Env } from "./env";
import { WebhookOutbox } from "./webhook-outbox";
import { indexBackend, indexBackendName, indexObject } from "./index-backend";
import { acceptLiveSocket, answerPings, broadcastFrame, reciprocateClose } from "./live-sockets";
import { Deadlines, OneAlarm } from "./deadlines";
import { readTraceAt } from "./replay";
import { readTaskAt, type NotYet } from "./task-replay";
import type { ReplaySnapshot } from "../shared/replay";
import { ident, jsonChunks, migrate, sqlFor, type Sql, type StorageMeter } from "./sql";
import { OTLP_EXPORTS_MIGRATION, OtlpExporter } from "./otlp-export";

export type { IngestResult } from "./protocol";

/** Traces up to this many tasks get their announced and never-run tasks re-sent by an index rebuild. */
const REINDEX_GRAPH_TASKS = 2_000;
/** Largest snapshot: about 10 MB of JSON, well under the RPC and response limits. */
export const MAX_SNAPSHOT_TASKS = 20_000;
/** Up to this many tasks, a live delta rebuilds the trace's graph so derived states are current. */
const MAX_LIVE_GRAPH_TASKS = 2_000;
/** Write-ahead slots: batches accepted since the last checkpoint, which runs before the ring is full. */
const LOG_SLOTS = 256;
/**
 * How often the log's replay mark and the retention lists are written (seconds): after a restart
 * the log is replayed from the mark (dedupe makes the replay exact), so writing it at every flush
 * would only cost rows.
 */
const CHECKPOINT_S = 10;
/** Tasks held in memory before a flush is forced, whatever the interval. */
const MAX_PENDING_TASKS = 5_000;
/**
 * A task that is neither finished nor due for a check may wait this long in memory (its events
 * safe in the log) before its row is written: most tasks finish within it and are written once.
 */
const HOLD_UNFINISHED_S = 5;
/** After a failed index report, try again this much later (seconds). */
const REPORT_RETRY_S = 5;
const DAY_S = 86_400;
/** A trace this large is summarized for the index at most every LARGE_TRACE_SUMMARY_S seconds. */
const LARGE_TRACE_TASKS = 5_000;
const LARGE_TRACE_SUMMARY_S = 10;

/**
 * Task rows are partitioned by the day (UTC) their trace was first written: `tasks_<day>`, with a
 * view `tasks` over all of them for reads (SQLite pushes `trace_id` constraints into each branch).
 * Retention drops a whole day's table, which writes no rows (measured: `DROP TABLE` reports 0
 * rows written, a `DELETE` one per row and index entry), so a trace costs nothing to delete.
 */
const PARTITION_COLUMNS = `trace_id, task_id, name, state, parent_id, worker, published_at, started_at, finished_at, runtime_ms,
  first_seen, touched_at, counted, watch_kind, due_at, record, events`;

function partitionDdl(day: number): string {
  return `CREATE TABLE IF NOT EXISTS tasks_${day} (
     trace_id TEXT NOT NULL, task_id TEXT NOT NULL, name TEXT, state TEXT NOT NULL, parent_id TEXT, worker TEXT,
     published_at REAL, started_at REAL, finished_at REAL, runtime_ms REAL, first_seen REAL NOT NULL, touched_at REAL NOT NULL,
     counted INTEGER NOT NULL, watch_kind TEXT, due_at REAL, record TEXT NOT NULL, events TEXT NOT NULL,
     PRIMARY KEY (trace_id, task_id)) WITHOUT ROWID;
   CREATE INDEX IF NOT EXISTS tasks_${day}_watched ON tasks_${day} (due_at) WHERE due_at IS NOT NULL;
   CREATE INDEX IF NOT EXISTS tasks_${day}_running ON tasks_${day} (worker) WHERE state IN ('STARTED', 'INTERRUPTED', 'LOST');`;
}

export const TRACE_GRAPH_MIGRATIONS = [
  // v1, v2: the one-object-per-trace layout (before shards). Kept so that objects written then
  // migrate in place (v3); a new object runs all three on empty tables.
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE events (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, body TEXT NOT NULL);
   CREATE INDEX events_by_task ON events (task_id);
   CREATE TABLE tasks (
     task_id TEXT PRIMARY KEY, name TEXT, state TEXT NOT NULL, parent_id TEXT, worker TEXT,
     published_at REAL, started_at REAL, finished_at REAL, runtime_ms REAL, record TEXT NOT NULL,
     reported INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX tasks_by_parent ON tasks (parent_id);
   CREATE TABLE attempts (
     task_id TEXT NOT NULL, retries INTEGER NOT NULL, delivery INTEGER NOT NULL, state TEXT NOT NULL,
     worker TEXT, started_at REAL, finished_at REAL, PRIMARY KEY (task_id, retries, delivery));
   CREATE TABLE deadlines (key TEXT PRIMARY KEY, kind TEXT NOT NULL, task_id TEXT, due_at REAL NOT NULL);
   CREATE INDEX tasks_unreported ON tasks (reported) WHERE reported = 0;`,
  `CREATE TABLE anomalies (
     id TEXT PRIMARY KEY, kind TEXT NOT NULL, task_id TEXT NOT NULL, task_name TEXT, since REAL NOT NULL,
     detected_at REAL NOT NULL, resolved_at REAL, explanation TEXT NOT NULL, fix TEXT NOT NULL,
     reported INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX anomalies_open ON anomalies (task_id) WHERE resolved_at IS NULL;
   CREATE INDEX anomalies_unreported ON anomalies (reported) WHERE reported = 0;
   CREATE TABLE outages (host TEXT NOT NULL, kind TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (host, kind, ts));
   CREATE INDEX tasks_by_worker ON tasks (worker, state);
   CREATE INDEX deadlines_by_due ON deadlines (due_at);`,
  // v3: trace shards. Every table is keyed by trace id. A task's events live in its row (one row
  // written per flush that touches the task: rows written are the bill), secondary indexes only
  // where a query needs one, partial where most rows never enter them (a task that is finished
  // when it is written has no watch). A per-trace object's single trace becomes the one trace of
  // the shard-shaped schema. The `tasks` table made here then becomes a day's partition
  // (`adoptUnpartitioned`): tasks live in one table per day (see partitionDdl).
  `CREATE TABLE tasks_v3 (
     trace_id TEXT NOT NULL, task_id TEXT NOT NULL, name TEXT, state TEXT NOT NULL, parent_id TEXT, worker TEXT,
     published_at REAL, started_at REAL, finished_at REAL, runtime_ms REAL, first_seen REAL NOT NULL, touched_at REAL NOT NULL,
     counted INTEGER NOT NULL, watch_kind TEXT, due_at REAL, record TEXT NOT NULL, events TEXT NOT NULL,
     PRIMARY KEY (trace_id, task_id)) WITHOUT ROWID;
   INSERT INTO tasks_v3
     SELECT m.value, t.task_id, t.name, t.state, t.parent_id, t.worker, t.published_at, t.started_at, t.finished_at, t.runtime_ms,
            -- first seen: what the index sorted this trace by (its start), so its list row keeps its key
            COALESCE((SELECT MIN(COALESCE(published_at, started_at)) FROM tasks), (SELECT CAST(value AS REAL) FROM meta WHERE key = 'updated_at'), unixepoch()),
            COALESCE((SELECT CAST(value AS REAL) FROM meta WHERE key = 'updated_at'), unixepoch()), t.finished_at IS NOT NULL,
            d.kind, d.due_at, t.record, (SELECT json_group_array(json(e.body)) FROM events e WHERE e.task_id = t.task_id)
     FROM tasks t JOIN meta m ON m.key = 'trace_id' LEFT JOIN deadlines d ON d.key = 'watch:' || t.task_id;
   DROP TABLE tasks; DROP TABLE events; DROP TABLE attempts;
   ALTER TABLE tasks_v3 RENAME TO tasks;
   CREATE INDEX tasks_watched ON tasks (due_at) WHERE due_at IS NOT NULL;
   CREATE INDEX tasks_running ON tasks (worker) WHERE state IN ('STARTED', 'INTERRUPTED', 'LOST');

   CREATE TABLE anomalies_v3 (
     trace_id TEXT NOT NULL, id TEXT PRIMARY KEY, kind TEXT NOT NULL, task_id TEXT NOT NULL, task_name TEXT, since REAL NOT NULL,
     detected_at REAL NOT NULL, resolved_at REAL, explanation TEXT NOT NULL, fix TEXT NOT NULL, reported INTEGER NOT NULL DEFAULT 0);
   INSERT INTO anomalies_v3 SELECT m.value, a.id, a.kind, a.task_id, a.task_name, a.since, a.detected_at, a.resolved_at, a.explanation, a.fix, a.reported
     FROM anomalies a JOIN meta m ON m.key = 'trace_id';
   DROP TABLE anomalies;
   ALTER TABLE anomalies_v3 RENAME TO anomalies;
   CREATE INDEX anomalies_by_trace ON anomalies (trace_id, detected_at);
   CREATE INDEX anomalies_open ON anomalies (trace_id) WHERE resolved_at IS NULL;
   CREATE INDEX anomalies_unreported ON anomalies (reported) WHERE reported = 0;

   CREATE TABLE outages_v3 (trace_id TEXT NOT NULL, host TEXT NOT NULL, kind TEXT NOT NULL, ts REAL NOT NULL,
     PRIMARY KEY (trace_id, host, kind, ts)) WITHOUT ROWID;
   INSERT INTO outages_v3 SELECT m.value, o.host, o.kind, o.ts FROM outages o JOIN meta m ON m.key = 'trace_id';
   DROP TABLE outages;
   ALTER TABLE outages_v3 RENAME TO outages;

   CREATE TABLE deadlines_v3 (key TEXT PRIMARY KEY, kind TEXT NOT NULL, trace_id TEXT, due_at REAL NOT NULL);
   INSERT INTO deadlines_v3 SELECT 'graph_check:' || m.value, 'graph_check', m.value, d.due_at
     FROM deadlines d JOIN meta m ON m.key = 'trace_id' WHERE d.key = 'graph_check';
   DROP TABLE deadlines;
   ALTER TABLE deadlines_v3 RENAME TO deadlines;
   CREATE INDEX deadlines_by_due ON deadlines (due_at);

   CREATE TABLE log (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL, events TEXT NOT NULL);
   CREATE TABLE live_seq (trace_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
   INSERT INTO live_seq SELECT t.value, CAST(s.value AS INTEGER) FROM meta t JOIN meta s ON t.key = 'trace_id' AND s.key = 'seq';
   DELETE FROM meta;`,
  // v4: traces in which a task broke, and how many of their tasks will never run (NOT_RUN).
  `CREATE TABLE trace_marks (trace_id TEXT PRIMARY KEY, not_run INTEGER NOT NULL DEFAULT 0);`,
  // v5: the OpenTelemetry export's outbox (otlp-export.ts).
  OTLP_EXPORTS_MIGRATION,
];

/** A task whose events changed since the last flush: held in memory, its events in the write-ahead log. */
interface PendingTask {
  /** The day partition its trace's rows are in (null: its trace has no rows yet; today's at the flush). */
  part: number | null;
  trace_id: string;
  task_id: string;
  events: TaskEvent[];
  ids: Set<string>;
  /** The folded record before this flush's changes (the stored row's), for live structure checks. */
  stored: string | null;
  /** Its finished run was already counted in the index's run statistics. */
  counted: boolean;
  record: TaskRecord;
  watch: Watch | null;
  /** When it became pending, and the log entry its first unwritten event is in (the log keeps it until then). */
  since: number;
  firstSeq: number;
  /** The watch deadline its stored row carries (the alarm reads watches from rows). */
  storedDue: number | null;
  /** About how many UTF-8 bytes its events take as JSON (never less than they do): see MAX_TASK_EVENTS_BYTES. */
  bytes: number;
}

/**
 * A task row must stay under SQLite's 2 MB row limit in Durable Objects, or no flush could write
 * it (and the shard would retry forever): a task's events together are kept under this many
 * UTF-8 bytes of JSON (its record, derived from them, is at most about as large). An event that
 * would pass it is refused with a reason; the Python producer truncates long before.
 */
export const MAX_TASK_EVENTS_BYTES = 900_000;
const utf8Encoder = new TextEncoder();
/** UTF-8 bytes of a JSON text: exact when large, a cheap upper bound (3 per unit) when small. */
function jsonBytes(json: string): number {
  return json.length <= 50_000 ? json.length * 3 : utf8Encoder.encode(json).byteLength;
}

const keyOf = (traceId: string, taskId: string) => `${traceId}\u0000${taskId}`;

/** SQLite's BINARY order of TEXT (UTF-8 bytes, i.e. code points), not JS's UTF-16 order. */
function compareBinary(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (code points above U+FFFF) sort after U+E000..U+FFFF in code-point order.
    if (x >= 0xd800) x = x < 0xe000 ? x + 0x2000 : x - 0x800;
    if (y >= 0xd800) y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * A shard of Celery traces (or, with `TRACE_SHARDS=0`, one trace): their task records, events and
 * anomalies in SQLite, every table keyed by trace id.
 *
 * Invariants:
 * - events are applied idempotently (dedupe by event id, exact) and order-independently (each
 *   touched task is re-folded from all of its events);
 * - an accepted batch is durable before `ingest` returns: it is one row of the write-ahead `log`;
 *   the touched tasks are folded in memory at once (live deltas, anomalies) and written as rows
 *   at the next flush (every `FLUSH_INTERVAL_S`, before any read, or when memory fills), so a task
 *   whose events arrive in several batches is usually written once;
 * - each flush reports every changed trace to the index in one call;
 * - one alarm, the earliest of: the next flush, a task's watch (`tasks.due_at`), a trace's graph
 *   check or a day's retention sweep (`deadlines`).
 */
export class TraceGraph extends DurableObject<Env> {
  protected sql: Sql;
  protected readonly anomalies: AnomalyWatch;
  /** Anomalies and failed traces for the Webhooks object, sent after each report (webhook-outbox.ts). */
  private readonly webhooks: WebhookOutbox;
  /** Tasks changed since the last flush, by trace + task. */
  private pending = new Map<string, PendingTask>();
  private pendingTraces = new Set<string>();
  /** Traces flushed but not yet reported to the index (kept until the index has them). */
  private unreportedTraces = new Set<string>();
  private unreportedTasks = new Map<string, IndexedTask>();
  private unreportedRuns: FinishedRun[] = [];
  private logSeq = 0;
  /** The log is replayed after this entry (stored), and every entry up to `materializedSeq` is written as rows. */
  private checkpointSeq = 0;
  private materializedSeq = 0;
  private checkpointedAt = 0;
  private flushAt: number | null = null;
  private reportRetryAt: number | null = null;
  /** The object's one alarm (deadlines.ts) and its table of deadlines. */
  private alarm_: OneAlarm;
  private readonly deadlines: Deadlines;
  /** Traces that have worker outages recorded (rare): others fold with none, without a query. */
  private outageTraces: Set<string> | undefined;
  private outagesCache = new Map<string, Outage[]>();
  /** The day partitions that exist (`tasks_<day>`), oldest first, and which partition a trace is in. */
  private parts: number[] = [];
  private partOfTrace = new Map<string, number>();
  /** Traces of LARGE_TRACE_TASKS or more, and when each was last summarized for the index. */
  private largeTraces = new Map<string, number>();
  /** Whether this object has ever been written (its tables exist). */
  private hasSchema: boolean;
  /** The OpenTelemetry export of settled traces; null when OTLP_ENDPOINT is unset. */
  private readonly otlp: OtlpExporter | null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    answerPings(ctx);
    this.sql = sqlFor(ctx.storage.sql);
    this.alarm_ = new OneAlarm(ctx.storage, () => this.sql.countAlarmWrite(), "trace graph");
    this.deadlines = new Deadlines(this.sql);
    this.anomalies = new AnomalyWatch(
      this.sql,
      this.deadlines,
      anomalyConfigFrom(env as unknown as Record<string, string | undefined>),
      {
        fleet: () => this.env.FLEET.getByName(FLEET_NAME),
        index: () => indexBackend(this.env),
      },
    );
    this.webhooks = new WebhookOutbox(env, () => this.env.WEBHOOKS.getByName(WEBHOOKS_NAME));
    this.otlp = OtlpExporter.fromEnv(env, {
      sql: this.sql,
      ready: (traceId) => this.readyFor(traceId),
      fleet: () => this.env.FLEET.getByName(FLEET_NAME),
    });
    // Synchronous SQL finishes before the object takes any call: no blockConcurrencyWhile needed.
    // An object that was never written (a read of an unknown trace id reaches one) stays without a
    // schema, so a read creates no database: the schema is made by the first write (`ensureSchema`).
    this.hasSchema = false;
    this.schemaReady();
  }

  /** Whether the tables exist (opening them when they do); asked again by reads while they do not. */
  private schemaReady(): boolean {
    if (
      !this.hasSchema &&
      this.ctx.storage.sql
        .exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
        .toArray().length > 0
    )
      this.openSchema();
    return this.hasSchema;
  }

  private openSchema(): void {
    migrate(this.ctx.storage.sql, TRACE_GRAPH_MIGRATIONS);
    this.loadPartitions();
    this.recover();
    this.hasSchema = true;
  }

  /** Before the first write: creates the tables. */
  private ensureSchema(): void {
    if (!this.hasSchema) this.openSchema();
  }

  private get flushIntervalS(): number {
    return numberVar(this.env.FLUSH_INTERVAL_S, 1);
  }

  /** Rows written and read by this object's statements (and alarm writes) since it started: the bill's unit. */
  async storageStats(): Promise<StorageMeter & { db_bytes: number }> {
    return { ...this.sql.meter(), db_bytes: this.ctx.storage.sql.databaseSize };
  }

  // ---- day partitions ----

  /** Finds the partitions; a `tasks` table from before partitions (v3) becomes today's. */
  private loadPartitions(): void {
    const tables = this.sql<{ name: string; type: string }>`
      SELECT name, type FROM sqlite_master WHERE (type = 'table' AND name GLOB 'tasks_[0-9]*') OR name = 'tasks'`.toArray();
    if (tables.some((t) => t.name === "tasks" && t.type === "table")) {
      const today = Math.floor(Date.now() / 1000 / DAY_S);
      if (this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM tasks`.one().n === 0) this.sql`DROP TABLE tasks`;
      else if (tables.some((t) => t.name === `tasks_${today}`)) {
        this.ctx.storage.sql.exec(
          `INSERT OR IGNORE INTO tasks_${today} (${PARTITION_COLUMNS}) SELECT ${PARTITION_COLUMNS} FROM tasks`,
        );
        this.sql`DROP TABLE tasks`;
      } else {
        this.sql`ALTER TABLE tasks RENAME TO ${ident(`tasks_${today}`)}`;
        this.scheduleDrop(today);
      }
    }
    this.parts = this.sql<{
      name: string;
    }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'tasks_[0-9]*'`
      .toArray()
      .map((t) => Number(t.name.slice("tasks_".length)))
      .sort((a, b) => a - b);
    if (this.parts.length === 0) this.ensurePartition(Math.floor(Date.now() / 1000 / DAY_S));
    else this.rebuildView();
  }

  /** The view every read goes through: all partitions, each row with its partition's day. */
  private rebuildView(): void {
    this.sql`DROP VIEW IF EXISTS tasks`;
    const branches = this.parts
      .map((day) => `SELECT ${day} AS part, ${PARTITION_COLUMNS} FROM tasks_${day}`)
      .join(" UNION ALL ");
    this.ctx.storage.sql.exec(`CREATE VIEW tasks AS ${branches}`);
  }

  /** Creates a day's partition (and its drop at retention) if it does not exist. */
  private ensurePartition(day: number): void {
    if (this.parts.includes(day)) return;
    this.ctx.storage.sql.exec(partitionDdl(day));
    this.parts = [...this.parts, day].sort((a, b) => a - b);
    this.scheduleDrop(day);
    this.rebuildView();
  }

  /** A day's partition is dropped RETENTION_DAYS after the day ends. */
  private scheduleDrop(day: number): void {
    const due = (day + 1) * DAY_S + numberVar(this.env.RETENTION_DAYS, 7) * DAY_S;
    this.deadlines.set({ kind: "drop", day }, due, "keep");
  }

  /** Which partition holds each of these traces (those with rows), one query for all. */
  private locate(traceIds: string[]): void {
    const unknown = traceIds.filter((id) => !this.partOfTrace.has(id));
    if (unknown.length === 0) return;
    if (this.partOfTrace.size > 200_000) this.partOfTrace.clear(); // a cache, not a copy of the table
    for (const row of this.sql<{ trace_id: string; part: number }>`
      SELECT DISTINCT trace_id, part FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${JSON.stringify(unknown)}))`)
      this.partOfTrace.set(row.trace_id, row.part);
  }

  // ---- write path ----

  /** After a restart: batches accepted but not yet flushed are replayed from the log into memory. */
  private recover(): void {
    this.checkpointSeq = Number(
      this.sql<{ value: string }>`SELECT value FROM meta WHERE key = 'flushed_seq'`.toArray()[0]?.value ?? 0,
    );
    this.materializedSeq = this.checkpointSeq;
    this.logSeq = Math.max(
      this.checkpointSeq,
      this.sql<{ seq: number | null }>`SELECT MAX(seq) AS seq FROM log`.one().seq ?? 0,
    );
    if (this.logSeq === this.checkpointSeq) return;
    // Only the slots after the mark are read (a slot may hold up to a whole batch).
    const unflushed = this.sql<{
      seq: number;
      events: string;
    }>`SELECT seq, events FROM log WHERE seq > ${this.checkpointSeq} ORDER BY seq`.toArray();
    const now = Date.now() / 1000;
    // The log holds accepted events only: replayed without the size check (none may be lost).
    for (const row of unflushed) this.absorb(JSON.parse(row.events) as TaskEvent[], now, row.seq, false);
    this.flushAt = now; // flush at the first alarm
  }

  /**
   * Applies a batch of task events of any traces of this shard (as JSON: cheaper over RPC than
   * objects). Duplicates (same event id) are counted, not applied. Live viewers of a touched trace
   * get one delta frame; the index hears of the traces at the next flush.
   */
  async ingest(eventsJson: string): Promise<IngestResult> {
    const events = JSON.parse(eventsJson) as TaskEvent[];
    this.ensureSchema();
    const now = Date.now() / 1000;
    const { accepted, changed, anomaliesChanged, rejected } = this.absorb(events, now, this.logSeq + 1);
    const duplicates = events.length - accepted.length - rejected.length;
    if (accepted.length === 0)
      return rejected.length ? { accepted: 0, duplicates, rejected } : { accepted: 0, duplicates };
    // Durable before the answer: the accepted events are a row of the ring (more if very large).
    for (const chunk of jsonChunks(accepted)) {
      this.logSeq++;
      this
        .sql`INSERT INTO log (slot, seq, events) VALUES (${this.logSeq % LOG_SLOTS}, ${this.logSeq}, ${chunk})
               ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq, events = excluded.events`;
    }
    try {
      await this.afterChange(changed, now, anomaliesChanged);
    } catch (err) {
      // The events are durable (in the log) and folded: the flush that failed is retried by the
      // alarm. Failing the call would tell the producer they were not stored.
      console.error("trace graph: the flush after an ingest failed; retrying at the alarm", err);
      this.flushAt = Math.min(this.flushAt ?? Infinity, now + Math.max(this.flushIntervalS, REPORT_RETRY_S));
      await this.rearmAlarm().catch(() => {});
    }
    return rejected.length
      ? { accepted: accepted.length, duplicates, rejected }
      : { accepted: accepted.length, duplicates };
  }

  /**
   * Folds new events into the pending tasks: loads each touched task's stored events once, drops
   * events already seen, re-folds what changed. Returns the accepted events and the changed tasks.
   */
  private absorb(
    events: TaskEvent[],
    now: number,
    seq: number,
    limitSize = true,
  ): {
    accepted: TaskEvent[];
    changed: PendingTask[];
    anomaliesChanged: boolean;
    rejected: { id: string; error: string }[];
  } {
    const missing: [string, string][] = [];
    const seenKeys = new Set<string>();
    for (const e of events) {
      const key = keyOf(traceKeyOf(e), e.task_id);
      if (!this.pending.has(key) && !seenKeys.has(key)) {
        seenKeys.add(key);
        missing.push([traceKeyOf(e), e.task_id]);
      }
    }
    if (missing.length) this.load(missing, now, seq);
    const accepted: TaskEvent[] = [];
    const rejected: { id: string; error: string }[] = [];
    const touched = new Map<string, PendingTask>();
    for (const e of events) {
      const traceId = traceKeyOf(e);
      const key = keyOf(traceId, e.task_id);
      let task = this.pending.get(key);
      if (!task) {
        task = {
          part: null,
          trace_id: traceId,
          task_id: e.task_id,
          events: [],
          ids: new Set(),
          stored: null,
          counted: false,
          record: foldTask(e.task_id, []),
          watch: null,
          since: now,
          firstSeq: seq,
          storedDue: null,
          bytes: 2,
        };
        this.pending.set(key, task);
      }
      if (task.ids.has(e.id)) continue;
      const bytes = jsonBytes(JSON.stringify(e)) + 1;
      if (limitSize && task.bytes + bytes > MAX_TASK_EVENTS_BYTES) {
        rejected.push({
          id: e.id,
          error: `task ${e.task_id} would hold over ${MAX_TASK_EVENTS_BYTES} bytes of events with this one (${bytes} bytes): send smaller args, results and tracebacks`,
        });
        continue;
      }
      task.bytes += bytes;
      task.ids.add(e.id);
      task.events.push(e);
      accepted.push(e);
      touched.set(key, task);
    }
    // Stored tasks that only got duplicates stay as they are (no row to rewrite); so do new tasks
    // whose every event was refused.
    for (const [key] of missing.map(([traceId, taskId]) => [keyOf(traceId, taskId)] as const))
      if (!touched.has(key)) this.pending.delete(key);
    const changed = [...touched.values()];
    const anomaliesChanged = this.refold(changed, now);
    return { accepted, changed, anomaliesChanged, rejected };
  }

  /** Reads stored tasks into the pending set (their events and record), one statement for all. */
  private load(keys: [string, string][], now: number, seq: number): void {
    const rows = this.sql<{
      part: number;
      trace_id: string;
      task_id: string;
      events: string;
      record: string;
      counted: number;
      due_at: number | null;
    }>`
      SELECT part, trace_id, task_id, events, record, counted, due_at FROM tasks
      WHERE (trace_id, task_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(${JSON.stringify(keys)}))`.toArray();
    for (const row of rows) {
      const events = JSON.parse(row.events) as TaskEvent[];
      // Every loaded task is re-folded before its record is read: no need to parse the stored one.
      const record = foldTask(row.task_id, []);
      this.partOfTrace.set(row.trace_id, row.part);
      this.pending.set(keyOf(row.trace_id, row.task_id), {
        part: row.part,
        trace_id: row.trace_id,
        task_id: row.task_id,
        events,
        ids: new Set(events.map((e) => e.id)),
        stored: row.record,
        counted: row.counted === 1,
        record,
        watch: null,
        since: now,
        firstSeq: seq,
        storedDue: row.due_at,
        bytes: jsonBytes(row.events),
      });
    }
  }

  /** Re-folds tasks from all of their events; anomalies and watches follow the new states. */
  private refold(tasks: PendingTask[], now: number): boolean {
    const byTrace = new Map<string, PendingTask[]>();
    for (const task of tasks) {
      task.record = foldTask(task.task_id, task.events, this.outagesOf(task.trace_id));
      this.pendingTraces.add(task.trace_id);
      const list = byTrace.get(task.trace_id);
      if (list) list.push(task);
      else byTrace.set(task.trace_id, [task]);
    }
    let anomaliesChanged = false;
    for (const [traceId, list] of byTrace) {
      const { changed, watches } = this.anomalies.onRecords(
        traceId,
        list.map((t) => t.record),
        now,
      );
      list.forEach((t, i) => (t.watch = watches[i] ?? null));
      anomaliesChanged ||= changed;
    }
    return anomaliesChanged;
  }

  /**
   * After tasks changed: live viewers of their traces get one delta each (their traces are flushed
   * first, so the summary they see is current), and the next flush is scheduled.
   */
  private async afterChange(changed: PendingTask[], now: number, anomaliesChanged: boolean): Promise<void> {
    const watched = [...new Set(changed.map((t) => t.trace_id))].filter(
      (id) => this.ctx.getWebSockets(id).length > 0,
    );
    if (watched.length) {
      const byTrace = new Map(watched.map((id) => [id, changed.filter((t) => t.trace_id === id)]));
      const structure = new Map(
        [...byTrace].map(([id, tasks]) => [
          id,
          tasks.some((t) => {
            const previous = t.stored === null ? null : (JSON.parse(t.stored) as TaskRecord);
            const record = t.record;
            return (
              !previous ||
              previous.chain.length !== record.chain.length ||
              previous.group_id !== record.group_id ||
              previous.parent_id !== record.parent_id ||
              previous.chord_callback_id !== record.chord_callback_id
            );
          }),
        ]),
      );
      this.materialize(now);
      for (const [traceId, tasks] of byTrace)
        this.broadcastDelta(
          traceId,
          tasks.map((t) => t.record),
          structure.get(traceId) ?? false,
        );
    }
    const full = this.pending.size >= MAX_PENDING_TASKS || this.logSeq - this.checkpointSeq >= LOG_SLOTS / 2;
    // An anomaly that opened or resolved is reported at once (rare, and what the dashboard is for).
    if (full || anomaliesChanged || this.flushIntervalS === 0) await this.flush();
    else {
      if (this.pending.size > 0 || this.unreportedTraces.size > 0) this.flushAt ??= now + this.flushIntervalS;
      await this.rearmAlarm();
    }
  }

  /** Worker outages recorded in a trace (cold shutdowns, heartbeat losses, restarts). */
  private outagesOf(traceId: string): Outage[] {
    this.outageTraces ??= new Set(
      this.sql<{ trace_id: string }>`SELECT DISTINCT trace_id FROM outages`.toArray().map((r) => r.trace_id),
    );
    if (!this.outageTraces.has(traceId)) return [];
    let list = this.outagesCache.get(traceId);
    if (!list) {
      list = this.sql<{
        host: string;
        kind: string;
        ts: number;
      }>`SELECT host, kind, ts FROM outages WHERE trace_id = ${traceId}`
        .toArray()
        .map((o) => ({ host: o.host, kind: o.kind as Outage["kind"], ts: o.ts }));
      this.outagesCache.set(traceId, list);
    }
    return list;
  }

  /**
   * The Fleet's news of a worker that has tasks in these traces: a cold shutdown, heartbeat loss or
   * restart ends its running tasks (INTERRUPTED / LOST); `back` (heartbeats resumed, same process)
   * takes a loss back.
   */
  async workerChanged(change: WorkerChange, traceIds: string[] | null = null): Promise<{ affected: number }> {
    if (!this.schemaReady()) return { affected: 0 }; // never written: no tasks at all
    const now = Date.now() / 1000;
    this.materialize(now);
    // Running tasks on that worker: through the partial index `tasks_running` (a task that is
    // finished when its row is written never enters it).
    const rows = this.sql<{ trace_id: string; task_id: string }>`
      SELECT trace_id, task_id FROM tasks WHERE worker = ${change.host} AND state IN ('STARTED', 'INTERRUPTED', 'LOST')
        AND (${traceIds === null ? 1 : 0} = 1 OR trace_id IN (SELECT value FROM json_each(${JSON.stringify(traceIds ?? [])})))`.toArray();
    const known = [...new Set(rows.map((r) => r.trace_id))];
    const scope = JSON.stringify(traceIds ?? []);
    if (change.kind === "back")
      this.sql`DELETE FROM outages WHERE host = ${change.host} AND kind = 'lost'
               AND (${traceIds === null ? 1 : 0} = 1 OR trace_id IN (SELECT value FROM json_each(${scope})))`;
    else
      this.sql`INSERT OR IGNORE INTO outages (trace_id, host, kind, ts)
               SELECT value, ${change.host}, ${change.kind}, ${change.ts} FROM json_each(${JSON.stringify(known)})`;
    this.outageTraces = undefined;
    this.outagesCache.clear();
    if (rows.length === 0) return { affected: 0 };
    // No log entry stands for these changes (outages are stored, events unchanged): written at once.
    this.load(
      rows.map((r) => [r.trace_id, r.task_id]),
      now,
      Number.MAX_SAFE_INTEGER,
    );
    const tasks = rows.map((r) => this.pending.get(keyOf(r.trace_id, r.task_id))!);
    const anomaliesChanged = this.refold(tasks, now);
    this.materialize(now);
    await this.afterChange(tasks, now, anomaliesChanged);
    return { affected: rows.length };
  }

  /**
   * Writes every pending task's row (one statement), marks the log flushed and notes the traces
   * for retention. Synchronous: no other call can interleave, and the writes commit together.
   */
  private materialize(now: number, hold = false): void {
    if (this.pending.size === 0) return;
    const ready: PendingTask[] = [];
    let keepFrom = Number.MAX_SAFE_INTEGER;
    for (const t of this.pending.values())
      if (hold && this.mayHold(t, now)) keepFrom = Math.min(keepFrom, t.firstSeq);
      else ready.push(t);
    if (ready.length === 0) return;
    // A trace's rows all live in the partition of the day it was first written.
    this.locate([...new Set(ready.filter((t) => t.part === null).map((t) => t.trace_id))]);
    const today = Math.floor(now / DAY_S);
    const byPart = new Map<number, unknown[]>();
    const traces = new Set<string>();
    for (const t of ready) {
      // When the trace began, kept on insert only: the list's order, which must never change (it
      // is the index's key). The tasks of a new trace take their own time (published, else
      // received or started; never later than now); tasks written later take now, which is never
      // earlier than what the trace already has, so the trace's earliest stays its earliest.
      let firstSeen = now;
      if (t.part === null) {
        const known = this.partOfTrace.get(t.trace_id);
        if (known === undefined) {
          const at = t.record.published_at ?? t.record.received_at ?? t.record.started_at ?? now;
          firstSeen = Math.min(now, at);
        }
        t.part = known ?? today;
        this.partOfTrace.set(t.trace_id, t.part);
      }
      const rows = byPart.get(t.part) ?? [];
      byPart.set(t.part, rows);
      traces.add(t.trace_id);
      const r = t.record;
      // A finished run is counted once, when its task first reaches a finished state.
      if (r.finished_at !== null && !t.counted) {
        t.counted = true;
        this.unreportedRuns.push({
          name: r.name,
          state: r.state,
          runtime_ms: r.runtime_ms,
          queue_wait_ms: queueWaitMs(r),
          finished_at: r.finished_at,
        });
      }
      rows.push({
        a: t.trace_id,
        b: t.task_id,
        c: r.name,
        d: r.state,
        e: r.parent_id,
        f: r.worker,
        g: r.published_at,
        h: r.started_at,
        i: r.finished_at,
        j: r.runtime_ms,
        k: t.watch?.kind ?? null,
        l: t.watch?.due_at ?? null,
        m: r,
        n: t.events,
        o: t.counted ? 1 : 0,
        p: firstSeen,
      });
      // The tasks a client's message announces (the chain it starts, a chord's callback: the ids
      // its AsyncResult holds) can be looked up before they run, or if they never do. Later steps
      // re-announce parts of the same chain: only the client's (parentless) message is reported.
      if (r.parent_id === null && (r.chain.length > 0 || r.chord_callback_id !== null))
        for (const a of announcedTasks(r))
          if (a.task_id !== t.trace_id && !this.unreportedTasks.has(keyOf(t.trace_id, a.task_id)))
            this.unreportedTasks.set(keyOf(t.trace_id, a.task_id), {
              day: t.part,
              trace_id: t.trace_id,
              task_id: a.task_id,
              name: a.name,
              state: "PENDING",
              worker: null,
              announced: true,
            });
      // A root task needs no lookup row in the index: its trace id is its own id.
      if (t.task_id !== t.trace_id)
        this.unreportedTasks.set(keyOf(t.trace_id, t.task_id), {
          day: t.part,
          trace_id: t.trace_id,
          task_id: t.task_id,
          name: r.name,
          state: r.state,
          worker: r.worker,
        });
    }
    for (const [part, rows] of byPart) {
      this.ensurePartition(part);
      // jsonb: parsed once, not once per ->> (measured 0.45 → 0.2 ms for 20 records in workerd).
      for (const chunk of jsonChunks(rows))
        this.sql`
      INSERT INTO ${ident(`tasks_${part}`)} (trace_id, task_id, name, state, parent_id, worker, published_at, started_at, finished_at, runtime_ms,
                         first_seen, touched_at, counted, watch_kind, due_at, record, events)
      SELECT value ->> 'a', value ->> 'b', value ->> 'c', value ->> 'd', value ->> 'e', value ->> 'f', value ->> 'g', value ->> 'h',
             value ->> 'i', value ->> 'j', value ->> 'p', ${now}, value ->> 'o', value ->> 'k', value ->> 'l', json(value -> 'm'), json(value -> 'n')
      FROM jsonb_each(jsonb(${chunk})) WHERE true
      ON CONFLICT (trace_id, task_id) DO UPDATE SET name = excluded.name, state = excluded.state, parent_id = excluded.parent_id,
        worker = excluded.worker, published_at = excluded.published_at, started_at = excluded.started_at,
        finished_at = excluded.finished_at, runtime_ms = excluded.runtime_ms, touched_at = excluded.touched_at, counted = excluded.counted,
        watch_kind = excluded.watch_kind, due_at = excluded.due_at, record = excluded.record, events = excluded.events`;
    }
    // Written: out of memory only now (a failed statement above leaves them pending, and in the log).
    for (const t of ready) this.pending.delete(keyOf(t.trace_id, t.task_id));
    // The log is still needed from the first entry a held task depends on.
    this.materializedSeq = Math.max(this.materializedSeq, Math.min(this.logSeq, keepFrom - 1));
    for (const id of traces) this.unreportedTraces.add(id);
    this.pendingTraces = new Set([...this.pending.values()].map((t) => t.trace_id));
  }

  /**
   * Whether a task may stay in memory past this flush: it is not finished, became pending less
   * than HOLD_UNFINISHED_S ago, has no check due before the next flush, and the log has room.
   */
  private mayHold(t: PendingTask, now: number): boolean {
    return (
      !isTerminal(t.record.state) &&
      now - t.since < HOLD_UNFINISHED_S &&
      (t.watch === null || t.watch.due_at > now + this.flushIntervalS + 0.5) &&
      (t.storedDue === null || t.storedDue > now + this.flushIntervalS + 0.5) &&
      this.logSeq - t.firstSeq < LOG_SLOTS / 2
    );
  }

  /** Moves the log's replay mark past what is written: one row, every CHECKPOINT_S (or sooner when the log fills). */
  private checkpoint(now: number, force = false): void {
    if (this.materializedSeq <= this.checkpointSeq) return;
    if (
      !force &&
      now - this.checkpointedAt < CHECKPOINT_S &&
      this.logSeq - this.checkpointSeq < LOG_SLOTS / 4
    )
      return;
    this.checkpointSeq = this.materializedSeq;
    this.sql`INSERT INTO meta (key, value) VALUES ('flushed_seq', ${String(this.checkpointSeq)})
             ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    this.checkpointedAt = now;
  }

  /** When the next checkpoint is due, if anything waits for one. */
  private checkpointDue(): number | null {
    return this.materializedSeq > this.checkpointSeq ? this.checkpointedAt + CHECKPOINT_S : null;
  }

  /**
   * One page of an index rebuild (`POST /api/index/rebuild`): the traces of this object after
   * `after` (by id), at most `limit`, go to the index again as an ordinary report — summaries, the
   * lookup rows of their tasks (announced and never-run ones too, from the graph, for traces up to
   * REINDEX_GRAPH_TASKS tasks) and their anomalies. For an index that lost what it had, or a new
   * backend (switching to Upstash). Run statistics are not sent: an index that has them would count
   * those runs twice; a new one fills them as tasks finish.
   */
  async reindexPage(
    after: string,
    limit: number,
  ): Promise<{ traces: number; tasks: number; next: string | null; indexPending: boolean }> {
    if (!this.schemaReady()) return { traces: 0, tasks: 0, next: null, indexPending: false }; // never written
    const now = Date.now() / 1000;
    this.materialize(now, true); // what is still in memory is part of the traces too
    const ids = this.sql<{ trace_id: string }>`
      SELECT DISTINCT trace_id FROM tasks WHERE trace_id > ${after} ORDER BY trace_id LIMIT ${limit}`
      .toArray()
      .map((r) => r.trace_id);
    if (ids.length === 0) return { traces: 0, tasks: 0, next: null, indexPending: false };
    const idsJson = JSON.stringify(ids);
    let tasks = 0;
    const add = (t: IndexReport["tasks"][number]) => {
      const key = keyOf(t.trace_id, t.task_id);
      if (this.unreportedTasks.has(key)) return;
      this.unreportedTasks.set(key, t);
      tasks++;
    };
    for (const t of this.sql<{
      part: number;
      trace_id: string;
      task_id: string;
      name: string | null;
      state: string;
      worker: string | null;
    }>`SELECT part, trace_id, task_id, name, state, worker FROM tasks
       WHERE trace_id IN (SELECT value FROM json_each(${idsJson})) AND task_id <> trace_id`)
      add({
        day: t.part,
        trace_id: t.trace_id,
        task_id: t.task_id,
        name: t.name,
        state: t.state,
        worker: t.worker,
      });
    this.locate(ids);
    for (const traceId of ids) {
      const part = this.partOfTrace.get(traceId);
      const { records, total } = this.records(traceId, REINDEX_GRAPH_TASKS);
      if (part === undefined || total > REINDEX_GRAPH_TASKS) continue;
      for (const n of buildGraph(records).nodes)
        if (n.placeholder && n.id !== traceId)
          add({
            day: part,
            trace_id: traceId,
            task_id: n.id,
            name: n.name,
            state: n.state,
            worker: n.worker,
            ...(n.state === "NOT_RUN" ? {} : { announced: true }),
          });
    }
    this.sql`UPDATE anomalies SET reported = 0 WHERE trace_id IN (SELECT value FROM json_each(${idsJson}))`;
    for (const id of ids) this.unreportedTraces.add(id);
    // Large traces are summarized at most every LARGE_TRACE_SUMMARY_S: a rebuild sends them now.
    for (const id of ids) this.largeTraces.delete(id);
    await this.flush();
    return {
      traces: ids.length,
      tasks,
      next: ids.length < limit ? null : ids[ids.length - 1]!,
      // The index did not take it: kept here and retried like any report (reportRetryAt).
      indexPending: this.reportRetryAt !== null,
    };
  }

  /** Writes everything pending, checkpoints, and reports every changed trace to the index in one call. */
  async flush(): Promise<void> {
    if (!this.schemaReady()) return;
    const now = Date.now() / 1000;
    this.materialize(now);
    this.checkpoint(now, true);
    this.flushAt = null;
    await this.reportToIndex(now);
    await this.rearmAlarm();
  }

  /** One report for all traces changed since the last one: summaries, tasks and anomalies. */
  private async reportToIndex(now: number): Promise<void> {
    const anomalies = this.anomalies.unreported();
    if (this.unreportedTraces.size === 0 && anomalies.length === 0) return this.webhooks.send(now);
    // A trace whose anomalies changed is re-summarized too (its anomaly count is in the list).
    for (const a of anomalies) this.unreportedTraces.add(a.trace_id);
    // A summary reads every task of its trace: a very large trace is summarized at most every
    // LARGE_TRACE_SUMMARY_S, or it would cost more each second as it grows.
    const anomalyTraces = new Set(anomalies.map((a) => a.trace_id));
    const deferred = [...this.unreportedTraces].filter((id) => {
      const last = this.largeTraces.get(id);
      return last !== undefined && now - last < LARGE_TRACE_SUMMARY_S && !anomalyTraces.has(id);
    });
    const traceIds = [...this.unreportedTraces].filter((id) => !deferred.includes(id));
    const tasks = [...this.unreportedTasks.values()];
    const runs = this.unreportedRuns;
    const summaries = this.summariesOf(traceIds, now);
    this.otlp?.onSummaries(summaries, now);
    for (const t of summaries)
      if (t.summary.task_count >= LARGE_TRACE_TASKS) this.largeTraces.set(t.summary.trace_id, now);
      else this.largeTraces.delete(t.summary.trace_id);
    const report: IndexReport = { traces: summaries, tasks, runs, anomalies };
    this.unreportedTraces = new Set(deferred);
    this.unreportedTasks.clear();
    this.unreportedRuns = [];
    try {
      await indexBackend(this.env).report(report);
      this.reportRetryAt = null;
      if (indexBackendName(this.env) === "upstash") await this.broadcastReport(report);
      this.webhooks.add(report);
    } catch (err) {
      // Kept for the next flush: the index may be restarting. Newer changes win over these.
      console.warn(
        `trace graph: the index did not take a report of ${traceIds.length} traces; retrying`,
        err,
      );
      for (const id of traceIds) this.unreportedTraces.add(id);
      for (const t of tasks) {
        const key = keyOf(t.trace_id, t.task_id);
        if (!this.unreportedTasks.has(key)) this.unreportedTasks.set(key, t);
      }
      this.unreportedRuns.push(...runs);
      this.anomalies.unsent(anomalies);
      this.reportRetryAt = now + REPORT_RETRY_S;
    }
    await this.webhooks.send(now);
  }

  /** With Upstash, the `/api/live` sockets still live in the index object: it broadcasts, stores nothing. */
  private async broadcastReport(report: IndexReport): Promise<void> {
    if (report.traces.length === 0 && report.anomalies.length === 0) return;
    try {
      await indexObject(this.env).broadcastReport({ traces: report.traces, anomalies: report.anomalies });
    } catch (err) {
      // Live frames are best effort: a viewer that missed one refetches on the sequence gap.
      console.warn("trace graph: the index object did not broadcast a report", err);
    }
  }

  /** Summaries of these traces from SQL (five statements however many traces): cheap on 100,000-task traces. */
  protected summariesOf(traceIds: string[], now: number): IndexReport["traces"] {
    if (traceIds.length === 0) return [];
    const ids = JSON.stringify(traceIds);
    const counts = new Map<string, Map<string, number>>();
    for (const row of this.sql<{ trace_id: string; state: string; n: number }>`
      SELECT trace_id, state, COUNT(*) AS n FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${ids})) GROUP BY trace_id, state`) {
      const m = counts.get(row.trace_id) ?? new Map<string, number>();
      m.set(row.state, row.n);
      counts.set(row.trace_id, m);
    }
    const times = new Map(
      this.sql<{
        trace_id: string;
        started: number | null;
        finished: number | null;
        touched: number;
        first_seen: number;
        part: number;
      }>`
        SELECT trace_id, MIN(COALESCE(published_at, started_at)) AS started, MAX(finished_at) AS finished, MAX(touched_at) AS touched,
               MIN(first_seen) AS first_seen, MIN(part) AS part
        FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${ids})) GROUP BY trace_id`
        .toArray()
        .map((r) => [r.trace_id, r]),
    );
    const roots = new Map(
      this.sql<{ trace_id: string; task_id: string; name: string | null }>`
        SELECT trace_id, task_id, name FROM (
          SELECT trace_id, task_id, name, ROW_NUMBER() OVER (
            PARTITION BY trace_id ORDER BY (task_id = trace_id) DESC, (parent_id IS NULL) DESC, published_at ASC) AS rn
          FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${ids}))) WHERE rn = 1`
        .toArray()
        .map((r) => [r.trace_id, r]),
    );
    // Up to 50 distinct values of a column per trace, sorted (the summary's workers and task names).
    const firstFifty = (rows: Iterable<{ trace_id: string; value: string }>) => {
      const out = new Map<string, string[]>();
      for (const row of rows) {
        const list = out.get(row.trace_id) ?? [];
        if (list.length < 50) list.push(row.value);
        out.set(row.trace_id, list);
      }
      return out;
    };
    const workers = firstFifty(this.sql<{ trace_id: string; value: string }>`
      SELECT DISTINCT trace_id, worker AS value FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${ids})) AND worker IS NOT NULL ORDER BY trace_id, worker`);
    const names = firstFifty(this.sql<{ trace_id: string; value: string }>`
      SELECT DISTINCT trace_id, name AS value FROM tasks WHERE trace_id IN (SELECT value FROM json_each(${ids})) AND name IS NOT NULL ORDER BY trace_id, name`);
    // Steps that will never run have no rows of their own: the last graph check counted them.
    const notRun = new Map(
      this.sql<{ trace_id: string; not_run: number }>`
        SELECT trace_id, not_run FROM trace_marks WHERE trace_id IN (SELECT value FROM json_each(${ids})) AND not_run > 0`
        .toArray()
        .map((r) => [r.trace_id, r.not_run]),
    );
    const summaries: IndexReport["traces"] = [];
    for (const traceId of traceIds) {
      const byState = counts.get(traceId);
      if (!byState) continue; // deleted by retention meanwhile
      const total = [...byState.values()].reduce((a, b) => a + b, 0);
      // The same rule as the snapshot's (shared/states.ts), over the same counts: the tasks sent,
      // and the announced ones that will never run (their last graph check counted them).
      const stateCounts: StateCounts = Object.fromEntries(byState) as StateCounts;
      const failures = failureCount(stateCounts);
      const state = summarize({
        ...stateCounts,
        NOT_RUN: (stateCounts.NOT_RUN ?? 0) + (notRun.get(traceId) ?? 0),
      });
      const t = times.get(traceId);
      const started = t?.started ?? null;
      const finishedAt = isTerminal(state) ? (t?.finished ?? null) : null;
      const root = roots.get(traceId);
      summaries.push({
        sort_at: t?.first_seen ?? now,
        day: t?.part ?? Math.floor(now / DAY_S),
        summary: {
          trace_id: traceId,
          state,
          root_task_id: root?.task_id ?? null,
          root_name: root?.name ?? null,
          task_count: total,
          failure_count: failures,
          started_at: started,
          updated_at: t?.touched ?? now,
          finished_at: finishedAt,
          duration_ms:
            started !== null && finishedAt !== null ? Math.round((finishedAt - started) * 1000) : null,
          workers: workers.get(traceId) ?? [],
          task_names: names.get(traceId) ?? [],
          anomaly_count: this.anomalies.openCount(traceId),
          not_run_count: notRun.get(traceId) ?? 0,
        },
      });
    }
    return summaries;
  }

  // ---- read path (every read flushes what is pending first, so it sees every accepted event) ----

  /** Writes the pending tasks of one trace's shard before a read of it. */
  private readyFor(traceId: string): void {
    if (this.pendingTraces.has(traceId)) this.materialize(Date.now() / 1000);
  }

  /**
   * A trace's task records in publish order (`published_at IS NULL, published_at, task_id`), at
   * most `limit`. SQLite's sorter copies every whole record (10,000 tasks: ~10 MB, 40–90 ms), so
   * when all rows are wanted they are read unsorted and ordered here by the same keys.
   */
  private records(
    traceId: string,
    limit = Number.MAX_SAFE_INTEGER,
  ): { records: TaskRecord[]; total: number; touched: number } {
    const stats = this.sql<{ n: number; touched: number | null }>`
      SELECT COUNT(*) AS n, MAX(touched_at) AS touched FROM tasks WHERE trace_id = ${traceId}`.one();
    const total = stats.n;
    const touched = stats.touched ?? Date.now() / 1000;
    if (total <= limit) {
      const rows = this.sql<{ published_at: number | null; task_id: string; record: string }>`
        SELECT published_at, task_id, record FROM tasks WHERE trace_id = ${traceId}`.toArray();
      rows.sort(
        (a, b) =>
          (a.published_at === null ? 1 : 0) - (b.published_at === null ? 1 : 0) ||
          (a.published_at ?? 0) - (b.published_at ?? 0) ||
          compareBinary(a.task_id, b.task_id),
      );
      return { records: rows.map((r) => JSON.parse(r.record) as TaskRecord), total, touched };
    }
    const records = this.sql<{ record: string }>`
      SELECT record FROM tasks WHERE trace_id = ${traceId} ORDER BY published_at IS NULL, published_at, task_id LIMIT ${limit}`
      .toArray()
      .map((r) => JSON.parse(r.record) as TaskRecord);
    return { records, total, touched };
  }

  /** A trace's whole graph, or null when this object has never received an event of it. */
  async snapshot(traceId: string): Promise<TraceSnapshot | null> {
    if (!this.schemaReady()) return null; // never written: knows no trace (and a read creates nothing)
    this.readyFor(traceId);
    // A snapshot is one RPC result and one HTTP body: very large traces are cut to the earliest tasks.
    const { records, total, touched } = this.records(traceId, MAX_SNAPSHOT_TASKS);
    if (total === 0) return null;
    const view = buildGraph(records);
    this.anomalies.decorate(traceId, view.nodes);
    return {
      ...(total > MAX_SNAPSHOT_TASKS ? { truncated: { shown: MAX_SNAPSHOT_TASKS, total } } : {}),
      trace_id: traceId,
      seq: this.liveSeq(traceId),
      summary: summarizeGraph(traceId, view, touched, this.anomalies.openCount(traceId)),
      ...view,
    };
  }

  /**
   * The snapshot as the JSON the API answers with: one string crosses the RPC boundary instead of
   * a structured clone of ~10 MB of objects that the Worker would then serialize again.
   */
  async snapshotJson(traceId: string): Promise<string | null> {
    const snapshot = await this.snapshot(traceId);
    return snapshot && JSON.stringify(snapshot);
  }

  /**
   * The trace as it was at `at` (epoch seconds, compared with each event's own ts: shared/replay.ts),
   * as the JSON of a ReplaySnapshot; null when this object holds no event of the trace. A moment
   * before the first event is a valid, empty graph. Reads every event of the trace: only `?at=` pays it.
   */
  async snapshotAtJson(traceId: string, at: number): Promise<string | null> {
    if (!this.schemaReady()) return null;
    this.readyFor(traceId);
    const read = readTraceAt(this.sql, traceId, at, MAX_SNAPSHOT_TASKS);
    if (!read) return null;
    const view = buildGraph(read.records);
    const snapshot: ReplaySnapshot = {
      ...(read.total > MAX_SNAPSHOT_TASKS
        ? { truncated: { shown: MAX_SNAPSHOT_TASKS, total: read.total } }
        : {}),
      trace_id: traceId,
      seq: this.liveSeq(traceId),
      summary: summarizeGraph(traceId, view, read.info.current_at ?? at),
      ...view,
      replay: read.info,
    };
    return JSON.stringify(snapshot);
  }

  /**
   * A trace's stored task events (every task, in publish order, each task's events as stored) and
   * its snapshot, read together so they agree, for `GET /api/traces/:id/export`. Both are JSON text
   * (an array and an object) so nothing is parsed or cloned again. Null for an unknown trace;
   * `too_large` when the events' JSON is over `maxChars`, checked before any event is read.
   */
  async exportTrace(
    traceId: string,
    maxChars: number,
  ): Promise<{ events: string; graph: string } | { too_large: number } | null> {
    if (!this.schemaReady()) return null;
    this.readyFor(traceId);
    const size = this.sql<{ n: number; chars: number | null }>`
      SELECT COUNT(*) AS n, SUM(LENGTH(events)) AS chars FROM tasks WHERE trace_id = ${traceId}`.one();
    if (size.n === 0) return null;
    if ((size.chars ?? 0) > maxChars) return { too_large: size.chars ?? 0 };
    const rows = this.sql<{ published_at: number | null; task_id: string; events: string }>`
      SELECT published_at, task_id, events FROM tasks WHERE trace_id = ${traceId}`.toArray();
    // Sorted here by the snapshot's keys (SQLite's sorter would copy every events column).
    rows.sort(
      (a, b) =>
        (a.published_at === null ? 1 : 0) - (b.published_at === null ? 1 : 0) ||
        (a.published_at ?? 0) - (b.published_at ?? 0) ||
        compareBinary(a.task_id, b.task_id),
    );
    // Each column is a JSON array: their contents joined make the trace's array, unparsed.
    const parts = rows.map((r) => r.events.trim().slice(1, -1).trim()).filter((p) => p.length > 0);
    const graph = await this.snapshotJson(traceId);
    if (graph === null) return null;
    return { events: `[${parts.join(",")}]`, graph };
  }

  /** A trace's anomalies, open and resolved, newest first. */
  async anomalyList(traceId: string): Promise<Anomaly[]> {
    if (!this.schemaReady()) return [];
    return this.anomalies.list(traceId);
  }

  /**
   * This shard's tasks for the task list (`GET /api/tasks`), largest sort key first, after the
   * cursor: the Worker merges every shard's page. A scan of the shard's task rows (no index: the
   * list is a page someone opens, and an index would cost a row written per task on ingest).
   */
  async listTasks(query: TaskListQuery): Promise<(TaskRow & { sort_key: number })[]> {
    if (!this.schemaReady()) return [];
    this.materialize(Date.now() / 1000);
    const rows = this.sql<{
      trace_id: string;
      task_id: string;
      record: string;
      k: number;
    }>`
      SELECT trace_id, task_id, record, k FROM (
        SELECT trace_id, task_id, record, state, name, worker, published_at, started_at,
          CASE ${query.sort}
            WHEN 'started' THEN started_at
            WHEN 'runtime' THEN runtime_ms
            WHEN 'queue_wait' THEN MAX(0, started_at - COALESCE(published_at, started_at))
            ELSE COALESCE(published_at, started_at, finished_at)
          END AS k
        FROM tasks)
      WHERE k IS NOT NULL
        AND (${query.state ?? null} IS NULL OR state = ${query.state ?? null})
        AND (${query.name ?? null} IS NULL OR name LIKE ${"%" + (query.name ?? "") + "%"})
        AND (${query.worker ?? null} IS NULL OR worker = ${query.worker ?? null})
        AND (${query.queue ?? null} IS NULL OR json_extract(record, '$.queue') = ${query.queue ?? null})
        AND (${query.from ?? null} IS NULL OR COALESCE(published_at, started_at) >= ${query.from ?? null})
        AND (${query.to ?? null} IS NULL OR COALESCE(published_at, started_at) <= ${query.to ?? null})
        AND (${query.after?.[0] ?? null} IS NULL OR (k, task_id) < (${query.after?.[0] ?? null}, ${query.after?.[1] ?? null}))
      ORDER BY k DESC, task_id DESC LIMIT ${query.limit}`.toArray();
    return rows.map((row) => {
      const r = JSON.parse(row.record) as TaskRecord;
      return {
        task_id: row.task_id,
        trace_id: row.trace_id,
        name: r.name,
        state: r.state,
        worker: r.worker,
        queue: r.queue,
        published_at: r.published_at,
        received_at: r.received_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        runtime_ms: r.runtime_ms,
        queue_wait_ms: queueWaitMs(r),
        retries: r.retries,
        sort_key: row.k,
      };
    });
  }

  /** Whether this object holds any task of the trace (accepted, flushed or not). Writes nothing. */
  async hasTrace(traceId: string): Promise<boolean> {
    if (!this.schemaReady()) return false;
    if (this.pendingTraces.has(traceId)) return true;
    return this.sql`SELECT 1 FROM tasks WHERE trace_id = ${traceId} LIMIT 1`.toArray().length > 0;
  }

  /** A trace's anomalies, or null when this object does not hold the trace (one call for both). */
  async anomaliesOf(traceId: string): Promise<Anomaly[] | null> {
    if (!(await this.hasTrace(traceId))) return null;
    return this.anomalies.list(traceId);
  }

  /** A task's detail: attempts, timeline, payload, parent and children; null if unknown here. */
  async task(traceId: string, taskId: string): Promise<TaskDetail | null> {
    if (!this.schemaReady()) return null;
    this.readyFor(traceId);
    const row = this.sql<{
      events: string;
    }>`SELECT events FROM tasks WHERE trace_id = ${traceId} AND task_id = ${taskId}`.toArray()[0];
    const events = row ? (JSON.parse(row.events) as TaskEvent[]).sort(compareTaskEvents) : [];
    const { records } = this.records(traceId);
    if (records.length === 0) return null;
    const view = buildGraph(records);
    this.anomalies.decorate(traceId, view.nodes);
    const node = view.nodes.find((n) => n.id === taskId);
    if (!node) return null;
    const nodesById = new Map(view.nodes.map((n) => [n.id, n]));
    const link = (id: string, kind: TaskLink["kind"]): TaskLink => {
      const n = nodesById.get(id);
      return { task_id: id, name: n?.name ?? null, state: n?.state ?? "PENDING", kind };
    };
    const parentEdge = view.edges.find((e) => e.target === taskId && nodesById.has(e.source));
    const chord = view.containers.find((c) => c.callback_id === taskId);
    const payload = foldPayload(events);
    return {
      trace_id: traceId,
      task: node,
      // The last attempt ends as the node does when a worker outage ended it (no event says so).
      attempts: foldAttempts(events).map(({ name: _name, ...attempt }, i, all) =>
        i === all.length - 1 &&
        attempt.state === "STARTED" &&
        (node.state === "INTERRUPTED" || node.state === "LOST")
          ? { ...attempt, state: node.state, finished_at: node.finished_at }
          : attempt,
      ),
      ...payload,
      parent: chord
        ? {
            task_id: chord.id,
            name: chord.size === null ? "chord" : `chord of ${chord.size} task${chord.size === 1 ? "" : "s"}`,
            state: chord.state,
            kind: "chord",
            container: { kind: chord.kind, size: chord.size },
          }
        : parentEdge
          ? link(parentEdge.source, parentEdge.kind)
          : node.parent_id
            ? link(node.parent_id, null)
            : null,
      children: view.edges.filter((e) => e.source === taskId).map((e) => link(e.target, e.kind)),
      events: events.map((e) => ({
        type: e.type,
        ts: e.ts,
        host: e.host,
        pid: e.pid ?? null,
        retries: e.retries ?? null,
      })),
      names: [...new Set(events.map((e) => e.name).filter((n): n is string => !!n))],
    };
  }

  /**
   * A task's detail as it was at `at` (durable-objects/task-replay.ts): `NotYet` when it had no
   * event by then, null if unknown here.
   */
  async taskAt(traceId: string, taskId: string, at: number): Promise<TaskDetail | NotYet | null> {
    if (!this.schemaReady()) return null;
    this.readyFor(traceId);
    const { records } = this.records(traceId);
    if (records.length === 0) return null;
    return readTaskAt(this.sql, buildGraph(records), traceId, taskId, at);
  }

  // ---- the alarm ----

  /** One alarm: the earliest of the next flush, a watch, a graph check, a retention sweep. */
  protected async rearmAlarm(): Promise<void> {
    // Per partition: each MIN is one step down its partial index (through the view it is a scan).
    const watches = this.parts.map(
      (day) =>
        this.sql<{
          due: number | null;
        }>`SELECT MIN(due_at) AS due FROM ${ident(`tasks_${day}`)} WHERE due_at IS NOT NULL`.one().due,
    );
    await this.alarm_.atOrBefore([
      this.deadlines.earliest(),
      ...watches,
      this.flushAt,
      this.reportRetryAt,
      this.webhooks.retryAt,
      this.checkpointDue(),
      this.otlp?.nextDue(),
    ]);
  }

  /** Runs every due deadline; idempotent, re-arms from the tables. */
  async alarm(): Promise<void> {
    if (!this.schemaReady()) return; // no alarm is set before the first write
    this.alarm_.fired(); // re-armed from the tables at the end
    const now = Date.now() / 1000;
    this.materialize(now, true);
    this.checkpoint(now);
    this.flushAt = this.pending.size > 0 || this.unreportedTraces.size > 0 ? now + this.flushIntervalS : null;
    for (const d of this.deadlines.due(now)) {
      if (d.kind === "drop") await this.dropPartition(d.day);
      else {
        const traceId = d.traceId;
        this.deadlines.done(d);
        const notRun = this.anomalies.checkGraph(traceId, buildGraph(this.records(traceId).records), now);
        // Tasks that will never run are tasks a user holds ids of (AsyncResult.id of a chord is its
        // callback's): the index learns them so `/api/tasks/<id>` and search find them.
        this.locate([traceId]);
        const part = this.partOfTrace.get(traceId);
        if (part !== undefined)
          for (const n of notRun)
            if (n.id !== traceId)
              this.unreportedTasks.set(keyOf(traceId, n.id), {
                day: part,
                trace_id: traceId,
                task_id: n.id,
                name: n.name,
                state: n.state,
                worker: n.worker,
              });
        this.unreportedTraces.add(traceId); // its summary counts them
      }
    }
    // Watches (stuck pending / received / started, registry checks) in one pass: one Fleet and one
    // index call at most, however many are due.
    const watches: TaskWatch[] = [];
    const unreadable: [number, string, string][] = [];
    for (const day of this.parts)
      for (const r of this.sql<{ trace_id: string; task_id: string; record: string; watch_kind: string }>`
        SELECT trace_id, task_id, record, watch_kind FROM ${ident(`tasks_${day}`)} WHERE due_at IS NOT NULL AND due_at <= ${now + 0.001}`.toArray())
        try {
          watches.push({
            trace_id: r.trace_id,
            task_id: r.task_id,
            record: JSON.parse(r.record) as TaskRecord,
            kind: r.watch_kind as Watch["kind"],
          });
        } catch (err) {
          // One unreadable row must not stop every later alarm: logged and skipped.
          console.error(`trace graph: dropping the watch of task ${r.task_id} (unreadable row)`, err);
          unreadable.push([day, r.trace_id, r.task_id]);
        }
    for (const [day, traceId, taskId] of unreadable)
      this
        .sql`UPDATE ${ident(`tasks_${day}`)} SET watch_kind = NULL, due_at = NULL WHERE trace_id = ${traceId} AND task_id = ${taskId}`;
    await this.anomalies.runDueWatches(
      watches,
      (traceId, taskId, watch) => {
        // A task re-folded meanwhile (pending) has its own watch; it is written at the flush.
        if (this.pending.has(keyOf(traceId, taskId))) return;
        const part =
          this.partOfTrace.get(traceId) ??
          this.sql<{ part: number }>`SELECT part FROM tasks WHERE trace_id = ${traceId} LIMIT 1`.toArray()[0]
            ?.part;
        if (part !== undefined)
          this
            .sql`UPDATE ${ident(`tasks_${part}`)} SET watch_kind = ${watch?.kind ?? null}, due_at = ${watch?.due_at ?? null} WHERE trace_id = ${traceId} AND task_id = ${taskId}`;
      },
      now,
    );
    await this.reportToIndex(now);
    await this.otlp?.runDue(now);
    await this.rearmAlarm();
  }

  /**
   * Retention: drops a day's partition (the traces first written that day) RETENTION_DAYS after
   * the day ends. `DROP TABLE` writes no rows; the few rows kept per trace elsewhere (anomalies,
   * outages, live sequence) go with it. The index drops its own day of the list at the same time.
   */
  private async dropPartition(day: number): Promise<void> {
    this.deadlines.done({ kind: "drop", day });
    if (!this.parts.includes(day)) return;
    // Pending changes of these traces would otherwise recreate rows in a dropped table.
    this.materialize(Date.now() / 1000);
    const table = ident(`tasks_${day}`);
    const ids = JSON.stringify(
      this.sql<{ trace_id: string }>`SELECT DISTINCT trace_id FROM ${table}`.toArray().map((r) => r.trace_id),
    );
    this.sql`DELETE FROM anomalies WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
    this.sql`DELETE FROM outages WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
    this.sql`DELETE FROM live_seq WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
    this.sql`DELETE FROM trace_marks WHERE trace_id IN (SELECT value FROM json_each(${ids}))`;
    this.deadlines.forgetTraces(ids);
    this.otlp?.forget(ids);
    this.sql`DROP TABLE ${table}`;
    this.parts = this.parts.filter((d) => d !== day);
    for (const id of JSON.parse(ids) as string[]) {
      this.partOfTrace.delete(id);
      this.unreportedTraces.delete(id);
    }
    this.anomalies.reset();
    this.outageTraces = undefined;
    this.outagesCache.clear();
    // The list drops the same day (idempotent: every shard with traces of that day asks).
    await indexBackend(this.env).forgetDay(day);
    if (this.parts.length === 0 && this.pending.size === 0 && this.ctx.getWebSockets().length === 0) {
      // Nothing left (always the case for a one-trace object): free the storage entirely. The object
      // lives on (a late event may arrive) and starts again from an empty schema.
      await this.ctx.storage.deleteAll();
      this.alarm_.forget();
      this.otlp?.reset();
      migrate(this.ctx.storage.sql, TRACE_GRAPH_MIGRATIONS);
      this.checkpointSeq = this.materializedSeq = this.logSeq = 0;
      this.partOfTrace.clear();
      this.loadPartitions();
    } else if (this.parts.length === 0) this.ensurePartition(Math.floor(Date.now() / 1000 / DAY_S));
    else this.rebuildView();
  }

  // ---- live updates (WebSocket Hibernation API; sockets tagged with their trace id) ----

  /** The trace's live sequence: one more per delta frame sent to its viewers. */
  private liveSeq(traceId: string): number {
    return (
      this.sql<{ seq: number }>`SELECT seq FROM live_seq WHERE trace_id = ${traceId}`.toArray()[0]?.seq ?? 0
    );
  }

  /** Accepts a live socket for `/api/traces/:traceId/live`; the Worker has already authenticated the request. */
  async fetch(request: Request): Promise<Response> {
    const match = /\/api\/traces\/([^/]+)\/live$/.exec(new URL(request.url).pathname);
    if (!match) return new Response("expected /api/traces/:traceId/live", { status: 404 });
    const traceId = decodeURIComponent(match[1]!);
    if (this.schemaReady()) this.readyFor(traceId);
    return acceptLiveSocket(
      this.ctx,
      request,
      {
        type: "hello",
        trace_id: traceId,
        seq: this.hasSchema ? this.liveSeq(traceId) : 0,
      } satisfies TraceLiveMessage,
      [traceId],
    );
  }

  private broadcastDelta(traceId: string, changed: TaskRecord[], structureChanged: boolean): void {
    const seq = this.liveSeq(traceId) + 1;
    this
      .sql`INSERT INTO live_seq (trace_id, seq) VALUES (${traceId}, ${seq}) ON CONFLICT (trace_id) DO UPDATE SET seq = excluded.seq`;
    // A viewer's page must not need a refetch to be right: derived states (a GROUP/CHORD finishing,
    // a step turning NOT_RUN) come from the same buildGraph as the snapshot. Traces too large to
    // rebuild per delta send the changed records only (their page refetches on structure changes).
    const { records, total, touched } = this.records(traceId, MAX_LIVE_GRAPH_TASKS);
    let nodes: GraphNode[];
    let containers: GraphContainer[] | undefined;
    let summary: TraceSummary | undefined;
    if (total <= MAX_LIVE_GRAPH_TASKS && total > 0) {
      const view = buildGraph(records);
      const recorded = new Map(records.map((r) => [r.task_id, r.state]));
      const changedIds = new Set(changed.map((r) => r.task_id));
      nodes = view.nodes.filter(
        (n) => changedIds.has(n.id) || n.placeholder || recorded.get(n.id) !== n.state,
      );
      containers = view.containers;
      this.anomalies.decorate(traceId, view.nodes);
      summary = summarizeGraph(traceId, view, touched, this.anomalies.openCount(traceId));
    } else {
      nodes = changed.map(toGraphNode);
      this.anomalies.decorate(traceId, nodes);
      summary = this.summariesOf([traceId], Date.now() / 1000)[0]?.summary;
    }
    if (!summary) return;
    const message = {
      type: "delta",
      trace_id: traceId,
      seq,
      nodes,
      ...(containers ? { containers } : {}),
      structure_changed: structureChanged,
      summary,
    } satisfies TraceLiveMessage;
    broadcastFrame(this.ctx, message, traceId);
  }

  /** Clients send nothing but "ping", which the runtime answers (answerPings). */
  async webSocketMessage(): Promise<void> {}

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    reciprocateClose(ws, code, reason);
  }
}
