import { DurableObject } from "cloudflare:workers";
import type { OtlpHealth, ProducerDrops, WorkerInfo, WorkerStatus } from "../shared/api";
import type { ProducerReport, RegisteredTask, WorkerEvent } from "../shared/wire";
import type { LiveRegistry, WorkerChange } from "./protocol";
import { shardCount, shardNames, traceObjectName } from "./shards";
import { INDEX_NAME, numberVar, type Env } from "./env";
import { indexBackend } from "./index-backend";
import { migrate, sqlFor, type Sql, type StorageMeter } from "./sql";
import { OneAlarm } from "./deadlines";
import { addOtlpCounts, readOtlpHealth, type OtlpCounts } from "./otlp-export";

const DEFAULT_HEARTBEAT_S = 2;
/** A worker whose status did not change is re-announced on `/api/live` at most this often. */
const ANNOUNCE_EVERY_S = 10;
/**
 * Worker event ids are remembered this long after they were received, for dedupe (a producer
 * retries a batch within seconds; a spooled batch may come back later). Keyed on the time of
 * receipt, not the event's own time: an old event resent must still be recognised.
 */
const DEDUPE_WINDOW_S = 3600;

/** Stored JSON that cannot be read is logged and read as `fallback`: one bad row never breaks a list or an alarm. */
function parseOr<T>(json: string, fallback: T, what: string): T {
  try {
    return JSON.parse(json) as T;
  } catch {
    console.error(`fleet: unreadable ${what}; ignored`);
    return fallback;
  }
}

const MIGRATIONS = [
  `CREATE TABLE workers (
     hostname TEXT PRIMARY KEY, status TEXT NOT NULL, pid INTEGER, pool TEXT, concurrency INTEGER,
     queues TEXT NOT NULL DEFAULT '[]', sw_ver TEXT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
     freq REAL, sessions INTEGER NOT NULL DEFAULT 0, active TEXT NOT NULL DEFAULT '[]',
     registered TEXT NOT NULL DEFAULT '[]', lost_due_at REAL);
   CREATE TABLE seen_events (id TEXT PRIMARY KEY, ts REAL NOT NULL);`,
  `CREATE INDEX seen_events_by_ts ON seen_events (ts);`,
  // Heartbeats rewrite a worker's row: keep the big registry out of it, and find the next
  // heartbeat deadline through an index rather than a scan of every worker.
  `CREATE TABLE worker_registry (hostname TEXT PRIMARY KEY, registered TEXT NOT NULL);
   INSERT INTO worker_registry (hostname, registered) SELECT hostname, registered FROM workers;
   UPDATE workers SET registered = '[]';
   CREATE INDEX workers_lost_due ON workers (lost_due_at) WHERE status = 'ONLINE';`,
];

/**
 * Producer processes' drop counts (the batch envelope's `producer`), one row per process. Created
 * apart from MIGRATIONS (IF NOT EXISTS, at every start) so that it never competes for a migration
 * number with other changes to this object.
 */
const PRODUCER_DROPS = `CREATE TABLE IF NOT EXISTS producer_drops (
  host TEXT NOT NULL, process TEXT NOT NULL, pid INTEGER, counts TEXT NOT NULL, total INTEGER NOT NULL,
  updated_at REAL NOT NULL, PRIMARY KEY (host, process))`;

/** A worker row with its registry (kept in its own table) and the events its processes dropped. */
const WORKER =
  "SELECT w.hostname, w.status, w.pid, w.pool, w.concurrency, w.queues, w.sw_ver, w.first_seen, w.last_seen, w.freq, w.sessions, w.active, COALESCE(r.registered, '[]') AS registered, COALESCE((SELECT SUM(d.total) FROM producer_drops d WHERE d.host = w.hostname), 0) AS dropped FROM workers w LEFT JOIN worker_registry r USING (hostname)";

interface WorkerState extends Record<string, SqlStorageValue> {
  hostname: string;
  status: string;
  pid: number | null;
  pool: string | null;
  concurrency: number | null;
  queues: string;
  sw_ver: string | null;
  first_seen: number;
  last_seen: number;
  freq: number | null;
  sessions: number;
  active: string;
}

interface WorkerRow extends WorkerState {
  registered: string;
  dropped: number;
}

function toInfo(row: WorkerRow): WorkerInfo {
  return {
    hostname: row.hostname,
    status: row.status as WorkerStatus,
    pid: row.pid,
    pool: row.pool,
    concurrency: row.concurrency,
    queues: parseOr<string[]>(row.queues, [], `queues of ${row.hostname}`),
    sw_ver: row.sw_ver,
    first_seen: row.first_seen,
    last_seen: row.last_seen,
    heartbeat_interval_s: row.freq,
    sessions: row.sessions,
    active: parseOr<string[]>(row.active, [], `active tasks of ${row.hostname}`),
    registered: parseOr<RegisteredTask[]>(row.registered, [], `registry of ${row.hostname}`),
    dropped: row.dropped,
  };
}

/**
 * The fleet of Celery workers, keyed by node name: online → offline on a clean `offline`,
 * online → lost when heartbeats stop for `WORKER_LOST_MULTIPLIER` × the interval (one alarm,
 * derived from `lost_due_at`). A restart is the same row with a new session.
 */
export class Fleet extends DurableObject<Env> {
  protected sql: Sql;
  private readonly alarm_: OneAlarm;
  private prunedAt = 0;
  private announcedAt = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = sqlFor(ctx.storage.sql);
    this.alarm_ = new OneAlarm(ctx.storage, () => this.sql.countAlarmWrite(), "fleet");
    ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage.sql, MIGRATIONS);
      ctx.storage.sql.exec(PRODUCER_DROPS);
    });
  }

  /**
   * A producer process's cumulative drop counts. Kept per process (host + its `process` id, else its
   * pid), the largest count per reason: a batch resent or replayed from a spool carries older ones.
   */
  async reportDrops(report: ProducerReport): Promise<void> {
    const host = report.host ?? "";
    const process = report.process ?? String(report.pid ?? "");
    const row = this.sql<{ counts: string }>`
      SELECT counts FROM producer_drops WHERE host = ${host} AND process = ${process}`.toArray()[0];
    const counts = (row ? JSON.parse(row.counts) : {}) as Record<string, number>;
    this.prune(Date.now() / 1000);
    let changed = !row;
    for (const [reason, n] of Object.entries(report.dropped))
      if (n > (counts[reason] ?? 0)) {
        counts[reason] = n;
        changed = true;
      }
    if (!changed) return;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    this.sql`INSERT INTO producer_drops (host, process, pid, counts, total, updated_at)
               VALUES (${host}, ${process}, ${report.pid ?? null}, ${JSON.stringify(counts)}, ${total}, ${Date.now() / 1000})
             ON CONFLICT (host, process) DO UPDATE SET pid = excluded.pid, counts = excluded.counts,
               total = excluded.total, updated_at = excluded.updated_at`;
    if (host) await this.announce([host]); // the Workers page's count, live (a client has no row)
  }

  /**
   * At most once a minute: event ids past the dedupe window, and the drop counts of producer
   * processes that reported nothing new for RETENTION_DAYS (gone, or long healthy: the traces their
   * losses belonged to have expired too, so the count would only mislead).
   */
  private prune(now: number): void {
    if (now - this.prunedAt <= 60) return;
    this.prunedAt = now;
    this.sql`DELETE FROM seen_events WHERE ts < ${now - DEDUPE_WINDOW_S}`;
    this
      .sql`DELETE FROM producer_drops WHERE updated_at < ${now - numberVar(this.env.RETENTION_DAYS, 7) * 86_400}`;
  }

  /** Events producers reported lost, in all and per host (a client's, without a node name, under null). */
  async dropStats(): Promise<ProducerDrops> {
    const byHost = new Map<string, ProducerDrops["by_host"][number]>();
    let total = 0;
    for (const row of this.sql<{ host: string; counts: string; total: number }>`
      SELECT host, counts, total FROM producer_drops ORDER BY host`.toArray()) {
      const entry = byHost.get(row.host) ?? {
        host: row.host || null,
        dropped: 0,
        processes: 0,
        by_reason: {},
      };
      byHost.set(row.host, entry);
      entry.dropped += row.total;
      entry.processes++;
      for (const [reason, n] of Object.entries(JSON.parse(row.counts) as Record<string, number>))
        entry.by_reason[reason] = (entry.by_reason[reason] ?? 0) + n;
      total += row.total;
    }
    return { total, by_host: [...byHost.values()] };
  }

  /** A TraceGraph shard's OpenTelemetry export counters since its last report (otlp-export.ts). */
  async otlpReport(counts: OtlpCounts): Promise<void> {
    addOtlpCounts(this.sql, counts);
  }

  /** Every shard's export counters, for `/api/health`. */
  async otlpHealth(): Promise<OtlpHealth> {
    return readOtlpHealth(this.sql, this.env);
  }

  /** Rows written and read by this object's statements (and alarm writes) since it started: the bill's unit. */
  async storageStats(): Promise<StorageMeter & { db_bytes: number }> {
    return { ...this.sql.meter(), db_bytes: this.ctx.storage.sql.databaseSize };
  }

  private get lostMultiplier(): number {
    return numberVar(this.env.WORKER_LOST_MULTIPLIER, 3);
  }

  /**
   * Applies worker events (deduplicated by id, applied in timestamp order). Transitions that end
   * running tasks (cold shutdown, restart, heartbeats resuming after a loss) are told to the traces
   * that have tasks running on that worker.
   */
  async ingest(events: WorkerEvent[]): Promise<{ accepted: number; duplicates: number }> {
    let accepted = 0;
    const changed = new Map<string, boolean>(); // host → status or session changed
    const transitions: WorkerChange[] = [];
    const receivedAt = Date.now() / 1000;
    for (const e of [...events].sort((a, b) => a.ts - b.ts || a.seq - b.seq)) {
      if (
        this.sql`INSERT OR IGNORE INTO seen_events (id, ts) VALUES (${e.id}, ${receivedAt})`.rowsWritten === 0
      )
        continue;
      accepted++;
      const result = this.apply(e);
      changed.set(e.host, (changed.get(e.host) ?? false) || result.statusChanged);
      if (result.transition) transitions.push(result.transition);
    }
    const now = Date.now() / 1000;
    this.prune(now);
    await this.rearmAlarm();
    // Heartbeats are most of the traffic: re-announce an unchanged worker only every few seconds.
    const announce = [...changed].filter(
      ([host, statusChanged]) => statusChanged || now - (this.announcedAt.get(host) ?? 0) >= ANNOUNCE_EVERY_S,
    );
    if (announce.length) await this.announce(announce.map(([host]) => host));
    for (const t of transitions) await this.tellTraces(t);
    return { accepted, duplicates: events.length - accepted };
  }

  protected apply(e: WorkerEvent): { statusChanged: boolean; transition: WorkerChange | null } {
    const existing = this.sql<WorkerState>`
      SELECT hostname, status, pid, pool, concurrency, queues, sw_ver, first_seen, last_seen, freq, sessions, active FROM workers WHERE hostname = ${e.host}`.toArray()[0];
    if (e.registered)
      this
        .sql`INSERT INTO worker_registry (hostname, registered) VALUES (${e.host}, ${JSON.stringify(e.registered)})
               ON CONFLICT (hostname) DO UPDATE SET registered = excluded.registered`;
    if (existing && e.ts < existing.last_seen - 0.001 && e.type !== "online")
      return { statusChanged: false, transition: null }; // stale
    const freq = e.freq ?? existing?.freq ?? DEFAULT_HEARTBEAT_S;
    const status: WorkerStatus =
      e.type === "offline"
        ? "OFFLINE"
        : e.type === "shutting_down"
          ? ((existing?.status as WorkerStatus) ?? "ONLINE")
          : "ONLINE";
    const lostDue = status === "ONLINE" ? e.ts + freq * this.lostMultiplier : null;
    if (!existing) {
      this
        .sql`INSERT INTO workers (hostname, status, pid, pool, concurrency, queues, sw_ver, first_seen, last_seen, freq, sessions, active, lost_due_at)
               VALUES (${e.host}, ${status}, ${e.pid ?? null}, ${e.pool ?? null}, ${e.concurrency ?? null}, ${JSON.stringify(e.queues ?? [])},
                       ${e.sw_ver ?? null}, ${e.ts}, ${e.ts}, ${freq}, 1, ${JSON.stringify(e.active ?? [])}, ${lostDue})`;
      return { statusChanged: true, transition: null };
    }
    const newSession = e.type === "online" && (existing.status !== "ONLINE" || e.pid !== existing.pid);
    // Tasks still running from an earlier process cannot finish; a cold stop ends them now; a lost
    // worker heard from again (same process) was only slow.
    const transition: WorkerChange | null =
      newSession && existing.pid !== null && e.pid !== existing.pid
        ? { host: e.host, kind: "restart", ts: e.ts }
        : e.type === "shutting_down" && e.how === "cold"
          ? { host: e.host, kind: "cold", ts: e.ts }
          : existing.status === "LOST" && status === "ONLINE" && !newSession
            ? { host: e.host, kind: "back", ts: e.ts }
            : existing.status === "LOST" && newSession
              ? { host: e.host, kind: "restart", ts: e.ts }
              : null;
    this
      .sql`UPDATE workers SET status = ${status}, pid = ${e.pid ?? existing.pid}, pool = ${e.pool ?? existing.pool},
               concurrency = ${e.concurrency ?? existing.concurrency}, queues = ${e.queues ? JSON.stringify(e.queues) : existing.queues},
               sw_ver = ${e.sw_ver ?? existing.sw_ver}, last_seen = ${Math.max(e.ts, existing.last_seen)}, freq = ${freq},
               sessions = ${existing.sessions + (newSession ? 1 : 0)},
               active = ${e.active ? JSON.stringify(e.active) : e.type === "offline" ? "[]" : existing.active},
               lost_due_at = ${lostDue}
             WHERE hostname = ${e.host}`;
    return { statusChanged: status !== existing.status || newSession || !!e.registered, transition };
  }

  async list(): Promise<WorkerInfo[]> {
    return this.ctx.storage.sql
      .exec<WorkerRow>(`${WORKER} ORDER BY w.status = 'ONLINE' DESC, w.hostname`)
      .toArray()
      .map(toInfo);
  }

  async worker(hostname: string): Promise<WorkerInfo | null> {
    const row = this.ctx.storage.sql.exec<WorkerRow>(`${WORKER} WHERE w.hostname = ?`, hostname).toArray()[0];
    return row ? toInfo(row) : null;
  }

  /** Which live workers register which task names (for the registry and "unregistered" checks). */
  async registeredNames(): Promise<Record<string, { workers: string[]; def: RegisteredTask }>> {
    // A Map, then own properties: a task may be named "constructor" or "__proto__" (RPC cannot
    // carry an object without a prototype).
    const out = new Map<string, { workers: string[]; def: RegisteredTask }>();
    for (const row of this.ctx.storage.sql.exec<WorkerRow>(WORKER).toArray()) {
      for (const def of parseOr<RegisteredTask[]>(row.registered, [], `registry of ${row.hostname}`)) {
        let entry = out.get(def.name);
        if (!entry) out.set(def.name, (entry = { workers: [], def }));
        if (row.status === "ONLINE") entry.workers.push(row.hostname);
      }
    }
    return Object.fromEntries(out);
  }

  /** Online workers with their queues, and which of them register each task name (for anomaly checks). */
  async liveRegistry(): Promise<LiveRegistry> {
    const online = this.sql<{ hostname: string; queues: string; registered: string }>`
      SELECT w.hostname, w.queues, COALESCE(r.registered, '[]') AS registered FROM workers w LEFT JOIN worker_registry r USING (hostname)
      WHERE w.status = 'ONLINE' ORDER BY w.hostname`.toArray();
    const names = new Map<string, string[]>(); // task names are any text ("constructor")
    const workers = online.map((row) => {
      const defs = parseOr<RegisteredTask[]>(row.registered, [], `registry of ${row.hostname}`);
      for (const def of defs) {
        const list = names.get(def.name);
        if (list) list.push(row.hostname);
        else names.set(def.name, [row.hostname]);
      }
      return {
        hostname: row.hostname,
        queues: parseOr<string[]>(row.queues, [], `queues of ${row.hostname}`),
        registers: defs.length > 0,
      };
    });
    return { online: workers, names: Object.fromEntries(names) };
  }

  /**
   * One alarm, at or before the earliest heartbeat deadline of an online worker (OneAlarm: it only
   * moves earlier, so heartbeats pushing deadlines later cost no alarm write each).
   */
  private async rearmAlarm(): Promise<void> {
    await this.alarm_.atOrBefore([
      this.sql<{
        due: number | null;
      }>`SELECT MIN(lost_due_at) AS due FROM workers WHERE status = 'ONLINE'`.one().due,
    ]);
  }

  /** Marks workers whose heartbeats stopped as LOST and tells their traces. Idempotent. */
  async alarm(): Promise<void> {
    this.alarm_.fired();
    const now = Date.now() / 1000;
    const lost = this.sql<{ hostname: string }>`
      SELECT hostname FROM workers WHERE status = 'ONLINE' AND lost_due_at IS NOT NULL AND lost_due_at <= ${now + 0.001}`.toArray();
    for (const w of lost)
      this.sql`UPDATE workers SET status = 'LOST', lost_due_at = NULL WHERE hostname = ${w.hostname}`;
    await this.rearmAlarm();
    if (lost.length) await this.announce(lost.map((w) => w.hostname));
    for (const w of lost) await this.tellTraces({ host: w.hostname, kind: "lost", ts: now });
  }

  /**
   * Tells every trace with tasks running on the worker: those the index knows run there, plus the
   * ids of the worker's last heartbeat (the index can be about a second behind).
   */
  private async tellTraces(change: WorkerChange): Promise<void> {
    try {
      const shards = shardCount(this.env);
      if (shards > 0) {
        // Each shard finds its own tasks running on the worker (a partial index): one call per shard.
        await Promise.all(
          shardNames(shards).map((name) => this.env.TRACE_GRAPH.getByName(name).workerChanged(change, null)),
        );
        return;
      }
      const index = indexBackend(this.env);
      const active = parseOr<string[]>(
        this.sql<{ active: string }>`SELECT active FROM workers WHERE hostname = ${change.host}`.toArray()[0]
          ?.active ?? "[]",
        [],
        `active tasks of ${change.host}`,
      );
      const traces = await index.tracesRunningOn(change.host, active);
      await Promise.all(
        traces.map((traceId) =>
          this.env.TRACE_GRAPH.getByName(traceObjectName(traceId, 0)).workerChanged(change, [traceId]),
        ),
      );
    } catch (err) {
      console.error(`fleet: could not tell the traces of ${change.host} about ${change.kind}`, err);
    }
  }

  private async announce(hostnames: string[]): Promise<void> {
    const index = this.env.INDEX.getByName(INDEX_NAME);
    const now = Date.now() / 1000;
    for (const host of hostnames) {
      this.announcedAt.set(host, now);
      try {
        const info = await this.worker(host);
        if (info) await index.publish({ type: "worker", seq: 0, worker: info });
      } catch (err) {
        console.error(`fleet: could not announce ${host}`, err);
      }
    }
  }
}
