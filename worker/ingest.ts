import { Hono } from "hono";
import { numberVar, FLEET_NAME, type Env } from "../durable-objects/env";
import { groupByObject, shardCount } from "../durable-objects/shards";
import {
  describeIssues,
  EventBatch,
  expandCoalesced,
  MAX_BATCH_BYTES,
  MAX_EVENTS_PER_BATCH,
  parseEvent,
  ProducerReport,
  traceKeyOf,
  type IngestResponse,
  type RejectedEvent,
  type TaskEvent,
  type WorkerEvent,
} from "../shared/wire";
import { requireAuth, type Caller } from "./auth";
import { HttpError } from "./errors";

const utf8 = new TextDecoder();

/** Reads the body (gunzipping when asked) and stops as soon as it passes `limit` bytes. */
export async function readLimitedBody(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers.get("Content-Length") ?? NaN);
  const encoding = req.headers.get("Content-Encoding")?.toLowerCase();
  const tooLarge = () =>
    new HttpError(
      413,
      "payload_too_large",
      `the batch is over ${limit} bytes (after decompression); send smaller batches (at most ${MAX_EVENTS_PER_BATCH} events, ${limit} bytes)`,
    );
  if (!encoding && Number.isFinite(declared) && declared > limit) throw tooLarge();
  if (!req.body) throw new HttpError(400, "empty_body", 'the body is empty; send {"events": [...]}');
  if (!encoding && Number.isFinite(declared)) {
    // The declared length is within the limit, so reading it whole is bounded (and cheaper than chunks).
    let whole: ArrayBuffer;
    try {
      whole = await req.arrayBuffer();
    } catch {
      throw new HttpError(400, "bad_encoding", "the body could not be read completely");
    }
    if (whole.byteLength > limit) throw tooLarge();
    return utf8.decode(whole);
  }
  let stream: ReadableStream<Uint8Array> = req.body;
  if (encoding === "gzip")
    stream = stream.pipeThrough(
      new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
    );
  else if (encoding && encoding !== "identity")
    throw new HttpError(
      415,
      "unsupported_encoding",
      `Content-Encoding ${encoding} is not supported; use gzip or none`,
    );
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, "bad_encoding", "the body could not be decompressed; is it really gzip?");
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.byteLength;
  }
  return utf8.decode(bytes);
}

/** Validates each event on its own: a bad one is rejected with its index, the rest are kept. */
export function validateEvents(raw: unknown[]): {
  tasks: TaskEvent[];
  workers: WorkerEvent[];
  rejected: RejectedEvent[];
  duplicates: number;
} {
  const tasks: TaskEvent[] = [];
  const workers: WorkerEvent[] = [];
  const rejected: RejectedEvent[] = [];
  const ids = new Set<string>();
  let duplicates = 0;
  raw.forEach((item, index) => {
    const parsed = parseEvent(item);
    if (!parsed.success) {
      rejected.push({ index, error: describeIssues(parsed.error) });
      return;
    }
    if (ids.has(parsed.data.id)) {
      duplicates++;
      return;
    }
    ids.add(parsed.data.id);
    if (parsed.data.kind === "task") {
      if (parsed.data.received_ts === undefined && parsed.data.started_ts === undefined)
        tasks.push(parsed.data);
      else tasks.push(...expandCoalesced(parsed.data)); // one event for received + started + end
    } else workers.push(parsed.data);
  });
  return { tasks, workers, rejected, duplicates };
}

export const ingest = new Hono<{ Bindings: Env; Variables: { caller: Caller } }>().post(
  "/events",
  requireAuth("ingest"),
  async (c) => {
    const text = await readLimitedBody(c.req.raw, numberVar(c.env.MAX_BATCH_BYTES, MAX_BATCH_BYTES));
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(
        400,
        "invalid_json",
        'the body is not JSON; send {"events": [...]} with Content-Type: application/json',
      );
    }
    const batch = EventBatch.safeParse(body);
    if (!batch.success) {
      const count = (body as { events?: unknown[] } | null)?.events?.length ?? 0;
      const message =
        count > MAX_EVENTS_PER_BATCH
          ? `the batch has ${count} events; send at most ${MAX_EVENTS_PER_BATCH} per request`
          : `expected {"events": [...]} with 1 to ${MAX_EVENTS_PER_BATCH} events`;
      throw new HttpError(
        count > MAX_EVENTS_PER_BATCH ? 413 : 400,
        count > MAX_EVENTS_PER_BATCH ? "too_many_events" : "invalid_batch",
        message,
        batch.error.issues,
      );
    }
    const { tasks, workers, rejected, duplicates } = validateEvents(batch.data.events);
    // The sender's drop counts, when it has lost any; a report that does not parse is ignored.
    const report = batch.data.producer === undefined ? null : ProducerReport.safeParse(batch.data.producer);
    const reported = report?.success ? c.env.FLEET.getByName(FLEET_NAME).reportDrops(report.data) : null;

    // One RPC per object (shard) that holds some of the batch's traces, in parallel.
    const byObject = groupByObject(tasks, traceKeyOf, shardCount(c.env));
    const results = await Promise.all([
      ...[...byObject].map(([name, events]) =>
        c.env.TRACE_GRAPH.getByName(name).ingest(JSON.stringify(events)),
      ),
      ...(workers.length ? [c.env.FLEET.getByName(FLEET_NAME).ingest(workers)] : []),
    ]);
    await reported;
    const response: IngestResponse = {
      accepted: results.reduce((sum, r) => sum + r.accepted, 0),
      duplicates: duplicates + results.reduce((sum, r) => sum + r.duplicates, 0),
      rejected,
    };
    return c.json(response, 202);
  },
);
