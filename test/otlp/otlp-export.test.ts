/**
 * OpenTelemetry export (issue 17 item 4), end to end: recorded scenarios ingested through the API,
 * the shard's alarm POSTs them to the loopback OTLP receiver (receiver.ts), which checks the
 * encoding; the tests check what it took. Exports are made due and the alarm run by hand; an
 * alarm may also fire by itself, so a test waits for the outbox row to be processed (no sleeps
 * standing in for assertions).
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Health, TraceSnapshot } from "../../shared/api";
import { otlpSpanId, otlpTraceId, type OtlpExportRequest, type OtlpSpan } from "../../shared/otlp";
import { traceKeyOf, type Event, type TaskEvent } from "../../shared/wire";
import { graphOf } from "../workers/objects";
import { scenario, taskEvents } from "../workers/scenarios";

const receiver = new URL((env as { OTLP_ENDPOINT?: string }).OTLP_ENDPOINT ?? "").origin;
const fetchApp = (path: string, init?: RequestInit) => exports.default.fetch(`http://127.0.0.1${path}`, init);

async function ingest(events: unknown[]): Promise<{ rejected: { index: number; error: string }[] }> {
  const res = await fetchApp("/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(202);
  return (await res.json()) as { rejected: { index: number; error: string }[] };
}

/** A scenario's events with every UUID given another first group: a trace no other test has. */
function renamed(events: Event[], prefix: string): Event[] {
  const uuid = /[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/g;
  return JSON.parse(JSON.stringify(events).replace(uuid, (_m, rest: string) => prefix + rest)) as Event[];
}

interface Outbox {
  fingerprint: string;
  due_at: number | null;
  attempts: number;
  exported: string | null;
  last_error: string | null;
}

async function outbox(traceKey: string): Promise<Outbox | undefined> {
  return runInDurableObject(
    graphOf(traceKey),
    async (_o: unknown, state) =>
      state.storage.sql
        .exec<{
          fingerprint: string;
          due_at: number | null;
          attempts: number;
          exported: string | null;
          last_error: string | null;
        }>(
          "SELECT fingerprint, due_at, attempts, exported, last_error FROM otlp_exports WHERE trace_id = ?",
          traceKey,
        )
        .toArray()[0],
  );
}

/** Polls until `check` holds (the alarm runs its fetch outside the test's call). */
async function waitFor<T>(what: string, read: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 400; i++) {
    last = await read();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what}: still ${JSON.stringify(last)}`);
}

/** Writes what the shard holds, makes the trace's export due now, runs the alarm; waits until it ran. */
async function exportNow(traceKey: string): Promise<Outbox> {
  const stub = graphOf(traceKey);
  await stub.flush();
  const due = await runInDurableObject(stub, async (_o: unknown, state) => {
    const n = state.storage.sql
      .exec(
        "UPDATE otlp_exports SET due_at = 0 WHERE trace_id = ? AND due_at IS NOT NULL RETURNING trace_id",
        traceKey,
      )
      .toArray().length;
    await state.storage.setAlarm(Date.now());
    return n;
  });
  expect(due, `an export of ${traceKey} is scheduled`).toBe(1);
  await runDurableObjectAlarm(stub);
  return waitFor(
    `export of ${traceKey}`,
    () => outbox(traceKey).then((r) => r!),
    (r) => r.due_at !== 0,
  );
}

async function received(
  traceId: string,
): Promise<{ accepted: { headers: Record<string, string>; body: OtlpExportRequest }[]; refused: number[] }> {
  const res = await fetch(`${receiver}/_received?trace_id=${traceId}`);
  return res.json();
}

async function script(traceId: string, statuses: number[]): Promise<void> {
  await fetch(`${receiver}/_script`, {
    method: "POST",
    body: JSON.stringify({ trace_id: traceId, statuses }),
  });
}

const spansOf = (req: OtlpExportRequest) =>
  req.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};

async function health(): Promise<Health> {
  const res = await fetchApp("/api/health");
  expect(res.status).toBe(200);
  return Health.parse(await res.json());
}

describe("OpenTelemetry export of a recorded chord (07_chord)", () => {
  const chord = scenario("07_chord");
  const events = taskEvents(chord);
  const traceKey = traceKeyOf(events[0]!);
  const traceId = otlpTraceId(traceKey);
  const ids = chord.meta.ids as { callback: string; header_children: string[]; header_group_id: string };

  it("is sent once the trace settled: one span per attempt, fan-in links, attributes, configured headers", async () => {
    expect((await ingest(chord.events)).rejected).toEqual([]);
    const row = await exportNow(traceKey);
    expect(row).toMatchObject({ due_at: null, attempts: 0, last_error: null });
    expect(row.exported).toBe(row.fingerprint);

    const { accepted, refused } = await received(traceId);
    expect(refused).toEqual([]);
    expect(accepted).toHaveLength(1);
    const [{ headers, body }] = accepted as [(typeof accepted)[number]];
    expect(headers["content-type"]).toMatch(/^application\/json/);
    expect(headers.authorization).toBe("Bearer otlp-test");
    expect(headers["x-scope-orgid"]).toBe("stemtrace-tests");
    expect(body.resourceSpans[0]!.resource.attributes).toContainEqual({
      key: "service.name",
      value: { stringValue: "celery-e2e" },
    });
    expect(body.resourceSpans[0]!.scopeSpans[0]!.scope.name).toBe("stemtrace");

    const spans = spansOf(body);
    // Every task ran once: 3 header tasks and the callback.
    expect(spans.map((s) => attr(s, "celery.task_id")).sort()).toEqual(
      [...ids.header_children, ids.callback].sort(),
    );
    for (const s of spans) {
      expect(s.traceId).toBe(traceId);
      expect(s.spanId).toBe(otlpSpanId(String(attr(s, "celery.task_id")), 0, 0));
      expect(attr(s, "celery.state")).toBe("SUCCESS");
      expect(attr(s, "celery.retries")).toBe("0");
      expect(attr(s, "celery.chord_id")).toBe(ids.header_group_id);
      expect(attr(s, "celery.worker")).toEqual(expect.any(String));
      expect(s.events.map((e) => e.name)).toEqual(["celery.received", "celery.started"]);
    }
    const callback = spans.find((s) => attr(s, "celery.task_id") === ids.callback)!;
    expect(attr(callback, "celery.task_name")).toBe("app.tsum");
    // Fan-in: the callback links to every header task's span.
    expect(callback.links.map((l) => l.spanId).sort()).toEqual(
      ids.header_children.map((id) => otlpSpanId(id, 0, 0)).sort(),
    );
    // A client's chord: no task published it, so no span is a parent (the graph has no edge to them).
    for (const s of spans) expect(s.parentSpanId).toBeUndefined();
    for (const id of ids.header_children) {
      const s = spans.find((x) => attr(x, "celery.task_id") === id)!;
      expect(attr(s, "celery.group_id")).toBe(ids.header_group_id);
      expect(attr(s, "celery.task_name")).toBe("app.add");
    }
  });

  it("is not sent again while nothing changed; a late event re-exports it with the same ids", async () => {
    await graphOf(traceKey).flush();
    expect((await outbox(traceKey))!.due_at).toBeNull();
    const before = (await received(traceId)).accepted;
    expect(before).toHaveLength(1);
    // A late duplicate-free event of the callback (another worker's postrun echo): the trace changed.
    const last = events.filter((e) => e.task_id === ids.callback).at(-1)!;
    expect((await ingest([{ ...last, id: `${last.id}-late`, ts: last.ts + 0.001 }])).rejected).toEqual([]);
    await exportNow(traceKey);
    const after = (await received(traceId)).accepted;
    expect(after).toHaveLength(2);
    expect(
      spansOf(after[1]!.body)
        .map((s) => s.spanId)
        .sort(),
    ).toEqual(
      spansOf(before[0]!.body)
        .map((s) => s.spanId)
        .sort(),
    );
  });
});

describe("a chord inside a chain (25a_chord_in_chain)", () => {
  it("has each span's parent from the graph's edge, the callback's from its chord, and the fan-in links", async () => {
    const s = scenario("25a_chord_in_chain");
    const traceKey = traceKeyOf(taskEvents(s)[0]!);
    expect((await ingest(s.events)).rejected).toEqual([]);
    await exportNow(traceKey);
    const [request] = (await received(otlpTraceId(traceKey))).accepted;
    const spans = spansOf(request!.body);
    const res = await fetchApp(`/api/traces/${traceKey}`);
    const graph = TraceSnapshot.parse(await res.json());
    const ran = graph.nodes.filter((n) => !n.placeholder);
    expect(spans).toHaveLength(ran.length); // nothing here was retried: one attempt each
    const spanOf = (taskId: string) => otlpSpanId(taskId, 0, 0);
    const byTask = new Map(spans.map((x) => [String(attr(x, "celery.task_id")), x]));
    const chord = graph.containers.find((c) => c.kind === "CHORD")!;
    const edges = graph.edges.filter((e) => graph.nodes.some((n) => n.id === e.source));
    expect(edges.length).toBeGreaterThan(0);
    for (const e of edges) {
      expect(byTask.get(e.target)!.parentSpanId, `${e.kind} edge ${e.source} → ${e.target}`).toBe(
        spanOf(e.source),
      );
      expect(attr(byTask.get(e.target)!, "celery.edge")).toBe(e.kind);
    }
    // The callback: the chord's parent (where its header came from), and a link to every header task.
    const headerParent = graph.edges.find((e) => e.target === chord.members[0])!.source;
    const callback = byTask.get(chord.callback_id!)!;
    expect(callback.parentSpanId).toBe(spanOf(headerParent));
    expect(callback.links.map((l) => l.spanId).sort()).toEqual(chord.members.map(spanOf).sort());
    // The one root: the chain's first step.
    expect(spans.filter((x) => !x.parentSpanId).map((x) => attr(x, "celery.task_id"))).toEqual([traceKey]);
  });
});

describe("delivery", () => {
  it("retries with backoff when the receiver fails twice (503), and the spans arrive once", async () => {
    const events = renamed(scenario("03_retry_then_success").events, "0e1a0001");
    const traceKey = traceKeyOf(taskEvents({ events } as never)[0]!);
    const traceId = otlpTraceId(traceKey);
    await script(traceId, [503, 503]);
    expect((await ingest(events)).rejected).toEqual([]);

    const first = await exportNow(traceKey);
    expect(first.attempts).toBe(1);
    expect(first.due_at).toBeGreaterThan(Date.now() / 1000); // backed off, not given up
    expect(first.last_error).toMatch(/HTTP 503/);
    const second = await exportNow(traceKey);
    expect(second.attempts).toBe(2);
    const third = await exportNow(traceKey);
    expect(third).toMatchObject({ due_at: null, attempts: 0, last_error: null });

    const { accepted, refused } = await received(traceId);
    expect(refused).toEqual([503, 503]);
    expect(accepted).toHaveLength(1);
    // One span per attempt: the task ran three times; each retry hangs from the run that retried it.
    const spans = spansOf(accepted[0]!.body);
    expect(spans.map((s) => attr(s, "celery.retries"))).toEqual(["0", "1", "2"]);
    expect(spans[1]!.parentSpanId).toBe(spans[0]!.spanId);
    expect(spans[2]!.parentSpanId).toBe(spans[1]!.spanId);
    const exception = spans[0]!.events.find((e) => e.name === "exception")!;
    expect(exception.attributes).toContainEqual({
      key: "exception.type",
      value: { stringValue: "ConnectionError" },
    });

    const h = await health();
    expect(h.otlp!.failed_requests).toBeGreaterThanOrEqual(2);
    expect(h.otlp!.exported_traces).toBeGreaterThanOrEqual(1);
  });

  it("gives up after OTLP_MAX_ATTEMPTS failures, with a counter in /api/health", async () => {
    const events = renamed(scenario("02_failure").events, "0e1a0002");
    const traceKey = traceKeyOf(taskEvents({ events } as never)[0]!);
    const traceId = otlpTraceId(traceKey);
    await script(traceId, [503, 502, 429, 504]);
    expect((await ingest(events)).rejected).toEqual([]);
    const givenUpBefore = (await health()).otlp!.given_up;
    for (let attempt = 1; attempt <= 3; attempt++) expect((await exportNow(traceKey)).attempts).toBe(attempt);
    const last = await exportNow(traceKey);
    expect(last).toMatchObject({ due_at: null, attempts: 4 });
    expect(last.exported).toBeNull();
    const h = await health();
    expect(h.otlp!.given_up).toBe(givenUpBefore + 1);
    expect(h.otlp!.last_error).toMatch(/HTTP 504/);
    expect(h.otlp!.endpoint).toBe(`${receiver}/v1/traces`);
    expect((await received(traceId)).accepted).toEqual([]);
  });

  it("gives up at once on a 400 (the payload would not get better); a failure is an ERROR span", async () => {
    const events = renamed(scenario("02_failure").events, "0e1a0003");
    const traceKey = traceKeyOf(taskEvents({ events } as never)[0]!);
    const traceId = otlpTraceId(traceKey);
    await script(traceId, [400]);
    expect((await ingest(events)).rejected).toEqual([]);
    expect(await exportNow(traceKey)).toMatchObject({ due_at: null, attempts: 1 });
    expect((await received(traceId)).refused).toEqual([400]);

    // The same failure in another trace is accepted: the exception event and status ERROR.
    const again = renamed(scenario("02_failure").events, "0e1a0004");
    const key2 = traceKeyOf(taskEvents({ events: again } as never)[0]!);
    expect((await ingest(again)).rejected).toEqual([]);
    await exportNow(key2);
    const [span] = spansOf((await received(otlpTraceId(key2))).accepted[0]!.body);
    expect(span!.status?.code).toBe(2);
    const exception = span!.events.find((e) => e.name === "exception")!;
    const fields = Object.fromEntries(exception.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
    expect(fields["exception.type"]).toEqual(expect.any(String));
    expect(fields["exception.message"]).toEqual(expect.any(String));
    expect(fields["exception.stacktrace"]).toMatch(/Traceback/);
  });
});

describe("traceparent", () => {
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

  it("joins the publisher's W3C trace: its trace id, the root span a child of its span", async () => {
    const events = renamed(scenario("05_chain").events, "0e1a0005").map((e) =>
      e.kind === "task" && e.type === "published" && !(e as TaskEvent).parent_id ? { ...e, traceparent } : e,
    );
    const traceKey = traceKeyOf(taskEvents({ events } as never)[0]!);
    expect((await ingest(events)).rejected).toEqual([]);
    await exportNow(traceKey);
    const { accepted } = await received("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(accepted).toHaveLength(1);
    const spans = spansOf(accepted[0]!.body);
    expect(spans.length).toBeGreaterThan(1);
    for (const s of spans) expect(s.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    const roots = spans.filter((s) => s.parentSpanId === "00f067aa0ba902b7");
    expect(roots).toHaveLength(1);
    expect(attr(roots[0]!, "celery.task_id")).toBe(traceKey);
    // The other steps hang from the step before them (chain edges), inside the trace.
    const own = new Set(spans.map((s) => s.spanId));
    for (const s of spans.filter((x) => x !== roots[0])) expect(own.has(s.parentSpanId!)).toBe(true);
    expect((await received(otlpTraceId(traceKey))).accepted).toEqual([]);
  });

  it("ingest refuses a traceparent that is not W3C's", async () => {
    const [published] = taskEvents(scenario("01_single_success")).filter((e) => e.type === "published");
    const { rejected } = await ingest([
      { ...published!, id: "tp-bad", task_id: "tp-bad-task", traceparent: "00-XYZ-1-01" },
    ]);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.error).toMatch(/traceparent/);
  });
});
