import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { zValidator } from "@hono/zod-validator";
import { z } from "zod";
import {
  AnomalyKind,
  TaskSort,
  type TaskListPage,
  type Anomaly,
  type TaskDetail,
  type AnomalyList,
  type Health,
  type Registry,
  type RegistryEntry,
  type Stats,
  type TraceList,
  type WorkerList,
} from "../shared/api";
import { FLEET_NAME, type Env } from "../durable-objects/env";
import { indexBackend, indexBackendName, indexHealth, indexObject } from "../durable-objects/index-backend";
import { decodeCursor, encodeCursor } from "../shared/cursor";
import { shardCount, shardNames, traceGraphOf } from "../durable-objects/shards";
import {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  exportFileName,
  MAX_EXPORT_EVENT_BYTES,
  MAX_IMPORT_BYTES,
  TraceExport,
  type ImportResponse,
} from "../shared/export";
import { parseReplayAt, type ReplayTaskDetail } from "../shared/replay";
import { describeIssues, MAX_BATCH_BYTES, MAX_EVENTS_PER_BATCH, type IngestResponse } from "../shared/wire";
import { numberVar } from "../durable-objects/env";
import { authMode, requireAuth, type Caller } from "./auth";
import { jsonOnly } from "./edge";
import { handleError, HttpError } from "./errors";
import { ingest, readLimitedBody } from "./ingest";
import { traceDiff } from "./diff";
import { rebuildIndex } from "./index-rebuild";
import { webhooks } from "./webhooks-api";
import { ownObject, readTrace } from "./trace-objects";

export const VERSION = "0.1.0";

type ApiEnv = { Bindings: Env; Variables: { caller: Caller } };

const TraceListQuery = z.object({
  state: z.string().max(30).optional(),
  name: z.string().max(300).optional(),
  worker: z.string().max(300).optional(),
  q: z.string().max(300).optional(),
  from: z.coerce.number().optional(),
  to: z.coerce.number().optional(),
  cursor: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});

const AnomalyListQuery = z.object({
  status: z.enum(["open", "resolved", "all"]).optional(),
  kind: AnomalyKind.optional(),
  trace_id: z.string().max(300).optional(),
  name: z.string().max(300).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

/**
 * Validates a route's query with @hono/zod-validator: empty parameters count as absent (a form
 * that submits `?state=`), and a bad query answers the API's own 400 error shape.
 */
function query<T extends z.ZodType>(schema: T) {
  const withoutEmpty = z.preprocess(
    (q) =>
      q && typeof q === "object" ? Object.fromEntries(Object.entries(q).filter(([, v]) => v !== "")) : q,
    schema,
  );
  return zValidator("query", withoutEmpty, (result) => {
    if (!result.success)
      throw new HttpError(400, "invalid_query", "invalid query parameters", result.error.issues);
  });
}

const notFound = (what: string, id: string) =>
  new HttpError(
    404,
    "not_found",
    `no ${what} with id ${id} has been seen (it may not have been ingested yet, or was deleted by retention)`,
  );

/** A replayed task (`?at=`) none of whose events had happened by the moment. */
const notYetPublished = (taskId: string, at: number, first: number | null) =>
  new HttpError(
    404,
    "not_yet_published",
    `task ${taskId} was not published yet at ${new Date(at * 1000).toISOString()} (replay)` +
      (first !== null && first > at ? `: its first event is at ${new Date(first * 1000).toISOString()}` : ""),
  );

/** The list, lookups and statistics: the TraceIndex object or Upstash Redis (index-backend.ts). */
const index = (env: Env) => indexBackend(env);

/** Forwards an authenticated WebSocket upgrade to the object that owns the sockets. */
function upgrade(req: Request, stub: { fetch(req: Request): Promise<Response> }): Promise<Response> {
  if (req.headers.get("Upgrade")?.toLowerCase() !== "websocket")
    throw new HttpError(
      426,
      "upgrade_required",
      "this endpoint is a WebSocket; connect with Upgrade: websocket",
    );
  return stub.fetch(req);
}

export const traces = new Hono<ApiEnv>()
  .get("/", query(TraceListQuery), async (c) => {
    const q = c.req.valid("query");
    if (q.cursor && !decodeCursor(q.cursor))
      throw new HttpError(400, "invalid_cursor", "the cursor is not one this API returned");
    const list: TraceList = await index(c.env).listTraces(q);
    return c.json(list, 200);
  })
  .get("/:traceId/live", async (c) => {
    const traceId = c.req.param("traceId");
    if (shardCount(c.env) > 0) return upgrade(c.req.raw, traceGraphOf(c.env, traceId));
    const own = await ownObject(c.env, traceId);
    if (!own) throw notFound("trace", traceId);
    return upgrade(c.req.raw, own);
  })
  .get("/:traceId/anomalies", async (c) => {
    const traceId = c.req.param("traceId");
    const anomalies: Anomaly[] = (await readTrace(c.env, traceId, (o) => o.anomaliesOf(traceId))) ?? [];
    const list: AnomalyList = { anomalies };
    return c.json(list, 200);
  })
  // Run diff (worker/diff.ts).
  .get("/:traceId/diff", traceDiff)
  .get("/:traceId/export", async (c) => {
    const traceId = c.req.param("traceId");
    const found = await readTrace<{ events: string; graph: string } | { too_large: number }>(
      c.env,
      traceId,
      async (o) => await o.exportTrace(traceId, MAX_EXPORT_EVENT_BYTES),
    );
    if (found === null) throw notFound("trace", traceId);
    if ("too_large" in found)
      throw new HttpError(
        413,
        "export_too_large",
        `the trace's events take about ${found.too_large} bytes, over the export limit of ${MAX_EXPORT_EVENT_BYTES}; it cannot be exported as one file`,
      );
    // Assembled as text: the events and the graph are already JSON and may be megabytes.
    const head = {
      format: EXPORT_FORMAT,
      version: EXPORT_VERSION,
      exported_at: Date.now() / 1000,
      source: { host: new URL(c.req.url).host, version: VERSION },
      trace_id: traceId,
    };
    const body = `${JSON.stringify(head).slice(0, -1)},"events":${found.events},"graph":${found.graph}}`;
    return c.body(body, 200, {
      "Content-Type": "application/json; charset=UTF-8",
      "Content-Disposition": `attachment; filename="${exportFileName(traceId)}"`,
    });
  })
  .get("/:traceId", async (c) => {
    const traceId = c.req.param("traceId");
    // ?at=<epoch seconds>: the trace as it was then (time-travel replay, shared/replay.ts).
    const atParam = c.req.query("at");
    if (atParam !== undefined) {
      const parsed = parseReplayAt(atParam);
      if ("error" in parsed) throw new HttpError(400, "invalid_at", parsed.error);
      const replayed = await readTrace(c.env, traceId, (o) => o.snapshotAtJson(traceId, parsed.at));
      if (replayed === null) throw notFound("trace", traceId);
      return c.body(replayed, 200, { "Content-Type": "application/json; charset=UTF-8" });
    }
    // A TraceSnapshot (shared/api.ts), serialized by the object that holds the trace.
    const json = await readTrace(c.env, traceId, (o) => o.snapshotJson(traceId));
    if (json === null) throw notFound("trace", traceId);
    return c.body(json, 200, { "Content-Type": "application/json; charset=UTF-8" });
  });

const TaskListQuerySchema = z.object({
  q: z.string().max(300).optional(),
  sort: TaskSort.optional(),
  state: z.string().max(30).optional(),
  name: z.string().max(300).optional(),
  worker: z.string().max(300).optional(),
  queue: z.string().max(300).optional(),
  from: z.coerce.number().optional(),
  to: z.coerce.number().optional(),
  cursor: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});

export const tasks = new Hono<ApiEnv>()
  .get("/", query(TaskListQuerySchema), async (c) => {
    const params = c.req.valid("query");
    const q = params.q?.trim();
    // ?q=: search by id prefix or name (the index); otherwise every task, newest first.
    if (q) return c.json(await index(c.env).searchTasks(q, 50), 200);
    const shards = shardCount(c.env);
    if (shards === 0)
      throw new HttpError(
        501,
        "needs_shards",
        "the task list reads every trace shard; with TRACE_SHARDS=0 (one object per trace) there is none to read: search with ?q= instead",
      );
    const after = params.cursor ? decodeCursor(params.cursor) : null;
    if (params.cursor && !after)
      throw new HttpError(400, "invalid_cursor", "the cursor is not one this API returned");
    const limit = params.limit ?? 50;
    const { q: _q, cursor: _c, limit: _l, ...filters } = params;
    const pages = await Promise.all(
      shardNames(shards).map((name) =>
        c.env.TRACE_GRAPH.getByName(name).listTasks({
          ...filters,
          sort: params.sort ?? "published",
          ...(after ? { after } : {}),
          limit: limit + 1,
        }),
      ),
    );
    // Every shard's page is sorted the same way: the merged page is their first `limit` rows.
    const merged = pages
      .flat()
      .sort(
        (a, b) => b.sort_key - a.sort_key || (a.task_id < b.task_id ? 1 : a.task_id > b.task_id ? -1 : 0),
      );
    const page = merged.slice(0, limit);
    const last = page[page.length - 1];
    const list: TaskListPage = {
      tasks: page.map(({ sort_key: _k, ...row }) => row),
      next_cursor: merged.length > limit && last ? encodeCursor(last.sort_key, last.task_id) : null,
    };
    return c.json(list, 200);
  })
  .get("/:taskId", async (c) => {
    const taskId = c.req.param("taskId");
    // The index knows within about a second; a fresh task is usually the root of its own trace.
    const lookedUp = await index(c.env).traceOfTask(taskId);
    const traceId = lookedUp ?? taskId;
    // ?at=<epoch seconds>: the task as it was then (time-travel replay, durable-objects/task-replay.ts).
    const atParam = c.req.query("at");
    if (atParam !== undefined) {
      const parsed = parseReplayAt(atParam);
      if ("error" in parsed) throw new HttpError(400, "invalid_at", parsed.error);
      const found = await readTrace(c.env, traceId, (o) => o.taskAt(traceId, taskId, parsed.at), {
        known: lookedUp !== null,
      });
      if (found === null) throw notFound("task", taskId);
      if ("not_yet" in found) throw notYetPublished(taskId, parsed.at, found.not_yet.first_event_at);
      const replayed: ReplayTaskDetail = { ...(found as TaskDetail), as_of: parsed.at };
      return c.json(replayed, 200);
    }
    const detail = await readTrace(c.env, traceId, (o) => o.task(traceId, taskId), {
      known: lookedUp !== null,
    });
    if (!detail) throw notFound("task", taskId);
    return c.json(detail, 200);
  });

/** `POST /v1/events` itself, which an import sends its events through, with the API's error shape. */
const ingestApp = new Hono<ApiEnv>().route("/v1", ingest).onError(handleError);

/** Room in a batch for `{"events":[…]}` around the events. */
const ENVELOPE_BYTES = 64;
const utf8 = new TextEncoder();

/**
 * `POST /api/import`: a file from `GET /api/traces/:id/export`, its events sent through the same
 * ingest path as `POST /v1/events` (validation, dedupe by event id, the trace's object), in batches
 * within that route's limits. Importing a file twice stores nothing new.
 */
async function importTrace(c: Context<ApiEnv>): Promise<Response> {
  let text: string;
  try {
    text = await readLimitedBody(c.req.raw, MAX_IMPORT_BYTES);
  } catch (err) {
    if (err instanceof HttpError && err.code === "payload_too_large")
      throw new HttpError(
        413,
        "payload_too_large",
        `the file is over ${MAX_IMPORT_BYTES} bytes (after decompression), more than an export holds`,
      );
    throw err;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(
      400,
      "invalid_json",
      "the file is not JSON; send a file from GET /api/traces/:id/export",
    );
  }
  const head = (body && typeof body === "object" ? body : {}) as { format?: unknown; version?: unknown };
  if (head.format !== EXPORT_FORMAT)
    throw new HttpError(
      400,
      "not_an_export",
      `the file is not a stemtrace trace export (its "format" is not "${EXPORT_FORMAT}"); send a file from GET /api/traces/:id/export`,
    );
  if (head.version !== EXPORT_VERSION)
    throw new HttpError(
      400,
      "unsupported_version",
      `this stemtrace reads export version ${EXPORT_VERSION}; the file is version ${JSON.stringify(head.version)}`,
    );
  const file = TraceExport.safeParse(body);
  if (!file.success)
    throw new HttpError(
      400,
      "invalid_export",
      `the export file is malformed: ${describeIssues(file.error)}`,
      file.error.issues,
    );
  const { events, trace_id } = file.data;
  if (events.length === 0) throw new HttpError(400, "invalid_export", "the export file holds no events");

  // Batches within POST /v1/events' limits; each entry remembers its index in the file.
  const maxBytes = numberVar(c.env.MAX_BATCH_BYTES, MAX_BATCH_BYTES) - ENVELOPE_BYTES;
  const batches: { json: string[]; indices: number[]; bytes: number }[] = [];
  const rejected: { index: number; error: string }[] = [];
  events.forEach((event, index) => {
    const json = JSON.stringify(event);
    const bytes = utf8.encode(json).byteLength + 1;
    if (bytes > maxBytes) {
      rejected.push({
        index,
        error: `the event is ${bytes} bytes, over the ingest batch limit of ${maxBytes}`,
      });
      return;
    }
    let batch = batches[batches.length - 1];
    if (!batch || batch.indices.length >= MAX_EVENTS_PER_BATCH || batch.bytes + bytes > maxBytes) {
      batch = { json: [], indices: [], bytes: 0 };
      batches.push(batch);
    }
    batch.json.push(json);
    batch.indices.push(index);
    batch.bytes += bytes;
  });

  // The caller's credentials go with each batch: ingest checks them as it does for a producer.
  const headers = new Headers({ "Content-Type": "application/json" });
  for (const name of ["Authorization", "Cf-Access-Jwt-Assertion"]) {
    const value = c.req.header(name);
    if (value) headers.set(name, value);
  }
  const result: ImportResponse = { trace_id, events: events.length, accepted: 0, duplicates: 0, rejected };
  const failed: { index: number; error: string }[] = [];
  for (const batch of batches) {
    const res = await ingestApp.request(
      new URL("/v1/events", c.req.url).toString(),
      { method: "POST", headers, body: `{"events":[${batch.json.join(",")}]}` },
      c.env,
    );
    if (res.status !== 202 && res.status !== 503) {
      const error = ((await res.json()) as { error?: { code?: string; message?: string } }).error;
      throw new HttpError(
        res.status as ContentfulStatusCode,
        error?.code ?? "ingest_failed",
        `importing events ${batch.indices[0]}–${batch.indices[batch.indices.length - 1]} failed: ${error?.message ?? res.statusText}`,
      );
    }
    const answer = (await res.json()) as IngestResponse;
    result.accepted += answer.accepted;
    result.duplicates += answer.duplicates;
    for (const r of answer.rejected) rejected.push({ index: batch.indices[r.index]!, error: r.error });
    for (const r of answer.failed ?? []) failed.push({ index: batch.indices[r.index]!, error: r.error });
  }
  rejected.sort((a, b) => a.index - b.index);
  if (failed.length) return c.json({ ...result, failed }, 503);
  return c.json(result, 200);
}

export const api = new Hono<ApiEnv>()
  .get("/health", async (c) => {
    const health: Health = {
      ok: true,
      version: VERSION,
      auth_mode:
        authMode(c.env, new URL(c.req.url)) === "local" ? "none" : authMode(c.env, new URL(c.req.url)),
      index_backend: indexBackendName(c.env),
      // Upstash: degraded (with Redis's error) when a PING does not get through.
      ...(await indexHealth(c.env).then((h) =>
        h.degraded ? { index_degraded: true, index_degraded_reason: h.reason } : {},
      )),
      // Events producers lost (and said so): a gap in the data is visible here.
      producer_drops: await c.env.FLEET.getByName(FLEET_NAME).dropStats(),
      // OpenTelemetry export counters (docs/otlp.md), only when it is configured.
      ...(c.env.OTLP_ENDPOINT ? { otlp: await c.env.FLEET.getByName(FLEET_NAME).otlpHealth() } : {}),
    };
    return c.json(health, 200);
  })
  // Before the read rule: importing needs the ingest permission (and only JSON, as ingest does).
  .post("/import", jsonOnly, requireAuth("ingest"), importTrace)
  .post("/index/rebuild", requireAuth("ingest"), rebuildIndex)
  .use("*", requireAuth("read"))
  .route("/traces", traces)
  .route("/tasks", tasks)
  .route("/webhooks", webhooks)
  .get("/workers", async (c) => {
    const list: WorkerList = { workers: await c.env.FLEET.getByName(FLEET_NAME).list() };
    return c.json(list, 200);
  })
  .get("/workers/:hostname", async (c) => {
    const worker = await c.env.FLEET.getByName(FLEET_NAME).worker(c.req.param("hostname"));
    if (!worker) throw notFound("worker", c.req.param("hostname"));
    return c.json(worker, 200);
  })
  .get("/registry", async (c) => {
    const [registered, stats, anomalies] = await Promise.all([
      c.env.FLEET.getByName(FLEET_NAME).registeredNames(),
      index(c.env).runStats(),
      index(c.env).anomalyCounts(),
    ]);
    const byName = new Map(stats.map((s) => [s.name, s]));
    const names = new Set([...Object.keys(registered), ...byName.keys()]);
    const entries: RegistryEntry[] = [...names].sort().map((name) => {
      const s = byName.get(name);
      // Own keys only: a task may be named "constructor" or "__proto__".
      const reg = Object.prototype.hasOwnProperty.call(registered, name) ? registered[name] : undefined;
      const runs = s?.runs ?? 0;
      return {
        name,
        // Registered by a worker we have seen (even if it is offline now): Active or Never run.
        status: !reg ? "NOT_REGISTERED" : runs > 0 ? "ACTIVE" : "NEVER_RUN",
        runs,
        failures: s?.failures ?? 0,
        failure_rate: runs ? (s?.failures ?? 0) / runs : 0,
        runtime_p50_ms: s?.runtime_p50_ms ?? null,
        runtime_p95_ms: s?.runtime_p95_ms ?? null,
        runtime_p99_ms: s?.runtime_p99_ms ?? null,
        queue_wait_p50_ms: s?.queue_wait_p50_ms ?? null,
        queue_wait_p95_ms: s?.queue_wait_p95_ms ?? null,
        queue_wait_p99_ms: s?.queue_wait_p99_ms ?? null,
        last_run_at: s?.last_run_at ?? null,
        registered_by: reg?.workers ?? [],
        module: reg?.def.module ?? null,
        signature: reg?.def.signature ?? null,
        doc: reg?.def.doc ?? null,
        open_anomalies: Object.prototype.hasOwnProperty.call(anomalies.by_name, name)
          ? (anomalies.by_name[name] ?? 0)
          : 0,
      };
    });
    const q = c.req.query("q")?.toLowerCase();
    const status = c.req.query("status")?.toUpperCase();
    if (status && !["ACTIVE", "NEVER_RUN", "NOT_REGISTERED"].includes(status))
      throw new HttpError(400, "invalid_query", "status must be one of active, never_run, not_registered");
    const registry: Registry = {
      tasks: entries.filter(
        (e) => (!q || e.name.toLowerCase().includes(q)) && (!status || e.status === status),
      ),
    };
    return c.json(registry, 200);
  })
  .get("/stats", async (c) => {
    const now = Date.now() / 1000;
    const idx = index(c.env);
    const [counts, hour, day, workers, anomalies, hourly, daily, top] = await Promise.all([
      idx.counts(),
      idx.finishedSince(now - 3600),
      idx.finishedSince(now - 86400),
      c.env.FLEET.getByName(FLEET_NAME).list(),
      idx.anomalyCounts(),
      idx.throughput(300, 12),
      idx.throughput(3600, 24),
      idx.topNames(now - 86400, 8),
    ]);
    const stats: Stats = {
      ...counts,
      open_anomalies: anomalies.open,
      anomalies_by_kind: anomalies.by_kind,
      workers: {
        online: workers.filter((w) => w.status === "ONLINE").length,
        offline: workers.filter((w) => w.status === "OFFLINE").length,
        lost: workers.filter((w) => w.status === "LOST").length,
      },
      last_hour: hour,
      last_day: day,
      throughput: { hour: hourly, day: daily },
      busiest_names: top.busiest,
      slowest_names: top.slowest,
      longest_queue_wait_names: top.longestWait,
    };
    return c.json(stats, 200);
  })
  .get("/anomalies", query(AnomalyListQuery), async (c) => {
    const list: AnomalyList = await index(c.env).listAnomalies(c.req.valid("query"));
    return c.json(list, 200);
  })
  .get("/live", (c) => upgrade(c.req.raw, indexObject(c.env)));
