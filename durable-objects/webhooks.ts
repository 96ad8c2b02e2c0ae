import { DurableObject } from "cloudflare:workers";
import type { Anomaly, TraceSummary } from "../shared/api";
import { isFailed } from "../shared/states";
import {
  classifyStatus,
  deliveryId,
  retryAfterS,
  retryDelayS,
  signatureHeader,
  taskPath,
  tracePath,
  webhookConfigFrom,
  WEBHOOK_MAX_ATTEMPTS,
  WEBHOOK_TIMEOUT_MS,
  WEBHOOK_USER_AGENT,
  type WebhookConfig,
  type WebhookDelivery,
  type WebhookDeliveryStatus,
  type WebhookEventType,
} from "../shared/webhooks";
import { OneAlarm } from "./deadlines";
import { numberVar, type Env } from "./env";
import type { WebhookNotice } from "./protocol";
import { migrate, sqlFor, type Sql, type StorageMeter } from "./sql";

/** The log keeps at most this many deliveries, and finished ones at most this long. */
const MAX_DELIVERIES = 2000;
const MAX_DELIVERY_AGE_S = 7 * 86_400;
/** Event ids are remembered longer than the log, so a report retried late delivers nothing twice. */
const MAX_EVENTS = 50_000;
const MAX_EVENT_AGE_S = 30 * 86_400;
/** Attempts one alarm makes at once (each is a subrequest); more due → the alarm runs again at once. */
const ATTEMPTS_PER_ALARM = 20;
/** A Retry-After longer than this is cut to it (the receiver still gets its whole budget of attempts). */
const MAX_RETRY_AFTER_S = 3600;
/** How much of a receiver's error answer the log keeps. */
const MAX_ERROR_CHARS = 300;
const PRUNE_EVERY_S = 60;

const MIGRATIONS = [
  `CREATE TABLE deliveries (
     id TEXT PRIMARY KEY, event_id TEXT NOT NULL, type TEXT NOT NULL, url TEXT NOT NULL, host TEXT NOT NULL,
     trace_id TEXT, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
     max_attempts INTEGER NOT NULL, created_at REAL NOT NULL, last_attempt_at REAL, last_status INTEGER,
     last_error TEXT, next_at REAL, delivered_at REAL);
   CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
   CREATE INDEX deliveries_by_time ON deliveries (created_at);
   CREATE TABLE events (id TEXT PRIMARY KEY, created_at REAL NOT NULL);
   CREATE INDEX events_by_time ON events (created_at);
   CREATE TABLE trace_failures (
     trace_id TEXT PRIMARY KEY, failed INTEGER NOT NULL, transitions INTEGER NOT NULL, updated_at REAL NOT NULL);
   CREATE INDEX trace_failures_by_time ON trace_failures (updated_at);`,
];

interface DeliveryRow extends Record<string, SqlStorageValue> {
  id: string;
  event_id: string;
  type: string;
  url: string;
  host: string;
  trace_id: string | null;
  body: string;
  status: string;
  attempts: number;
  max_attempts: number;
  created_at: number;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  next_at: number | null;
  delivered_at: number | null;
}

/** One event, before it is sent to each endpoint. */
interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  traceId: string;
  data: Record<string, unknown>;
}

function toDelivery(r: DeliveryRow): WebhookDelivery {
  return {
    id: r.id,
    event_id: r.event_id,
    type: r.type as WebhookDelivery["type"],
    endpoint: r.host,
    trace_id: r.trace_id,
    status: r.status as WebhookDeliveryStatus,
    attempts: r.attempts,
    created_at: r.created_at,
    last_attempt_at: r.last_attempt_at,
    last_status: r.last_status,
    last_error: r.last_error,
    next_attempt_at: r.status === "pending" ? r.next_at : null,
    delivered_at: r.delivered_at,
  };
}

const anomalyData = (a: Anomaly) => ({
  ...a,
  links: { trace: tracePath(a.trace_id), task: taskPath(a.task_id) },
});
const traceData = (s: TraceSummary) => ({ ...s, links: { trace: tracePath(s.trace_id) } });

/**
 * The webhook deliveries (one object, `getByName("global")`). The TraceGraph shards hand it what
 * they reported (`notify`); it turns that into events (an anomaly opened or resolved, a trace that
 * became failed), each event once whatever the retries (`events` table), and each event into one
 * delivery per configured URL. Deliveries are attempted from the object's one alarm, retried with
 * backoff, and kept as a bounded log (`deliveries`), which the API lists and can redeliver from.
 * Invariants: an event id is queued at most once; a delivery is attempted by one call at a time; a
 * finished delivery is never attempted again except by `redeliver`.
 */
export class Webhooks extends DurableObject<Env> {
  protected sql: Sql;
  private readonly alarm_: OneAlarm;
  /** Deliveries being attempted right now (an alarm and a redeliver may overlap). */
  private readonly inFlight = new Set<string>();
  private prunedAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = sqlFor(ctx.storage.sql);
    this.alarm_ = new OneAlarm(ctx.storage, () => this.sql.countAlarmWrite(), "webhooks");
    ctx.blockConcurrencyWhile(async () => migrate(ctx.storage.sql, MIGRATIONS));
  }

  private config(): WebhookConfig {
    return webhookConfigFrom(this.env);
  }

  /**
   * A shard's anomalies and failing traces, after its report to the index. Idempotent: an event
   * already queued is not queued again. Returns how many deliveries were queued.
   */
  async notify(notice: WebhookNotice): Promise<{ queued: number }> {
    const config = this.config();
    if (config.endpoints.length === 0) return { queued: 0 };
    const now = Date.now() / 1000;
    const events: WebhookEvent[] = [];
    for (const a of notice.anomalies) {
      const type: WebhookEventType = a.resolved_at === null ? "anomaly.opened" : "anomaly.resolved";
      if (config.events.includes(type))
        events.push({ id: `${type}:${a.id}`, type, traceId: a.trace_id, data: anomalyData(a) });
    }
    for (const s of notice.traces) {
      const failed = isFailed(s.state);
      const row = this.sql<{ failed: number; transitions: number }>`
        SELECT failed, transitions FROM trace_failures WHERE trace_id = ${s.trace_id}`.toArray()[0];
      if (failed && !row?.failed) {
        // Into a failed state: one event per transition (a trace that runs again and fails again
        // is a second one), numbered so that the same transition reported twice is one event.
        const n = (row?.transitions ?? 0) + 1;
        this
          .sql`INSERT INTO trace_failures (trace_id, failed, transitions, updated_at) VALUES (${s.trace_id}, 1, ${n}, ${now})
                 ON CONFLICT (trace_id) DO UPDATE SET failed = 1, transitions = ${n}, updated_at = ${now}`;
        if (config.events.includes("trace.failed"))
          events.push({
            id: `trace.failed:${s.trace_id}:${n}`,
            type: "trace.failed",
            traceId: s.trace_id,
            data: traceData(s),
          });
      } else if (!failed && row?.failed)
        this.sql`UPDATE trace_failures SET failed = 0, updated_at = ${now} WHERE trace_id = ${s.trace_id}`;
    }
    let queued = 0;
    for (const e of events) {
      if (this.sql`INSERT OR IGNORE INTO events (id, created_at) VALUES (${e.id}, ${now})`.rowsWritten === 0)
        continue;
      const body = JSON.stringify({ id: e.id, type: e.type, created_at: now, data: e.data });
      for (const endpoint of config.endpoints) {
        const id = await deliveryId(e.id, endpoint.url);
        queued += this
          .sql`INSERT OR IGNORE INTO deliveries (id, event_id, type, url, host, trace_id, body, status, attempts, max_attempts, created_at, next_at)
                 VALUES (${id}, ${e.id}, ${e.type}, ${endpoint.url}, ${endpoint.host}, ${e.traceId}, ${body}, 'pending', 0, ${WEBHOOK_MAX_ATTEMPTS}, ${now}, ${now})`
          .rowsWritten;
      }
    }
    this.prune(now);
    if (queued > 0) await this.rearm();
    return { queued };
  }

  /** The delivery log, newest first. */
  async deliveries(
    options: { limit?: number; status?: WebhookDeliveryStatus } = {},
  ): Promise<WebhookDelivery[]> {
    const limit = Math.min(Math.max(1, options.limit ?? 100), 1000);
    const rows = options.status
      ? this
          .sql<DeliveryRow>`SELECT * FROM deliveries WHERE status = ${options.status} ORDER BY created_at DESC, id LIMIT ${limit}`
      : this.sql<DeliveryRow>`SELECT * FROM deliveries ORDER BY created_at DESC, id LIMIT ${limit}`;
    return rows.toArray().map(toDelivery);
  }

  async delivery(id: string): Promise<WebhookDelivery | null> {
    const row = this.sql<DeliveryRow>`SELECT * FROM deliveries WHERE id = ${id}`.toArray()[0];
    return row ? toDelivery(row) : null;
  }

  /**
   * Sends a delivery again now, whatever its status, with a fresh budget of attempts (the same
   * event id and body: receivers dedupe by the event id). Returns it after this attempt, or null
   * when the log no longer has it.
   */
  async redeliver(id: string): Promise<WebhookDelivery | null> {
    const now = Date.now() / 1000;
    const written = this
      .sql`UPDATE deliveries SET status = 'pending', max_attempts = attempts + ${WEBHOOK_MAX_ATTEMPTS}, next_at = ${now}
                             WHERE id = ${id}`.rowsWritten;
    if (written === 0) return null;
    await this.attempt(id);
    await this.rearm();
    return this.delivery(id);
  }

  /** Attempts every delivery due (a bounded number per run), prunes the log, re-arms. Idempotent. */
  async alarm(): Promise<void> {
    this.alarm_.fired();
    const now = Date.now() / 1000;
    const due = this.sql<{ id: string }>`
      SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= ${now + 0.001} ORDER BY next_at LIMIT ${ATTEMPTS_PER_ALARM}`
      .toArray()
      .map((r) => r.id);
    await Promise.all(due.map((id) => this.attempt(id)));
    this.prune(now);
    await this.rearm();
  }

  /** Rows written and read by this object's statements (and alarm writes) since it started. */
  async storageStats(): Promise<StorageMeter & { db_bytes: number }> {
    return { ...this.sql.meter(), db_bytes: this.ctx.storage.sql.databaseSize };
  }

  private async rearm(): Promise<void> {
    await this.alarm_.atOrBefore([
      this.sql<{
        due: number | null;
      }>`SELECT MIN(next_at) AS due FROM deliveries WHERE status = 'pending'`.one().due,
    ]);
  }

  /** One attempt of one delivery, its outcome written to the log. Never throws. */
  private async attempt(id: string): Promise<void> {
    if (this.inFlight.has(id)) return;
    this.inFlight.add(id);
    try {
      const row = this
        .sql<DeliveryRow>`SELECT * FROM deliveries WHERE id = ${id} AND status = 'pending'`.toArray()[0];
      if (!row) return;
      const config = this.config();
      const startedAt = Date.now() / 1000;
      let status: number | null = null;
      let error: string | null = null;
      let outcome: "succeeded" | "retry" | "failed";
      let retryAfter: number | null = null;
      if (!config.endpoints.some((e) => e.url === row.url)) {
        outcome = "failed";
        error = "the endpoint is no longer in WEBHOOK_URLS";
      } else if (!config.secret) {
        outcome = "retry";
        error = "WEBHOOK_SECRET is not set: stemtrace sends only signed deliveries";
      } else {
        const t = Math.floor(startedAt);
        try {
          const res = await fetch(row.url, {
            method: "POST",
            headers: {
              "Content-Type": "application/json",
              "User-Agent": WEBHOOK_USER_AGENT,
              "Stemtrace-Event": row.type,
              "Stemtrace-Delivery": row.id,
              "Stemtrace-Signature": await signatureHeader(config.secret, t, row.body),
            },
            body: row.body,
            // A webhook URL is configured to its final address; following a redirect would send
            // the signed event somewhere nobody configured.
            redirect: "manual",
            signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
          });
          status = res.status;
          outcome = res.status >= 300 && res.status < 400 ? "failed" : classifyStatus(res.status);
          if (outcome !== "succeeded") {
            const text = await res.text().catch(() => "");
            error =
              res.status >= 300 && res.status < 400
                ? `HTTP ${res.status}: redirects are not followed; configure the final URL`
                : `HTTP ${res.status}${text ? `: ${text.slice(0, MAX_ERROR_CHARS)}` : ""}`;
            retryAfter = retryAfterS(res.headers.get("Retry-After"), startedAt);
          } else await res.body?.cancel();
        } catch (err) {
          outcome = "retry";
          error =
            err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")
              ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`
              : `network error: ${String(err instanceof Error ? err.message : err).slice(0, MAX_ERROR_CHARS)}`;
        }
      }
      const now = Date.now() / 1000;
      const attempts = row.attempts + 1;
      if (outcome === "retry" && attempts >= row.max_attempts) {
        outcome = "failed";
        error = `${error} (gave up after ${attempts} attempts)`;
      }
      // The attempt number within this round (a redeliver starts a new round) sets the wait.
      const round = attempts - (row.max_attempts - WEBHOOK_MAX_ATTEMPTS);
      const nextAt =
        outcome === "retry"
          ? now + Math.max(retryDelayS(round), Math.min(retryAfter ?? 0, MAX_RETRY_AFTER_S))
          : null;
      this
        .sql`UPDATE deliveries SET status = ${outcome === "retry" ? "pending" : outcome}, attempts = ${attempts},
                 last_attempt_at = ${startedAt}, last_status = ${status}, last_error = ${error}, next_at = ${nextAt},
                 delivered_at = ${outcome === "succeeded" ? now : null}
               WHERE id = ${id}`;
      if (outcome === "failed")
        console.warn(`webhooks: delivery ${id} (${row.type} to ${row.host}) failed: ${error}`);
    } catch (err) {
      console.error(`webhooks: attempting delivery ${id} failed unexpectedly`, err);
    } finally {
      this.inFlight.delete(id);
    }
  }

  /** Keeps the log and the dedupe table bounded: by age, then by count (oldest first). */
  private prune(now: number): void {
    if (now - this.prunedAt < PRUNE_EVERY_S) return;
    this.prunedAt = now;
    this.sql`DELETE FROM deliveries WHERE status != 'pending' AND created_at < ${now - MAX_DELIVERY_AGE_S}`;
    this.sql`DELETE FROM deliveries WHERE id IN (
               SELECT id FROM deliveries ORDER BY created_at DESC LIMIT -1 OFFSET ${MAX_DELIVERIES})`;
    this.sql`DELETE FROM events WHERE created_at < ${now - MAX_EVENT_AGE_S}`;
    this.sql`DELETE FROM events WHERE id IN (
               SELECT id FROM events ORDER BY created_at DESC LIMIT -1 OFFSET ${MAX_EVENTS})`;
    // A trace's failure state matters as long as the trace can change: its retention, and a day.
    const keepS = (numberVar(this.env.RETENTION_DAYS, 7) + 1) * 86_400;
    this.sql`DELETE FROM trace_failures WHERE updated_at < ${now - keepS}`;
  }
}
