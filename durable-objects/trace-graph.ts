import { DurableObject } from "cloudflare:workers";
import type { Anomaly, TaskDetail, TaskLink, TraceLiveMessage, TraceSnapshot, TraceSummary } from "../shared/api";
import { anomalyConfigFrom, type Outage } from "../shared/anomalies";
import { buildGraph, summarizeGraph, toGraphNode } from "../shared/graph";
import { foldAttempts, foldPayload, foldTask, compareTaskEvents, isTerminal, type TaskRecord } from "../shared/task-fold";
import type { TaskEvent } from "../shared/wire";
import { FLEET_NAME, INDEX_NAME, numberVar, type Env } from "./env";
import { AnomalyWatch, type WorkerChange } from "./anomaly-watch";
import { acceptLiveSocket, answerPing, broadcastFrame, reciprocateClose } from "./live-sockets";
import { migrate, sqlFor, type Sql, type StorageMeter } from "./sql";

/** What a TraceGraph reports to the index: its summary and the tasks that changed since last time. */
export interface TraceReport {
  summary: TraceSummary;
  tasks: { task_id: string; name: string | null; state: string; runtime_ms: number | null; finished_at: number | null; worker: string | null }[];
  /** Anomalies opened or resolved since the last report. */
  anomalies: Anomaly[];
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
}

const SUMMARY_INTERVAL_S = 1;
/** Largest snapshot: about 10 MB of JSON, well under the RPC and response limits. */
export const MAX_SNAPSHOT_TASKS = 20_000;

const MIGRATIONS = [
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
  // Anomaly detection: anomalies (open and resolved), worker outages, watch deadlines by time.
  `CREATE TABLE anomalies (
     id TEXT PRIMARY KEY, kind TEXT NOT NULL, task_id TEXT NOT NULL, task_name TEXT, since REAL NOT NULL,
     detected_at REAL NOT NULL, resolved_at REAL, explanation TEXT NOT NULL, fix TEXT NOT NULL,
     reported INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX anomalies_open ON anomalies (task_id) WHERE resolved_at IS NULL;
   CREATE INDEX anomalies_unreported ON anomalies (reported) WHERE reported = 0;
   CREATE TABLE outages (host TEXT NOT NULL, kind TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (host, kind, ts));
   CREATE INDEX tasks_by_worker ON tasks (worker, state);
   CREATE INDEX deadlines_by_due ON deadlines (due_at);`,
];

/**
 * One Celery workflow (trace): its events, task records and attempts in SQLite.
 * Invariants: events are applied idempotently (dedupe by event id) and order-independently (each
 * touched task is re-folded from all of its events); one alarm, derived from `deadlines`.
 */
export class TraceGraph extends DurableObject<Env> {
  protected sql: Sql;
  /** Write-through caches of hot meta values (a Durable Object is single-threaded). */
  private metaCache = new Map<string, string | null>();
  private alarmAt: number | null | undefined;
  private retentionSetAt = 0;
  private summaryScheduled = false;
  private outagesCache: Outage[] | undefined;
  protected readonly anomalies: AnomalyWatch;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = sqlFor(ctx.storage.sql);
    this.anomalies = new AnomalyWatch(this.sql, anomalyConfigFrom(env as unknown as Record<string, string | undefined>), {
      fleet: () => this.env.FLEET.getByName(FLEET_NAME),
      index: () => this.env.INDEX.getByName(INDEX_NAME),
    });
    ctx.blockConcurrencyWhile(async () => migrate(ctx.storage.sql, MIGRATIONS));
  }

  /** Rows written and read by this object's statements (and alarm writes) since it started: the bill's unit. */
  async storageStats(): Promise<StorageMeter> {
    return this.sql.meter();
  }

  private meta(key: string): string | null {
    if (this.metaCache.has(key)) return this.metaCache.get(key) ?? null;
    const value = this.sql<{ value: string }>`SELECT value FROM meta WHERE key = ${key}`.toArray()[0]?.value ?? null;
    this.metaCache.set(key, value);
    return value;
  }

  private setMeta(key: string, value: string | number): void {
    this.metaCache.set(key, String(value));
    this.sql`INSERT INTO meta (key, value) VALUES (${key}, ${String(value)})
             ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
  }

  private get traceId(): string {
    return this.meta("trace_id") ?? "";
  }

  private get seq(): number {
    return Number(this.meta("seq") ?? 0);
  }

  /**
   * Applies a batch of task events of this trace. Duplicates (same event id) are counted, not applied.
   * Sends one delta frame to live sockets and reports to the index at most about once a second.
   */
  async ingest(traceId: string, events: TaskEvent[] | string): Promise<IngestResult> {
    // The Worker sends the validated batch as one JSON string: cheaper over RPC than objects, and
    // exactly what SQLite's json_each wants.
    const eventsJson = typeof events === "string" ? events : JSON.stringify(events);
    const firstIngest = this.meta("trace_id") === null;
    if (firstIngest) this.setMeta("trace_id", traceId);
    // One statement for the whole batch; RETURNING yields only the events that were new.
    const inserted = this.sql<{ task_id: string }>`
      INSERT OR IGNORE INTO events (id, task_id, body)
      SELECT value ->> '$.id', value ->> '$.task_id', value FROM json_each(${eventsJson}) WHERE true
      RETURNING task_id`.toArray();
    const total = typeof events === "string" ? this.sql<{ n: number }>`SELECT json_array_length(${eventsJson}) AS n`.one().n : events.length;
    const accepted = inserted.length;
    if (accepted === 0) return { accepted, duplicates: total };
    const touched = [...new Set(inserted.map((r) => r.task_id))];

    // Only live viewers need to know whether the graph's shape changed; skip the extra read otherwise.
    const watched = this.ctx.getWebSockets().length > 0;
    const before = watched ? this.recordsOf(touched) : new Map<string, TaskRecord>();
    const changed = this.refoldTasks(touched);
    const structureChanged =
      watched &&
      changed.some((record) => {
        const previous = before.get(record.task_id);
        return (
          !previous ||
          previous.chain.length !== record.chain.length ||
          previous.group_id !== record.group_id ||
          previous.parent_id !== record.parent_id ||
          previous.chord_callback_id !== record.chord_callback_id
        );
      });
    await this.afterChange(changed, structureChanged, firstIngest);
    return { accepted, duplicates: total - accepted };
  }

  /**
   * After tasks were re-folded: anomalies and watches follow the new states, one delta goes to live
   * sockets, and the index hears of it (at once for new anomalies, else coalesced to ~1/s).
   */
  private async afterChange(changed: TaskRecord[], structureChanged: boolean, reportNow = false): Promise<void> {
    const now = Date.now() / 1000;
    const anomaliesChanged = this.anomalies.onRecords(changed, now);
    const seq = this.seq + 1;
    this.setMeta("seq", seq);
    this.broadcastDelta(seq, changed, structureChanged);
    if (reportNow || anomaliesChanged || this.summaryDue()) await this.reportToIndex();
    else if (!this.summaryScheduled) {
      this.scheduleDeadline("summary", "summary", null, Number(this.meta("reported_at") ?? 0) + SUMMARY_INTERVAL_S);
      this.summaryScheduled = true;
    }
    this.ensureRetention();
    await this.rearmAlarm();
  }

  /** Worker outages recorded in this trace (cold shutdowns, heartbeat losses, restarts). */
  private outages(): Outage[] {
    this.outagesCache ??= this.sql<{ host: string; kind: string; ts: number }>`SELECT host, kind, ts FROM outages`
      .toArray()
      .map((o) => ({ host: o.host, kind: o.kind as Outage["kind"], ts: o.ts }));
    return this.outagesCache;
  }

  /**
   * The Fleet's news of a worker of this trace: a cold shutdown, heartbeat loss or restart ends its
   * running tasks (INTERRUPTED / LOST); `back` (heartbeats resumed, same process) takes a loss back.
   */
  async workerChanged(change: WorkerChange): Promise<{ affected: number }> {
    if (this.meta("trace_id") === null) return { affected: 0 };
    if (change.kind === "back") this.sql`DELETE FROM outages WHERE host = ${change.host} AND kind = 'lost'`;
    else this.sql`INSERT OR IGNORE INTO outages (host, kind, ts) VALUES (${change.host}, ${change.kind}, ${change.ts})`;
    this.outagesCache = undefined;
    const ids = this.sql<{ task_id: string }>`
      SELECT task_id FROM tasks WHERE worker = ${change.host} AND state IN ('STARTED', 'INTERRUPTED', 'LOST')`
      .toArray()
      .map((r) => r.task_id);
    if (ids.length === 0) return { affected: 0 };
    await this.afterChange(this.refoldTasks(ids), false);
    return { affected: ids.length };
  }

  private taskEvents(taskId: string): TaskEvent[] {
    return this.sql<{ body: string }>`SELECT body FROM events WHERE task_id = ${taskId}`
      .toArray()
      .map((row) => JSON.parse(row.body) as TaskEvent);
  }

  private recordsOf(taskIds: string[]): Map<string, TaskRecord> {
    const rows = this.sql<{ task_id: string; record: string }>`
      SELECT task_id, record FROM tasks WHERE task_id IN (SELECT value FROM json_each(${JSON.stringify(taskIds)}))`.toArray();
    return new Map(rows.map((r) => [r.task_id, JSON.parse(r.record) as TaskRecord]));
  }

  /**
   * Re-derives the rows (and attempts) of these tasks from all of their events: one read and one
   * write for the whole set, so a 100-event batch costs a handful of statements.
   */
  protected refoldTasks(taskIds: string[]): TaskRecord[] {
    const eventsByTask = new Map<string, TaskEvent[]>(taskIds.map((id) => [id, []]));
    for (const row of this.sql<{ task_id: string; body: string }>`
      SELECT task_id, body FROM events WHERE task_id IN (SELECT value FROM json_each(${JSON.stringify(taskIds)}))`)
      eventsByTask.get(row.task_id)?.push(JSON.parse(row.body) as TaskEvent);
    const records: TaskRecord[] = [];
    const attempts: unknown[] = [];
    const outages = this.outages();
    for (const [taskId, events] of eventsByTask) {
      const record = foldTask(taskId, events, outages);
      records.push(record);
      if (record.attempt_count > 1 || events.some((e) => e.retries))
        for (const a of foldAttempts(events.sort(compareTaskEvents)))
          attempts.push({ task_id: taskId, retries: a.retries, delivery: a.delivery, state: a.state, worker: a.worker, started_at: a.started_at, finished_at: a.finished_at });
    }
    // reported = 0 puts the task in the next report to the index (the outbox is this column).
    // jsonb: parsed once, not once per ->> (measured 0.45 → 0.2 ms for 20 records in workerd).
    this.sql`
      INSERT INTO tasks (task_id, name, state, parent_id, worker, published_at, started_at, finished_at, runtime_ms, record, reported)
      SELECT value ->> '$.task_id', value ->> '$.name', value ->> '$.state', value ->> '$.parent_id', value ->> '$.worker',
             value ->> '$.published_at', value ->> '$.started_at', value ->> '$.finished_at', value ->> '$.runtime_ms', json(value), 0
      FROM jsonb_each(jsonb(${JSON.stringify(records)})) WHERE true
      ON CONFLICT (task_id) DO UPDATE SET name = excluded.name, state = excluded.state, parent_id = excluded.parent_id,
        worker = excluded.worker, published_at = excluded.published_at, started_at = excluded.started_at,
        finished_at = excluded.finished_at, runtime_ms = excluded.runtime_ms, record = excluded.record, reported = 0`;
    if (attempts.length)
      this.sql`
        INSERT OR REPLACE INTO attempts (task_id, retries, delivery, state, worker, started_at, finished_at)
        SELECT value ->> '$.task_id', value ->> '$.retries', value ->> '$.delivery', value ->> '$.state', value ->> '$.worker',
               value ->> '$.started_at', value ->> '$.finished_at'
        FROM jsonb_each(jsonb(${JSON.stringify(attempts)}))`;
    return records;
  }

  /**
   * The task records in publish order (`published_at IS NULL, published_at, task_id`), at most `limit`.
   * SQLite's sorter copies every whole record (10,000 tasks: ~10 MB, 40–90 ms), so when all rows are
   * wanted they are read unsorted and ordered here by the same keys. (For a cut of a larger trace,
   * sorting only rowids in SQL and then reading the kept records measured no faster: 90 ms either
   * way for 20,000 of 100,000, the scan dominates.)
   */
  private records(limit = Number.MAX_SAFE_INTEGER): TaskRecord[] {
    // SQLite's BINARY order of TEXT (UTF-8 bytes, i.e. code points), not JS's UTF-16 order.
    const compareBinary = (a: string, b: string): number => {
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
    };
    const total = this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM tasks`.one().n;
    if (total <= limit) {
      const rows = this.sql<{ published_at: number | null; task_id: string; record: string }>`
        SELECT published_at, task_id, record FROM tasks`.toArray();
      rows.sort(
        (a, b) =>
          (a.published_at === null ? 1 : 0) - (b.published_at === null ? 1 : 0) ||
          (a.published_at ?? 0) - (b.published_at ?? 0) ||
          compareBinary(a.task_id, b.task_id),
      );
      return rows.map((r) => JSON.parse(r.record) as TaskRecord);
    }
    return this.sql<{ record: string }>`SELECT record FROM tasks ORDER BY published_at IS NULL, published_at, task_id LIMIT ${limit}`
      .toArray()
      .map((r) => JSON.parse(r.record) as TaskRecord);
  }

  /** The whole graph, or null when this trace has never received an event. */
  async snapshot(): Promise<TraceSnapshot | null> {
    const traceId = this.meta("trace_id");
    if (traceId === null) return null;
    // A snapshot is one RPC result and one HTTP body: very large traces are cut to the earliest tasks.
    const total = this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM tasks`.one().n;
    const view = buildGraph(this.records(MAX_SNAPSHOT_TASKS));
    this.decorateNodes(view.nodes);
    return {
      ...(total > MAX_SNAPSHOT_TASKS ? { truncated: { shown: MAX_SNAPSHOT_TASKS, total } } : {}),
      trace_id: traceId,
      seq: this.seq,
      summary: summarizeGraph(traceId, view, Number(this.meta("updated_at") ?? Date.now() / 1000), this.anomalyCount()),
      ...view,
    };
  }

  /**
   * The snapshot as the JSON the API answers with: one string crosses the RPC boundary instead of
   * a structured clone of ~10 MB of objects that the Worker would then serialize again.
   */
  async snapshotJson(): Promise<string | null> {
    const snapshot = await this.snapshot();
    return snapshot && JSON.stringify(snapshot);
  }

  /** Marks nodes that have an open anomaly with its kind. */
  protected decorateNodes(nodes: TraceSnapshot["nodes"]): void {
    this.anomalies.decorate(nodes);
  }

  protected anomalyCount(): number {
    return this.anomalies.openCount();
  }

  /** This trace's anomalies, open and resolved, newest first. */
  async anomalyList(): Promise<Anomaly[]> {
    return this.meta("trace_id") === null ? [] : this.anomalies.list(this.traceId);
  }

  /** A task's detail: attempts, timeline, payload, parent and children; null if unknown here. */
  async task(taskId: string): Promise<TaskDetail | null> {
    const traceId = this.meta("trace_id");
    if (traceId === null) return null;
    const events = this.taskEvents(taskId).sort(compareTaskEvents);
    const view = buildGraph(this.records());
    this.decorateNodes(view.nodes);
    const node = view.nodes.find((n) => n.id === taskId);
    if (!node) return null;
    const nodesById = new Map(view.nodes.map((n) => [n.id, n]));
    const link = (id: string, kind: TaskLink["kind"]): TaskLink => {
      const n = nodesById.get(id);
      return { task_id: id, name: n?.name ?? null, state: n?.state ?? "PENDING", kind };
    };
    const parentEdge = view.edges.find((e) => e.target === taskId && nodesById.has(e.source));
    const payload = foldPayload(events);
    return {
      trace_id: traceId,
      task: node,
      // The last attempt ends as the node does when a worker outage ended it (no event says so).
      attempts: foldAttempts(events).map(({ name: _name, ...attempt }, i, all) =>
        i === all.length - 1 && attempt.state === "STARTED" && (node.state === "INTERRUPTED" || node.state === "LOST")
          ? { ...attempt, state: node.state, finished_at: node.finished_at }
          : attempt,
      ),
      ...payload,
      parent: parentEdge ? link(parentEdge.source, parentEdge.kind) : node.parent_id ? link(node.parent_id, null) : null,
      children: view.edges.filter((e) => e.source === taskId).map((e) => link(e.target, e.kind)),
      events: events.map((e) => ({ type: e.type, ts: e.ts, host: e.host, pid: e.pid ?? null, retries: e.retries ?? null })),
      names: [...new Set(events.map((e) => e.name).filter((n): n is string => !!n))],
    };
  }

  /** The summary pushed to the index: counts from SQL so it stays cheap on 100,000-task traces. */
  protected summaryFromTable(): TraceSummary {
    const traceId = this.traceId;
    const counts = this.sql<{ state: string; n: number }>`SELECT state, COUNT(*) AS n FROM tasks GROUP BY state`.toArray();
    const total = counts.reduce((sum, c) => sum + c.n, 0);
    const countOf = (...states: string[]) => counts.filter((c) => states.includes(c.state)).reduce((s, c) => s + c.n, 0);
    const times = this.sql<{ started: number | null; finished: number | null; unfinished: number }>`
      SELECT MIN(COALESCE(published_at, started_at)) AS started, MAX(finished_at) AS finished,
             SUM(CASE WHEN finished_at IS NULL THEN 1 ELSE 0 END) AS unfinished FROM tasks`.one();
    const root = this.sql<{ task_id: string; name: string | null }>`
      SELECT task_id, name FROM tasks ORDER BY (task_id = ${traceId}) DESC, (parent_id IS NULL) DESC, published_at ASC LIMIT 1`.toArray()[0];
    const workers = this.sql<{ worker: string }>`SELECT DISTINCT worker FROM tasks WHERE worker IS NOT NULL ORDER BY worker LIMIT 50`.toArray();
    const names = this.sql<{ name: string }>`SELECT DISTINCT name FROM tasks WHERE name IS NOT NULL ORDER BY name LIMIT 50`.toArray();
    const failures = countOf("FAILURE", "UNREGISTERED", "INTERRUPTED", "LOST");
    const running = countOf("STARTED", "RETRY");
    const waiting = countOf("PENDING", "RECEIVED", "SCHEDULED");
    const state: TraceSummary["state"] =
      running > 0 ? "STARTED" : waiting > 0 ? (waiting === total ? "PENDING" : "RECEIVED") : failures > 0 || countOf("REJECTED") > 0 ? "FAILURE" : countOf("REVOKED") > 0 ? "REVOKED" : "SUCCESS";
    const finishedAt = isTerminal(state) ? times.finished : null;
    return {
      trace_id: traceId,
      state,
      root_task_id: root?.task_id ?? null,
      root_name: root?.name ?? null,
      task_count: total,
      failure_count: failures,
      started_at: times.started,
      updated_at: Date.now() / 1000,
      finished_at: finishedAt,
      duration_ms: times.started !== null && finishedAt !== null ? Math.round((finishedAt - times.started) * 1000) : null,
      workers: workers.map((w) => w.worker),
      task_names: names.map((n) => n.name),
      anomaly_count: this.anomalyCount(),
    };
  }

  private summaryDue(): boolean {
    return Date.now() / 1000 - Number(this.meta("reported_at") ?? 0) >= SUMMARY_INTERVAL_S;
  }

  /** Sends the summary and the tasks changed since the last report to the index. */
  protected async reportToIndex(): Promise<void> {
    const now = Date.now() / 1000;
    this.setMeta("reported_at", now);
    this.setMeta("updated_at", now);
    this.sql`DELETE FROM deadlines WHERE key = 'summary'`;
    this.summaryScheduled = false;
    const tasks = this.sql<TraceReport["tasks"][number]>`SELECT task_id, name, state, runtime_ms, finished_at, worker FROM tasks WHERE reported = 0`.toArray();
    const report: TraceReport = { summary: this.summaryFromTable(), tasks, anomalies: this.anomalies.unreported(this.traceId) };
    // Marked before the await: a task changed while the report is in flight gets reported = 0 again.
    this.sql`UPDATE tasks SET reported = 1 WHERE reported = 0`;
    await this.env.INDEX.getByName(INDEX_NAME).report(report);
  }

  protected scheduleDeadline(key: string, kind: string, taskId: string | null, dueAt: number): void {
    this.sql`INSERT INTO deadlines (key, kind, task_id, due_at) VALUES (${key}, ${kind}, ${taskId}, ${dueAt})
             ON CONFLICT (key) DO UPDATE SET due_at = MIN(deadlines.due_at, excluded.due_at)`;
  }

  protected clearDeadline(key: string): void {
    this.sql`DELETE FROM deadlines WHERE key = ${key}`;
  }

  /** Pushes retention out to RETENTION_DAYS after the latest activity (refreshed at most once a minute). */
  private ensureRetention(): void {
    const now = Date.now() / 1000;
    if (now - this.retentionSetAt < 60) return;
    this.retentionSetAt = now;
    const days = numberVar(this.env.RETENTION_DAYS, 7);
    const due = now + days * 86400;
    this.sql`INSERT INTO deadlines (key, kind, task_id, due_at) VALUES ('retention', 'retention', NULL, ${due})
             ON CONFLICT (key) DO UPDATE SET due_at = excluded.due_at`;
  }

  /** One alarm: the earliest deadline, or none. */
  protected async rearmAlarm(): Promise<void> {
    const due = this.sql<{ due: number | null }>`SELECT MIN(due_at) AS due FROM deadlines`.one().due;
    const next = due === null ? null : Math.ceil(due * 1000);
    if (next === this.alarmAt) return;
    this.alarmAt = next;
    this.sql.countAlarmWrite();
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(next);
  }

  /** Runs every due deadline; idempotent, re-arms from the table. */
  async alarm(): Promise<void> {
    this.alarmAt = undefined; // the alarm that fired is gone; re-arm from the table
    const now = Date.now() / 1000;
    const due = this.sql<{ key: string; kind: string; task_id: string | null }>`
      SELECT key, kind, task_id FROM deadlines WHERE due_at <= ${now + 0.001} ORDER BY due_at`.toArray();
    for (const d of due) {
      if (d.kind === "retention") {
        const traceId = this.traceId;
        await this.ctx.storage.deleteAlarm();
        await this.ctx.storage.deleteAll();
        // The object lives on (a late event may arrive): start again from an empty schema.
        this.metaCache.clear();
        this.alarmAt = undefined;
        this.retentionSetAt = 0;
        this.summaryScheduled = false;
        this.outagesCache = undefined;
        this.anomalies.reset();
        migrate(this.ctx.storage.sql, MIGRATIONS);
        // The list, task lookup and anomalies must not point at a trace that no longer exists.
        await this.env.INDEX.getByName(INDEX_NAME).forgetTrace(traceId);
        return;
      }
      if (d.kind === "summary") continue; // reported below, once
      if (d.kind === "graph_check") {
        this.clearDeadline(d.key);
        this.anomalies.checkGraph(buildGraph(this.records()), now);
      }
    }
    // Watches (stuck pending / received / started, registry checks) in one pass: one Fleet and one
    // index call at most, however many are due.
    await this.anomalies.runDueWatches(due.filter((d) => d.key.startsWith("watch:")).map((d) => d.task_id!), now);
    if (due.some((d) => d.kind === "summary") || this.anomalies.hasUnreported()) await this.reportToIndex();
    await this.rearmAlarm();
  }

  // ---- live updates (WebSocket Hibernation API) ----

  /** Accepts a live socket; the Worker has already authenticated the request. */
  async fetch(request: Request): Promise<Response> {
    return acceptLiveSocket(this.ctx, request, { type: "hello", trace_id: this.traceId, seq: this.seq } satisfies TraceLiveMessage);
  }

  private broadcastDelta(seq: number, changed: TaskRecord[], structureChanged: boolean): void {
    if (this.ctx.getWebSockets().length === 0) return;
    const nodes = changed.map(toGraphNode);
    this.decorateNodes(nodes);
    const message = {
      type: "delta",
      trace_id: this.traceId,
      seq,
      nodes,
      structure_changed: structureChanged,
      summary: this.summaryFromTable(),
    } satisfies TraceLiveMessage;
    broadcastFrame(this.ctx, message);
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    answerPing(ws, message);
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    reciprocateClose(ws, code, reason);
  }
}
