/**
 * OpenTelemetry export of settled traces (issue 17; docs/otlp.md): the TraceGraph shard's outbox.
 *
 * A trace is settled when its summary (the same one the index lists) is in a finished state and
 * nothing changed in it for `OTLP_SETTLE_S`: every report of a finished trace (re)schedules its
 * export that long after, a report of a running one cancels a scheduled export. The outbox is the
 * `otlp_exports` table (one row per trace, in the shard's SQLite, so it survives evictions); the
 * shard's one alarm runs what is due. The payload is rebuilt from the stored tasks at each
 * attempt (shared/otlp.ts; ids derived from Celery ids), so a retry or a re-export after a late
 * event sends the same span ids again. Failures (network, timeouts, 408, 429, 5xx) are retried
 * with exponential backoff up to `OTLP_MAX_ATTEMPTS`, then given up with a log line; other 4xx
 * are given up at once (the payload will not get better). Counters go to the Fleet (`/api/health`).
 *
 * Off (no object, no statement, no alarm) when `OTLP_ENDPOINT` is unset.
 */
import type { OtlpHealth, TraceSummary } from "../shared/api";
import { buildGraph, summarizeGraph } from "../shared/graph";
import { buildOtlpTrace, otlpRequests, parseOtlpHeaders } from "../shared/otlp";
import { isTerminal } from "../shared/states";
import type { TaskRecord } from "../shared/task-fold";
import type { TaskEvent } from "../shared/wire";
import { numberVar } from "./env";
import type { Sql } from "./sql";

/** The TraceGraph migration that adds the outbox (appended to TRACE_GRAPH_MIGRATIONS). */
export const OTLP_EXPORTS_MIGRATION = `CREATE TABLE otlp_exports (
     trace_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, due_at REAL, attempts INTEGER NOT NULL DEFAULT 0,
     sent INTEGER NOT NULL DEFAULT 0, exported TEXT, last_error TEXT);
   CREATE INDEX otlp_exports_due ON otlp_exports (due_at) WHERE due_at IS NOT NULL;`;

/** The settings, as vars (wrangler.toml `[vars]` or the dashboard). */
export interface OtlpVars {
  OTLP_ENDPOINT?: string;
  OTLP_HEADERS?: string;
  OTLP_SERVICE_NAME?: string;
  OTLP_SETTLE_S?: string;
  OTLP_MAX_ATTEMPTS?: string;
  OTLP_RETRY_BASE_S?: string;
  OTLP_TIMEOUT_S?: string;
  OTLP_MAX_SPANS_PER_REQUEST?: string;
}

export interface OtlpConfig {
  endpoint: string;
  headers: Record<string, string>;
  serviceName: string;
  settleS: number;
  maxAttempts: number;
  retryBaseS: number;
  timeoutS: number;
  maxSpans: number;
}

/** The longest wait between two attempts, and the largest trace exported (as the snapshot's limit). */
const MAX_BACKOFF_S = 600;
const MAX_EXPORT_TASKS = 20_000;
/** Traces sent per alarm run (in parallel); the rest are due at once, so the next alarm takes them. */
const EXPORTS_PER_RUN = 8;

/** The export's settings; null when off; `{ error }` when set but unusable (logged, and shown by /api/health). */
export function otlpConfig(vars: OtlpVars): OtlpConfig | { error: string } | null {
  const endpoint = vars.OTLP_ENDPOINT?.trim();
  if (!endpoint) return null;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { error: "OTLP_ENDPOINT is not a URL (e.g. http://collector:4318/v1/traces)" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return { error: `OTLP_ENDPOINT must be http(s), not ${url.protocol}` };
  let headers: Record<string, string>;
  try {
    headers = parseOtlpHeaders(vars.OTLP_HEADERS);
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  return {
    endpoint,
    headers,
    serviceName: vars.OTLP_SERVICE_NAME?.trim() || "celery",
    settleS: numberVar(vars.OTLP_SETTLE_S, 10),
    maxAttempts: Math.max(1, Math.floor(numberVar(vars.OTLP_MAX_ATTEMPTS, 8))),
    retryBaseS: numberVar(vars.OTLP_RETRY_BASE_S, 2),
    timeoutS: Math.max(0.1, numberVar(vars.OTLP_TIMEOUT_S, 10)),
    maxSpans: Math.max(1, Math.floor(numberVar(vars.OTLP_MAX_SPANS_PER_REQUEST, 1000))),
  };
}

/** What a shard's exports added up to since its last report to the Fleet. */
export interface OtlpCounts {
  exported_traces: number;
  exported_spans: number;
  failed_requests: number;
  given_up: number;
  last_error?: string;
  last_error_at?: number;
}

const zeroCounts = (): OtlpCounts => ({
  exported_traces: 0,
  exported_spans: 0,
  failed_requests: 0,
  given_up: 0,
});

/** The Fleet's side: a row per counter name, summed over every shard (`OtlpStats`). */
export interface OtlpCounterSink {
  otlpReport(counts: OtlpCounts): Promise<void>;
}

/** What the exporter needs of the shard: its SQL, the flush of a trace's pending tasks, the Fleet. */
export interface OtlpHost {
  sql: Sql;
  ready(traceId: string): void;
  fleet(): OtlpCounterSink;
}

type SendResult = { ok: true; spans: number } | { ok: false; retry: boolean; error: string; after?: number };

/** The Retry-After header (seconds or an HTTP date) in seconds from now, if any. */
function retryAfterS(res: Response, now: number): number | undefined {
  const v = res.headers.get("Retry-After");
  if (!v) return undefined;
  const n = Number(v);
  if (Number.isFinite(n)) return Math.max(0, n);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at / 1000 - now) : undefined;
}

export class OtlpExporter {
  /** The earliest due export, as far as known (undefined: ask the table). */
  private next: number | null | undefined;
  private counts = zeroCounts();

  private constructor(
    private readonly config: OtlpConfig,
    private readonly host: OtlpHost,
  ) {}

  /** The exporter of a shard, or null when OTLP_ENDPOINT is unset (or unusable: logged). */
  static fromEnv(vars: OtlpVars, host: OtlpHost): OtlpExporter | null {
    const config = otlpConfig(vars);
    if (config === null) return null;
    if ("error" in config) {
      console.error(`otlp export: off: ${config.error}`);
      return null;
    }
    return new OtlpExporter(config, host);
  }

  /**
   * After the shard summarized changed traces for the index: a finished trace whose fingerprint
   * changed is (re)scheduled `OTLP_SETTLE_S` from now; a running one's scheduled export is cancelled.
   */
  onSummaries(traces: readonly { summary: TraceSummary }[], now: number): void {
    const finished: [string, string][] = [];
    const running: string[] = [];
    for (const { summary: s } of traces)
      if (isTerminal(s.state))
        finished.push([
          s.trace_id,
          `${s.updated_at}:${s.task_count}:${s.not_run_count ?? 0}:${s.state}:${s.finished_at}`,
        ]);
      else running.push(s.trace_id);
    const due = now + this.config.settleS;
    if (finished.length) {
      this.host.sql`
        INSERT INTO otlp_exports (trace_id, fingerprint, due_at)
        SELECT value ->> 0, value ->> 1, ${due} FROM json_each(${JSON.stringify(finished)}) WHERE true
        ON CONFLICT (trace_id) DO UPDATE SET fingerprint = excluded.fingerprint, due_at = excluded.due_at,
          attempts = 0, sent = 0, last_error = NULL
        WHERE otlp_exports.fingerprint IS NOT excluded.fingerprint`;
      if (this.next !== undefined) this.next = this.next === null ? due : Math.min(this.next, due);
    }
    if (running.length)
      this.host.sql`
        UPDATE otlp_exports SET due_at = NULL, fingerprint = ''
        WHERE due_at IS NOT NULL AND trace_id IN (SELECT value FROM json_each(${JSON.stringify(running)}))`;
  }

  /** When the next export is due (for the shard's alarm). */
  nextDue(): number | null {
    if (this.next === undefined)
      this.next = this.host.sql<{
        due: number | null;
      }>`SELECT MIN(due_at) AS due FROM otlp_exports WHERE due_at IS NOT NULL`.one().due;
    return this.next;
  }

  /** Retention dropped these traces (a JSON array of ids). */
  forget(traceIdsJson: string): void {
    this.host.sql`DELETE FROM otlp_exports WHERE trace_id IN (SELECT value FROM json_each(${traceIdsJson}))`;
    this.next = undefined;
  }

  /** Storage was wiped (the table is made again by the migrations). */
  reset(): void {
    this.next = undefined;
  }

  /** Sends what is due (from the alarm), then reports the counters to the Fleet. */
  async runDue(now: number): Promise<void> {
    const due = this.host.sql<{ trace_id: string; fingerprint: string; attempts: number; sent: number }>`
      SELECT trace_id, fingerprint, attempts, sent FROM otlp_exports
      WHERE due_at IS NOT NULL AND due_at <= ${now + 0.001} ORDER BY due_at LIMIT ${EXPORTS_PER_RUN}`.toArray();
    this.next = undefined;
    if (due.length === 0) return;
    await Promise.all(
      due.map((row) =>
        this.exportTrace(row, now).catch((err: unknown) => {
          // Never into the shard's alarm, and no alarm loop: tried again a minute later.
          console.error(`otlp export: trace ${row.trace_id} failed unexpectedly; again in 60 s`, err);
          this.host
            .sql`UPDATE otlp_exports SET due_at = ${now + 60} WHERE trace_id = ${row.trace_id} AND due_at <= ${now + 0.001}`;
        }),
      ),
    );
    this.next = undefined;
    await this.report();
  }

  private async report(): Promise<void> {
    const counts = this.counts;
    if (!counts.exported_traces && !counts.failed_requests && !counts.given_up) return;
    this.counts = zeroCounts();
    try {
      await this.host.fleet().otlpReport(counts);
    } catch (err) {
      // Kept for the next report.
      console.warn("otlp export: the fleet did not take the counters; kept for the next report", err);
      for (const k of ["exported_traces", "exported_spans", "failed_requests", "given_up"] as const)
        this.counts[k] += counts[k];
      this.counts.last_error ??= counts.last_error;
      this.counts.last_error_at ??= counts.last_error_at;
    }
  }

  /** The trace's graph and events as stored; null when the trace is gone (retention). */
  private load(traceId: string) {
    this.host.ready(traceId);
    const { n } = this.host.sql<{
      n: number;
    }>`SELECT COUNT(*) AS n FROM tasks WHERE trace_id = ${traceId}`.one();
    if (n === 0) return null;
    const rows = this.host.sql<{ task_id: string; record: string; events: string }>`
      SELECT task_id, record, events FROM tasks WHERE trace_id = ${traceId}
      ORDER BY published_at IS NULL, published_at, task_id LIMIT ${MAX_EXPORT_TASKS}`.toArray();
    if (n > MAX_EXPORT_TASKS)
      console.warn(`otlp export: trace ${traceId} has ${n} tasks; exporting the first ${MAX_EXPORT_TASKS}`);
    const records = rows.map((r) => JSON.parse(r.record) as TaskRecord);
    const events = new Map(rows.map((r) => [r.task_id, JSON.parse(r.events) as TaskEvent[]]));
    return { view: buildGraph(records), events };
  }

  private async exportTrace(
    row: { trace_id: string; fingerprint: string; attempts: number; sent: number },
    now: number,
  ): Promise<void> {
    const { trace_id: traceId, fingerprint } = row;
    // Every update after an await is for this version only: a newer change may have rescheduled it.
    const same = fingerprint;
    let data: ReturnType<OtlpExporter["load"]>;
    try {
      data = this.load(traceId);
    } catch (err) {
      console.error(`otlp export: cannot read trace ${traceId}; not exported`, err);
      this.host
        .sql`UPDATE otlp_exports SET due_at = NULL, last_error = 'unreadable' WHERE trace_id = ${traceId}`;
      return;
    }
    if (!data) {
      this.host.sql`DELETE FROM otlp_exports WHERE trace_id = ${traceId}`;
      return;
    }
    if (!isTerminal(summarizeGraph(traceId, data.view, now).state)) {
      // Not settled after all (e.g. a late publish): the next change schedules it again.
      this.host.sql`UPDATE otlp_exports SET due_at = NULL, fingerprint = '' WHERE trace_id = ${traceId}`;
      return;
    }
    const trace = buildOtlpTrace({
      traceKey: traceId,
      view: data.view,
      events: data.events,
      serviceName: this.config.serviceName,
    });
    const requests = otlpRequests(trace, this.config.serviceName, this.config.maxSpans);
    let sent = row.sent;
    for (; sent < requests.length; sent++) {
      const result = await this.send(JSON.stringify(requests[sent]), now);
      if (!result.ok) {
        this.counts.failed_requests++;
        this.counts.last_error = `trace ${traceId}: ${result.error}`;
        this.counts.last_error_at = now;
        const attempts = row.attempts + 1;
        if (!result.retry || attempts >= this.config.maxAttempts) {
          console.error(
            `otlp export: gave up on trace ${traceId} after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${result.error}`,
          );
          this.counts.given_up++;
          this.host
            .sql`UPDATE otlp_exports SET due_at = NULL, attempts = ${attempts}, sent = ${sent}, last_error = ${result.error}
                        WHERE trace_id = ${traceId} AND fingerprint = ${same}`;
          return;
        }
        const backoff = Math.min(MAX_BACKOFF_S, this.config.retryBaseS * 2 ** (attempts - 1));
        const wait = Math.max(backoff * (0.8 + 0.4 * Math.random()), result.after ?? 0);
        console.warn(
          `otlp export: trace ${traceId} not taken (${result.error}); attempt ${attempts + 1} in ${Math.round(wait)} s`,
        );
        this.host
          .sql`UPDATE otlp_exports SET due_at = ${now + Math.min(wait, 3600)}, attempts = ${attempts}, sent = ${sent}, last_error = ${result.error}
                      WHERE trace_id = ${traceId} AND fingerprint = ${same}`;
        return;
      }
      // Progress is kept: a retry resumes after the requests already taken.
      this.host
        .sql`UPDATE otlp_exports SET sent = ${sent + 1} WHERE trace_id = ${traceId} AND fingerprint = ${same}`;
    }
    this.counts.exported_traces++;
    this.counts.exported_spans += trace.spans.length;
    this.host
      .sql`UPDATE otlp_exports SET due_at = NULL, exported = fingerprint, attempts = 0, sent = 0, last_error = NULL
                  WHERE trace_id = ${traceId} AND fingerprint = ${same}`;
  }

  /** One POST; what to do when it fails. */
  private async send(body: string, now: number): Promise<SendResult> {
    let res: Response;
    try {
      res = await fetch(this.config.endpoint, {
        method: "POST",
        headers: { ...this.config.headers, "Content-Type": "application/json" },
        body,
        signal: AbortSignal.timeout(this.config.timeoutS * 1000),
      });
    } catch (err) {
      return {
        ok: false,
        retry: true,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      };
    }
    const text = await res.text().catch(() => "");
    if (res.ok) {
      // OTLP partial success: the collector took the request but refused some spans (logged, not retried).
      try {
        const rejected = (
          JSON.parse(text) as { partialSuccess?: { rejectedSpans?: string | number; errorMessage?: string } }
        ).partialSuccess;
        if (rejected && Number(rejected.rejectedSpans ?? 0) > 0)
          console.warn(
            `otlp export: the collector rejected ${rejected.rejectedSpans} spans: ${rejected.errorMessage ?? ""}`,
          );
      } catch {
        // an empty or non-JSON body is a plain success
      }
      return { ok: true, spans: 0 };
    }
    const error = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
    const retry = res.status === 408 || res.status === 429 || res.status >= 500;
    const after = retryAfterS(res, now);
    return { ok: false, retry, error, ...(after !== undefined ? { after } : {}) };
  }
}

/**
 * The Fleet's counters of every shard's exports (`/api/health` → `otlp`). Its table is made (IF NOT
 * EXISTS, apart from the Fleet's migrations) by the first use: a deployment without the export
 * never has it.
 */
function createStatsTable(sql: Sql): void {
  sql`CREATE TABLE IF NOT EXISTS otlp_stats (key TEXT PRIMARY KEY, value TEXT NOT NULL)`;
}

/** Adds a shard's counters to the Fleet's (the Fleet's SQL). */
export function addOtlpCounts(sql: Sql, counts: OtlpCounts): void {
  createStatsTable(sql);
  const numbers = {
    exported_traces: counts.exported_traces,
    exported_spans: counts.exported_spans,
    failed_requests: counts.failed_requests,
    given_up: counts.given_up,
  };
  for (const [key, n] of Object.entries(numbers)) {
    if (!n) continue;
    sql`INSERT INTO otlp_stats (key, value) VALUES (${key}, ${String(n)})
        ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(otlp_stats.value AS INTEGER) + ${n} AS TEXT)`;
  }
  if (counts.last_error) {
    sql`INSERT INTO otlp_stats (key, value) VALUES ('last_error', ${counts.last_error.slice(0, 500)})
        ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    sql`INSERT INTO otlp_stats (key, value) VALUES ('last_error_at', ${String(counts.last_error_at ?? Date.now() / 1000)})
        ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
  }
}

/** The counters as `/api/health` shows them (the Fleet's SQL). */
export function readOtlpHealth(sql: Sql, vars: OtlpVars): OtlpHealth {
  createStatsTable(sql);
  const config = otlpConfig(vars);
  const values = new Map(
    sql<{ key: string; value: string }>`SELECT key, value FROM otlp_stats`
      .toArray()
      .map((r) => [r.key, r.value]),
  );
  const num = (k: string) => Number(values.get(k) ?? 0);
  let endpoint: string | null = null;
  if (config && !("error" in config)) {
    // The origin and path only: a query string or credentials in the URL are not shown.
    const url = new URL(config.endpoint);
    endpoint = `${url.origin}${url.pathname}`;
  }
  return {
    endpoint,
    error: config && "error" in config ? config.error : null,
    exported_traces: num("exported_traces"),
    exported_spans: num("exported_spans"),
    failed_requests: num("failed_requests"),
    given_up: num("given_up"),
    last_error: values.get("last_error") ?? null,
    last_error_at: values.has("last_error_at") ? Number(values.get("last_error_at")) : null,
  };
}
