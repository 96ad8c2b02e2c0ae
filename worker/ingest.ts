import { Hono } from "hono";
import { numberVar, FLEET_NAME, type Env } from "../durable-objects/env";
import type { IngestResult } from "../durable-objects/protocol";
import { groupByObject, shardCount } from "../durable-objects/shards";
import {
  describeIssues,
  EventBatch,
  expandCoalesced,
  MAX_BATCH_BYTES,
  MAX_EVENTS_PER_BATCH,
  mayHoldSurrogates,
  parseEvent,
  screenEvent,
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

/** A task event to store, with the index of the batch event it came from (coalesced events expand). */
export interface PlacedTaskEvent {
  event: TaskEvent;
  index: number;
}

/**
 * Validates each event on its own: a bad one is rejected with its index and reason, the rest are
 * kept. Past the schema, `screenEvent` refuses times more than a day ahead, payloads nested too
 * deep and lone surrogates in ids and names (`mayHaveSurrogates: false` when the body has none).
 */
export function validateEvents(
  raw: unknown[],
  nowS = Date.now() / 1000,
  mayHaveSurrogates = true,
): {
  tasks: PlacedTaskEvent[];
  workers: { event: WorkerEvent; index: number }[];
  rejected: RejectedEvent[];
  duplicates: number;
} {
  const tasks: PlacedTaskEvent[] = [];
  const workers: { event: WorkerEvent; index: number }[] = [];
  const rejected: RejectedEvent[] = [];
  const ids = new Set<string>();
  let duplicates = 0;
  raw.forEach((item, index) => {
    const parsed = parseEvent(item);
    if (!parsed.success) {
      rejected.push({ index, error: describeIssues(parsed.error) });
      return;
    }
    const screened = screenEvent(parsed.data, nowS, mayHaveSurrogates);
    if (!screened.ok) {
      rejected.push({ index, error: screened.error });
      return;
    }
    const event = screened.event;
    if (ids.has(event.id)) {
      duplicates++;
      return;
    }
    ids.add(event.id);
    if (event.kind === "task") {
      if (event.received_ts === undefined && event.started_ts === undefined) tasks.push({ event, index });
      else for (const e of expandCoalesced(event)) tasks.push({ event: e, index }); // one event for received + started + end
    } else workers.push({ event, index });
  });
  return { tasks, workers, rejected, duplicates };
}

/** What a failed object call means for the producer: these events were not stored; send them again. */
function notStored(indices: Iterable<number>, what: string, err: unknown): RejectedEvent[] {
  const reason = err instanceof Error ? err.message : String(err);
  return [...new Set(indices)].map((index) => ({
    index,
    error: `not stored: ${what} failed (${reason.slice(0, 200)}); send the batch again (ingest deduplicates by event id)`,
  }));
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
    const { tasks, workers, rejected, duplicates } = validateEvents(
      batch.data.events,
      Date.now() / 1000,
      mayHoldSurrogates(text),
    );
    // The sender's drop counts, when it has lost any; a report that does not parse is ignored.
    const report = batch.data.producer === undefined ? null : ProducerReport.safeParse(batch.data.producer);
    const reported = report?.success
      ? Promise.resolve()
          .then(() => c.env.FLEET.getByName(FLEET_NAME).reportDrops(report.data))
          .catch((err: unknown) =>
            console.error(
              JSON.stringify({ msg: "ingest: the fleet did not take a drop report", error: String(err) }),
            ),
          )
      : null;

    // One RPC per object (shard) that holds some of the batch's traces, in parallel. Each call is
    // all-or-nothing for its events; one that fails costs only its own events, which the response
    // lists as `failed` (503: send the batch again; what was stored dedupes).
    const byObject = groupByObject(tasks, (t) => traceKeyOf(t.event), shardCount(c.env));
    const calls: {
      indices: number[];
      what: string;
      ids: Map<string, number>;
      result: Promise<IngestResult>;
    }[] = [
      ...[...byObject].map(([name, placed]) => ({
        indices: placed.map((p) => p.index),
        what: `the trace object ${name.slice(0, 80)}`,
        ids: new Map(placed.map((p) => [p.event.id, p.index])),
        // (in a promise: a synchronous throw costs only this object's events too)
        result: Promise.resolve().then(() =>
          c.env.TRACE_GRAPH.getByName(name).ingest(JSON.stringify(placed.map((p) => p.event))),
        ),
      })),
      ...(workers.length
        ? [
            {
              indices: workers.map((w) => w.index),
              what: "the fleet",
              ids: new Map(workers.map((w) => [w.event.id, w.index])),
              result: Promise.resolve().then(() =>
                c.env.FLEET.getByName(FLEET_NAME).ingest(workers.map((w) => w.event)),
              ),
            },
          ]
        : []),
    ];
    const settled = await Promise.allSettled(calls.map((call) => call.result));
    await reported;
    let accepted = 0;
    let dupes = duplicates;
    const failed: RejectedEvent[] = [];
    settled.forEach((outcome, i) => {
      const call = calls[i]!;
      if (outcome.status === "rejected") {
        console.error(
          JSON.stringify({
            msg: "ingest: an object call failed",
            object: call.what,
            error: String(outcome.reason),
          }),
        );
        failed.push(...notStored(call.indices, call.what, outcome.reason));
        return;
      }
      accepted += outcome.value.accepted;
      dupes += outcome.value.duplicates;
      for (const r of outcome.value.rejected ?? []) {
        const index = call.ids.get(r.id);
        // One entry per batch event (a coalesced event's parts share its index).
        if (index !== undefined && !rejected.some((x) => x.index === index))
          rejected.push({ index, error: r.error });
      }
    });
    rejected.sort((a, b) => a.index - b.index);
    const response: IngestResponse = { accepted, duplicates: dupes, rejected };
    if (failed.length) {
      response.failed = failed.sort((a, b) => a.index - b.index);
      return c.json(response, 503);
    }
    return c.json(response, 202);
  },
);
