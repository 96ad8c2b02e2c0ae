/**
 * Export and import (issue 17 item 3): a trace's stored events and graph as one file, loaded back
 * through the ingest path. The suite's store is shared by this file's tests, so to import into a
 * store that has never seen the trace, a test imports a copy of an exported file with every id
 * renamed (`renamed`: a suffix on each UUID, which keeps their order) and checks first that the
 * renamed trace is unknown. The original file, imported where it was exported, tests idempotence.
 */
import { exports, env as workerEnv } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../durable-objects/env";
import { TraceSnapshot } from "../../shared/api";
import { EXPORT_FORMAT, ImportResponse, TraceExport } from "../../shared/export";
import { traceKeyOf, type TaskEvent } from "../../shared/wire";
import app from "../../worker/index";
import { settle } from "./objects";
import { scenario, taskEvents } from "./scenarios";

const base = "http://127.0.0.1";
const fetchApp = (path: string, init?: RequestInit) => exports.default.fetch(`${base}${path}`, init);

async function ingest(events: unknown[]): Promise<void> {
  for (let i = 0; i < events.length; i += 500) {
    const res = await fetchApp("/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: events.slice(i, i + 500) }),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { rejected: unknown[] }).rejected).toEqual([]);
  }
  await settle();
}

async function exportOf(traceId: string): Promise<TraceExport> {
  const res = await fetchApp(`/api/traces/${traceId}/export`);
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  expect(res.headers.get("Content-Disposition")).toBe(`attachment; filename="stemtrace-${traceId}.json"`);
  return TraceExport.parse(await res.json());
}

async function importFile(file: unknown, status = 200): Promise<ImportResponse> {
  const res = await fetchApp("/api/import", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: typeof file === "string" ? file : JSON.stringify(file),
  });
  const body: unknown = await res.json();
  expect(res.status, JSON.stringify(body).slice(0, 500)).toBe(status);
  return ImportResponse.parse(body);
}

async function snapshotOf(traceId: string): Promise<TraceSnapshot> {
  const res = await fetchApp(`/api/traces/${traceId}`);
  expect(res.status).toBe(200);
  return TraceSnapshot.parse(await res.json());
}

async function expectUnknown(traceId: string): Promise<void> {
  expect((await fetchApp(`/api/traces/${traceId}`)).status).toBe(404);
}

/** The graph itself: what the snapshot shows, without the live sequence number and read times. */
const shape = (g: TraceSnapshot) => ({ nodes: g.nodes, edges: g.edges, containers: g.containers });

/** The file with every UUID in it (task, trace, group and event ids) given a suffix: a trace never seen. */
function renamed(file: TraceExport, suffix: string): TraceExport {
  const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
  return TraceExport.parse(JSON.parse(JSON.stringify(file).replace(uuid, (id) => `${id}-${suffix}`)));
}
const byId = (events: unknown[]) =>
  [...(events as { id: string }[])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

const chord = scenario("07_chord");
const chordTrace = traceKeyOf(taskEvents(chord)[0]!);

// One task whose arguments and result the producer scrubbed (python/stemtrace/scrub.py's markers).
const SCRUBBED_TRACE = "5c0bbed0-0000-4000-8000-00000000e001";
const scrubbedEvents: TaskEvent[] = [
  {
    v: 1,
    id: "5c0bbed0-0000-4000-8000-0000000000e1",
    kind: "task",
    type: "received",
    ts: 1795334392.5,
    seq: 1,
    host: "lab1@vm",
    task_id: SCRUBBED_TRACE,
    name: "app.login",
    trace_id: SCRUBBED_TRACE,
    root_id: SCRUBBED_TRACE,
    args: [{ __repr__: "<User id=7>" }, "[Filtered]"],
    kwargs: { password: "[Filtered]", api_key: "[Filtered]", note: { __repr__: "<object at 0x7f>" } },
  },
  {
    v: 1,
    id: "5c0bbed0-0000-4000-8000-0000000000e2",
    kind: "task",
    type: "succeeded",
    ts: 1795334393.5,
    seq: 2,
    host: "lab1@vm",
    task_id: SCRUBBED_TRACE,
    name: "app.login",
    trace_id: SCRUBBED_TRACE,
    root_id: SCRUBBED_TRACE,
    state: "SUCCESS",
    runtime_ms: 12,
    result: { session: "[Filtered]", user: { __repr__: "<User id=7>" } },
  },
];

// A trace with more events than one ingest batch holds (MAX_EVENTS_PER_BATCH = 1000).
const BIG_TRACE = "b16b16b1-0000-4000-8000-000000000000";
const bigEvents: TaskEvent[] = Array.from({ length: 1300 }, (_, i) => {
  const taskId = i === 0 ? BIG_TRACE : `b16b16b1-0000-4000-8000-${String(i).padStart(12, "0")}`;
  return {
    v: 1,
    id: `e0e0e0e0-0000-4000-8000-${String(i).padStart(12, "0")}`,
    kind: "task",
    type: "succeeded",
    ts: 1795334392 + i / 1000,
    seq: i,
    host: "lab1@vm",
    task_id: taskId,
    name: "app.step",
    trace_id: BIG_TRACE,
    root_id: BIG_TRACE,
    parent_id: i === 0 ? null : BIG_TRACE,
    state: "SUCCESS",
    runtime_ms: 1,
    result: i,
  };
});

// Files made by one test and imported by the next (into its clean store).
let chordFile: TraceExport | undefined;
let scrubbedFile: TraceExport | undefined;
let bigFile: TraceExport | undefined;

describe("GET /api/traces/:id/export", () => {
  it("downloads a recorded chord's stored events and its graph as one versioned file", async () => {
    await ingest(chord.events);
    const file = await exportOf(chordTrace);
    expect(file).toMatchObject({ format: EXPORT_FORMAT, version: 1, trace_id: chordTrace });
    expect(file.source.version).toMatch(/\d+\.\d+\.\d+/);
    // Every task event that was ingested is in the file (coalesced ones as the events they expand to).
    const ids = new Set((file.events as { id: string }[]).map((e) => e.id));
    for (const e of taskEvents(chord)) expect(ids.has(e.id), e.id).toBe(true);
    expect(ids.size).toBe(file.events.length);
    // The graph is the trace's snapshot at export time.
    expect(shape(file.graph)).toEqual(shape(await snapshotOf(chordTrace)));
    expect(file.graph.containers.some((c) => c.kind === "CHORD")).toBe(true);
    chordFile = file;
  });

  it("answers 404 for a trace it has never seen", async () => {
    const res = await fetchApp("/api/traces/00000000-dead-4000-8000-000000000000/export");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("keeps scrubbed values exactly as the producer sent them", async () => {
    await ingest(scrubbedEvents);
    const file = await exportOf(SCRUBBED_TRACE);
    expect(byId(file.events)).toEqual(byId(scrubbedEvents));
    scrubbedFile = file;
  });

  it("exports a trace of more events than an ingest batch", async () => {
    await ingest(bigEvents);
    const file = await exportOf(BIG_TRACE);
    expect(file.events).toHaveLength(bigEvents.length);
    bigFile = file;
  });
});

describe("POST /api/import", () => {
  it("loads an export into a store that never saw the trace: the same graph, stored once", async () => {
    const file = renamed(chordFile!, "imported");
    await expectUnknown(file.trace_id);
    const first = await importFile(file);
    expect(first).toEqual({
      trace_id: file.trace_id,
      events: file.events.length,
      accepted: file.events.length,
      duplicates: 0,
      rejected: [],
    });
    await settle();
    expect(shape(await snapshotOf(file.trace_id))).toEqual(shape(file.graph));

    const again = await importFile(file);
    expect(again).toMatchObject({ accepted: 0, duplicates: file.events.length, rejected: [] });
    await settle();
    // Re-exported: the same events, nothing added.
    expect(byId((await exportOf(file.trace_id)).events)).toEqual(byId(file.events));
  });

  it("is idempotent where the trace came from: importing its own export stores nothing", async () => {
    const file = chordFile!;
    expect(await importFile(file)).toMatchObject({
      accepted: 0,
      duplicates: file.events.length,
      rejected: [],
    });
    await settle();
    expect(shape(await snapshotOf(chordTrace))).toEqual(shape(file.graph));
  });

  it("stores scrubbed values unchanged", async () => {
    const file = renamed(scrubbedFile!, "scrubbed");
    await expectUnknown(file.trace_id);
    expect((await importFile(file)).accepted).toBe(2);
    await settle();
    expect(byId((await exportOf(file.trace_id)).events)).toEqual(byId(file.events));
    const detail = await fetchApp(`/api/tasks/${file.trace_id}`);
    const text = JSON.stringify(await detail.json());
    expect(text).toContain('"password":"[Filtered]"');
    expect(text).toContain('"__repr__":"<object at 0x7f>"');
  });

  it("sends a large file in batches within the ingest limits", async () => {
    const file = renamed(bigFile!, "big");
    await expectUnknown(file.trace_id);
    const result = await importFile(file);
    expect(result).toMatchObject({ accepted: 1300, duplicates: 0, rejected: [] });
    await settle();
    const snapshot = await snapshotOf(file.trace_id);
    expect(snapshot.nodes).toHaveLength(1300);
    expect(shape(snapshot)).toEqual(shape(file.graph));
    // Importing twice dedupes across batches too.
    expect(await importFile(file)).toMatchObject({ accepted: 0, duplicates: 1300 });
  });

  it("rejects a bad event by its index in the file and keeps the rest", async () => {
    const file = renamed(scrubbedFile!, "partial");
    file.events.splice(1, 0, { v: 1, kind: "task", id: "x" }); // no type, task id, time...
    const result = await importFile(file);
    expect(result.accepted).toBe(2);
    expect(result.rejected).toHaveLength(1);
    expect(result.rejected[0]!.index).toBe(1);
    expect(result.rejected[0]!.error).toMatch(/type|task_id|ts/);
  });

  it("refuses what is not an export file, with a message saying what is wrong", async () => {
    const file = renamed(scrubbedFile!, "refused");
    const refused = async (body: unknown, status: number, code: string, message: RegExp) => {
      const res = await fetchApp("/api/import", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const answer = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status, JSON.stringify(answer)).toBe(status);
      expect(answer.error.code).toBe(code);
      expect(answer.error.message).toMatch(message);
    };
    await refused("{not json", 400, "invalid_json", /not JSON/);
    await refused({ events: file.events }, 400, "not_an_export", /not a stemtrace trace export/);
    await refused({ ...file, version: 2 }, 400, "unsupported_version", /version 1.*version 2/);
    const { graph: _graph, ...noGraph } = file;
    await refused(noGraph, 400, "invalid_export", /graph/);
    await refused({ ...file, events: "all of them" }, 400, "invalid_export", /events/);
    await refused({ ...file, events: [] }, 400, "invalid_export", /no events/);
    // Not JSON by its type: a browser could send that cross-site without a preflight.
    const plain = await fetchApp("/api/import", {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body: JSON.stringify(file),
    });
    expect(plain.status).toBe(415);
    await expectUnknown(file.trace_id); // nothing was stored
  });

  it("needs the ingest permission: with AUTH_MODE=token, the ingest token", async () => {
    const file = renamed(scrubbedFile!, "token");
    const tokenEnv = { ...workerEnv, AUTH_MODE: "token", INGEST_TOKEN: "import-secret" } as Env;
    const post = (headers: Record<string, string>) =>
      app.fetch(
        new Request("https://stemtrace.example.com/api/import", {
          method: "POST",
          headers: { "Content-Type": "application/json", ...headers },
          body: JSON.stringify(file),
        }),
        tokenEnv,
      );
    expect((await post({})).status).toBe(401);
    expect((await post({ Authorization: "Bearer wrong" })).status).toBe(403);
    await expectUnknown(file.trace_id);
    const ok = await post({ Authorization: "Bearer import-secret" });
    expect(ok.status).toBe(200);
    expect(ImportResponse.parse(await ok.json()).accepted).toBe(2);
    // Exporting is a read: the token reads too; without it, nothing.
    await settle();
    const exp = (headers: Record<string, string>) =>
      app.fetch(
        new Request(`https://stemtrace.example.com/api/traces/${file.trace_id}/export`, { headers }),
        tokenEnv,
      );
    expect((await exp({})).status).toBe(401);
    const read = await exp({ Authorization: "Bearer import-secret" });
    expect(read.status).toBe(200);
    expect(byId(TraceExport.parse(await read.json()).events)).toEqual(byId(file.events));
  });
});
