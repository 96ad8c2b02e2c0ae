/**
 * The OTLP payload builder (shared/otlp.ts) on the recorded scenarios: one span per attempt,
 * parents from the graph's edges, chord fan-in links, exception events, deterministic ids, and
 * the W3C traceparent join.
 */
import { describe, expect, it } from "vitest";
import {
  buildOtlpTrace,
  fnv1a64Hex,
  otlpRequests,
  otlpSpanId,
  otlpTraceId,
  parseOtlpHeaders,
  parseTraceparent,
  unixNano,
  type OtlpSpan,
} from "../../shared/otlp";
import { traceKeyOf, type TaskEvent } from "../../shared/wire";
import { graphOf, scenarios, taskEventsOf } from "./wire-fixtures";

function eventsOf(name: string): TaskEvent[] {
  const s = scenarios.find((x) => x.file === `${name}.json`);
  if (!s) throw new Error(`missing wire fixture ${name}`);
  return taskEventsOf(s.events);
}

function build(events: TaskEvent[]) {
  const traceKey = traceKeyOf(events[0]!);
  const byTask = new Map<string, TaskEvent[]>();
  for (const e of events) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), e]);
  const view = graphOf(events);
  return { traceKey, view, trace: buildOtlpTrace({ traceKey, view, events: byTask, serviceName: "svc" }) };
}

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};
const spansOf = (spans: OtlpSpan[], taskId: string) =>
  spans.filter((s) => attr(s, "celery.task_id") === taskId);

describe("ids", () => {
  it("a UUID trace key is the trace id; other keys hash to 16 bytes; span ids are 8 bytes and stable", () => {
    expect(otlpTraceId("980cf0c5-aba0-4198-8d65-f0cc400ba427")).toBe("980cf0c5aba041988d65f0cc400ba427");
    const custom = otlpTraceId("order-42");
    expect(custom).toMatch(/^[0-9a-f]{32}$/);
    expect(otlpTraceId("order-42")).toBe(custom);
    expect(otlpTraceId("order-43")).not.toBe(custom);
    expect(otlpSpanId("t", 0, 0)).toMatch(/^[0-9a-f]{16}$/);
    expect(otlpSpanId("t", 0, 0)).toBe(otlpSpanId("t", 0, 0));
    expect(otlpSpanId("t", 1, 0)).not.toBe(otlpSpanId("t", 0, 0));
    expect(unixNano(1795334409.017568)).toBe("1795334409017568000");
    // FNV-1a 64's published test vectors (the limb arithmetic must equal the 64-bit definition).
    expect(fnv1a64Hex("")).toBe("cbf29ce484222325");
    expect(fnv1a64Hex("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64Hex("foobar")).toBe("85944171f73967e8");
  });

  it("parses W3C traceparent and refuses invalid ones", () => {
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      flags: "01",
    });
    expect(parseTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).toBeNull();
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")).toBeNull();
    expect(parseTraceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBeNull();
    expect(parseTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")).toBeNull();
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")).toBeNull();
    expect(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")).not.toBeNull();
  });

  it("reads OTLP_HEADERS like OTEL_EXPORTER_OTLP_HEADERS", () => {
    expect(parseOtlpHeaders("api-key=a%20b, x-tenant = t1 ,")).toEqual({
      "api-key": "a b",
      "x-tenant": "t1",
    });
    expect(parseOtlpHeaders(undefined)).toEqual({});
    expect(() => parseOtlpHeaders("novalue")).toThrow(/not key=value/);
  });
});

describe("the chord (07_chord)", () => {
  const { trace, view, traceKey } = build(eventsOf("07_chord"));
  const chord = view.containers.find((c) => c.kind === "CHORD")!;
  const callback = chord.callback_id!;

  it("has one span per attempt, all in the trace of the root task", () => {
    const ran = view.nodes.filter((n) => !n.placeholder);
    expect(trace.spans).toHaveLength(ran.length);
    // A client's chord is keyed by its group id (DESIGN.md "The trace key"): that UUID's hex.
    expect(traceKey).toBe(chord.id);
    expect(trace.traceId).toBe(chord.id.replace(/-/g, ""));
    for (const s of trace.spans) {
      expect(s.traceId).toBe(trace.traceId);
      expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(s.kind).toBe(5);
      expect(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano)).toBe(true);
      expect(attr(s, "celery.state")).toBe("SUCCESS");
      expect(attr(s, "celery.queue")).toBe("celery");
      expect(attr(s, "celery.worker")).toEqual(expect.any(String));
      // Celery's own root id: in a client's chord each header task is its own root.
      expect(attr(s, "celery.root_id")).toEqual(expect.any(String));
      expect(attr(s, "celery.trace_key")).toBe(traceKey);
    }
    expect(new Set(trace.spans.map((s) => s.spanId)).size).toBe(trace.spans.length);
  });

  it("links the callback to every header task (fan-in), members carry the chord id", () => {
    const [cb] = spansOf(trace.spans, callback);
    expect(cb).toBeDefined();
    expect(attr(cb!, "celery.chord_id")).toBe(chord.id);
    const headerSpans = chord.members.map((m) => spansOf(trace.spans, m)[0]!);
    expect(cb!.links.map((l) => l.spanId).sort()).toEqual(headerSpans.map((s) => s.spanId).sort());
    for (const l of cb!.links) expect(l.traceId).toBe(trace.traceId);
    for (const s of headerSpans) {
      expect(attr(s, "celery.group_id")).toBe(chord.id);
      expect(attr(s, "celery.chord_id")).toBe(chord.id);
    }
  });

  it("a client-published chord has no task parent: header and callback are roots", () => {
    for (const s of trace.spans) expect(s.parentSpanId).toBeUndefined();
    const [cb] = spansOf(trace.spans, callback);
    expect(attr(cb!, "celery.parent_id")).toBe(chord.id);
  });

  it("queue wait and run time are span events and attributes", () => {
    const s = trace.spans[0]!;
    expect(s.events.map((e) => e.name)).toEqual(["celery.received", "celery.started"]);
    expect(attr(s, "celery.queue_wait_ms")).toEqual(expect.any(Number));
    expect(attr(s, "celery.runtime_ms")).toEqual(expect.any(Number));
  });

  it("is the same payload when built again (idempotent ids)", () => {
    expect(build(eventsOf("07_chord")).trace).toEqual(trace);
  });

  it("joins an incoming W3C trace: its trace id, the roots children of its span", () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const events = eventsOf("07_chord").map((e) => (e.type === "published" ? { ...e, traceparent } : e));
    const joined = build(events).trace;
    expect(joined.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(joined.spans.map((s) => s.spanId)).toEqual(trace.spans.map((s) => s.spanId));
    for (const s of joined.spans) {
      expect(s.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
      expect(s.parentSpanId).toBe("00f067aa0ba902b7");
    }
    const [cb] = spansOf(joined.spans, callback);
    for (const l of cb!.links) expect(l.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });
});

describe("parents from the graph's edges", () => {
  it("chain steps hang from the step before them (05_chain)", () => {
    const { trace, view } = build(eventsOf("05_chain"));
    const chainEdges = view.edges.filter((e) => e.kind === "chain");
    expect(chainEdges.length).toBeGreaterThan(0);
    for (const edge of chainEdges) {
      const [child] = spansOf(trace.spans, edge.target);
      const [parent] = spansOf(trace.spans, edge.source);
      expect(child!.parentSpanId).toBe(parent!.spanId);
      expect(attr(child!, "celery.edge")).toBe("chain");
    }
  });

  it("a chord inside a chain: the callback's parent is the chord's parent, not a header task (25a)", () => {
    const { trace, view } = build(eventsOf("25a_chord_in_chain"));
    const chord = view.containers.find((c) => c.kind === "CHORD")!;
    const headerParent = view.edges.find((e) => e.target === chord.members[0])!.source;
    const [cb] = spansOf(trace.spans, chord.callback_id!);
    expect(cb!.parentSpanId).toBe(spansOf(trace.spans, headerParent).at(-1)!.spanId);
    expect(cb!.links).toHaveLength(chord.members.length);
  });
});

describe("retries and failures", () => {
  it("03: three attempts, each retry a child of the run that retried it, with the retry's exception", () => {
    const { trace } = build(eventsOf("03_retry_then_success"));
    expect(trace.spans).toHaveLength(3);
    const [a0, a1, a2] = trace.spans;
    expect(a0!.parentSpanId).toBeUndefined();
    expect(a1!.parentSpanId).toBe(a0!.spanId);
    expect(a2!.parentSpanId).toBe(a1!.spanId);
    expect(trace.spans.map((s) => attr(s, "celery.retries"))).toEqual(["0", "1", "2"]);
    expect(trace.spans.map((s) => attr(s, "celery.state"))).toEqual(["RETRY", "RETRY", "SUCCESS"]);
    const ex = a0!.events.find((e) => e.name === "exception")!;
    expect(Object.fromEntries(ex.attributes.map((a) => [a.key, Object.values(a.value)[0]]))).toMatchObject({
      "exception.type": "ConnectionError",
      "exception.message": "transient failure #1",
    });
    for (const s of trace.spans) expect(s.status).toBeUndefined();
  });

  it("02: a failure is an exception event with its stack trace, and status ERROR", () => {
    const { trace } = build(eventsOf("02_failure"));
    expect(trace.spans).toHaveLength(1);
    const [s] = trace.spans;
    expect(s!.status?.code).toBe(2);
    const ex = s!.events.find((e) => e.name === "exception")!;
    const fields = Object.fromEntries(ex.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
    expect(fields["exception.type"]).toEqual(expect.any(String));
    expect(fields["exception.stacktrace"]).toMatch(/Traceback/);
    expect(s!.status?.message).toContain(String(fields["exception.type"]));
  });

  it("10a: a failed chord header; the callback never ran and has no span", () => {
    const { trace, view } = build(eventsOf("10a_chord_header_fails"));
    const chord = view.containers.find((c) => c.kind === "CHORD")!;
    expect(spansOf(trace.spans, chord.callback_id!)).toEqual([]);
    expect(trace.spans.some((s) => s.status?.code === 2)).toBe(true);
  });
});

describe("every recorded scenario", () => {
  it("builds valid OTLP JSON: hex ids, string nanos, parents inside the trace, one span per attempt", () => {
    for (const s of scenarios) {
      const events = taskEventsOf(s.events);
      if (events.length === 0) continue;
      const byTrace = new Map<string, TaskEvent[]>();
      for (const e of events) byTrace.set(traceKeyOf(e), [...(byTrace.get(traceKeyOf(e)) ?? []), e]);
      for (const list of byTrace.values()) {
        const { trace } = build(list);
        const ids = new Set(trace.spans.map((x) => x.spanId));
        expect(ids.size, s.file).toBe(trace.spans.length);
        for (const span of trace.spans) {
          expect(span.traceId, s.file).toMatch(/^[0-9a-f]{32}$/);
          expect(span.startTimeUnixNano, s.file).toMatch(/^\d{19}$/);
          if (span.parentSpanId) expect(ids.has(span.parentSpanId), `${s.file} parent`).toBe(true);
          for (const l of span.links) expect(ids.has(l.spanId), `${s.file} link`).toBe(true);
        }
        const [request] = otlpRequests(trace, "svc", 1000);
        if (trace.spans.length) {
          expect(request!.resourceSpans[0]!.resource.attributes).toEqual([
            { key: "service.name", value: { stringValue: "svc" } },
          ]);
          expect(request!.resourceSpans[0]!.scopeSpans[0]!.spans).toHaveLength(trace.spans.length);
        }
      }
    }
  });

  it("splits large traces into requests of at most maxSpans spans", () => {
    const { trace } = build(eventsOf("07_chord"));
    const requests = otlpRequests(trace, "svc", 3);
    expect(requests.map((r) => r.resourceSpans[0]!.scopeSpans[0]!.spans.length)).toEqual([3, 1]);
  });
});
