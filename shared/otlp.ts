/**
 * OpenTelemetry export (issue 17): a settled trace as an OTLP/HTTP JSON `ExportTraceServiceRequest`.
 * Pure: the TraceGraph's exporter (durable-objects/otlp-export.ts) and the node tests share it.
 *
 * Mapping (docs/otlp.md):
 * - one span per attempt of a task (each retry or redelivery is an attempt); a task that never
 *   ran (an announced step that is NOT_RUN) has no span;
 * - the span runs from the attempt's publish to its end; queue wait and run time are span events
 *   (`celery.received`, `celery.started`) and attributes (`celery.queue_wait_ms`, `celery.runtime_ms`);
 * - parent: attempt 0's is the attempt of the task its graph edge comes from (the one running when
 *   it was published); a retry's is the attempt before it (Celery publishes a retry from inside the
 *   failing run); a chord callback's is the chord's own parent (the task its header came from; the
 *   graph's rule: a callback's origin is its chord, not whichever header task finished last), and
 *   it links to every header task's last attempt (fan-in);
 * - exceptions are span events as OTel's semantic conventions name them, status ERROR on failure;
 * - ids are derived from the Celery ids, so exporting the same trace again sends the same ids.
 */
import type { AttemptDetail, GraphEdge, GraphNode, TaskState } from "./api";
import type { TraceGraphView } from "./graph";
import { compareTaskEvents, foldAttempts } from "./task-fold";
import { isFailed } from "./states";
import type { TaskEvent } from "./wire";

/** W3C trace context `traceparent` (version 00 layout; later versions may append fields). */
export const TRACEPARENT_PATTERN = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

export interface TraceParent {
  traceId: string;
  spanId: string;
  flags: string;
}

/** A valid `traceparent`, or null (all-zero ids, version ff and version 00 with extra fields are invalid). */
export function parseTraceparent(value: unknown): TraceParent | null {
  if (typeof value !== "string") return null;
  const m = TRACEPARENT_PATTERN.exec(value);
  if (!m) return null;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return null;
  return { traceId, spanId, flags };
}

// ---- ids ----

const utf8 = new TextEncoder();

/**
 * FNV-1a, 64 bits, as 16 hex digits: stable everywhere (ids must not change between exports).
 * Four 16-bit limbs instead of BigInt (no allocation per byte: 10,000 span ids were a GC storm);
 * the prime 0x100000001b3 is 435 in the low limb and 0x100 (a shift by 8) two limbs up.
 */
export function fnv1a64Hex(text: string): string {
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  for (const byte of utf8.encode(text)) {
    h0 ^= byte;
    const t0 = h0 * 435;
    let t1 = h1 * 435;
    let t2 = h2 * 435 + (h0 << 8);
    const t3 = h3 * 435 + (h1 << 8);
    t1 += t0 >>> 16;
    h0 = t0 & 0xffff;
    t2 += t1 >>> 16;
    h1 = t1 & 0xffff;
    h3 = (t3 + (t2 >>> 16)) & 0xffff;
    h2 = t2 & 0xffff;
  }
  const hex = (n: number) => n.toString(16).padStart(4, "0");
  return hex(h3) + hex(h2) + hex(h1) + hex(h0);
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * The OTLP trace id (16 bytes, hex) of a trace key: a UUID (Celery's task ids, so a trace key is
 * usually its root task's id) is used as it is, its 32 hex digits; any other key (a custom
 * `stemtrace.trace("order-42")` key) is hashed (two FNV-1a 64 digests).
 */
export function otlpTraceId(traceKey: string): string {
  if (UUID.test(traceKey)) {
    const hex = traceKey.replace(/-/g, "").toLowerCase();
    if (!/^0+$/.test(hex)) return hex;
  }
  return fnv1a64Hex(`trace\u0000${traceKey}`) + fnv1a64Hex(`trace\u0001${traceKey}`);
}

/** The span id (8 bytes, hex) of one attempt: FNV-1a 64 of task id, retries and delivery. */
export function otlpSpanId(taskId: string, retries: number, delivery: number): string {
  const hex = fnv1a64Hex(`${taskId}\u0000${retries}\u0000${delivery}`);
  return hex === "0000000000000000" ? "0000000000000001" : hex;
}

// ---- OTLP JSON shapes (opentelemetry-proto, JSON encoding: hex ids, int64 as strings, enums as numbers) ----

export type OtlpAnyValue =
  { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}
export interface OtlpEvent {
  timeUnixNano: string;
  name: string;
  attributes: OtlpKeyValue[];
}
export interface OtlpLink {
  traceId: string;
  spanId: string;
  attributes: OtlpKeyValue[];
}
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** SPAN_KIND_CONSUMER: the processing of a message. */
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpKeyValue[];
  events: OtlpEvent[];
  links: OtlpLink[];
  /** Absent: UNSET. `code` 2 = ERROR. */
  status?: { code: number; message?: string };
}
export interface OtlpExportRequest {
  resourceSpans: {
    resource: { attributes: OtlpKeyValue[] };
    scopeSpans: { scope: { name: string; version: string }; spans: OtlpSpan[] }[];
  }[];
}

export const SPAN_KIND_CONSUMER = 5;
export const STATUS_CODE_ERROR = 2;
export const OTLP_SCOPE = { name: "stemtrace", version: "0.1.0" };

/** Unix seconds (float, microsecond precision) → nanoseconds as a decimal string (OTLP's fixed64 in JSON). */
export function unixNano(seconds: number): string {
  const micros = Math.round(seconds * 1e6); // below 2^53 until the year 2255: exact
  return micros <= 0 ? "0" : `${micros}000`;
}

type AttrValue = string | number | boolean | null | undefined;
/** Attributes from a record; null/undefined skipped; integers as intValue, other numbers as doubleValue. */
export function attributes(values: Record<string, AttrValue>): OtlpKeyValue[] {
  const out: OtlpKeyValue[] = [];
  for (const [key, v] of Object.entries(values)) {
    if (v === null || v === undefined) continue;
    if (typeof v === "string") out.push({ key, value: { stringValue: v } });
    else if (typeof v === "boolean") out.push({ key, value: { boolValue: v } });
    else if (Number.isInteger(v)) out.push({ key, value: { intValue: String(v) } });
    else if (Number.isFinite(v)) out.push({ key, value: { doubleValue: v } });
  }
  return out;
}

// ---- the builder ----

export interface OtlpTraceInput {
  /** The stemtrace trace key (the trace's id in the API). */
  traceKey: string;
  /** The trace's graph (shared/graph.ts `buildGraph`). */
  view: TraceGraphView;
  /** Each task's stored events (any order, duplicates allowed). */
  events: ReadonlyMap<string, readonly TaskEvent[]>;
  /** The resource's `service.name`. */
  serviceName: string;
}

interface Attempt extends AttemptDetail {
  spanId: string;
  events: TaskEvent[];
  start: number;
  end: number;
}

const attemptKey = (e: TaskEvent) => `${e.retries ?? 0}:${e.redelivered ? 1 : 0}`;

/** The attempts of a task that has events, with span ids and times; the last one ends as the node does. */
function attemptsOf(node: GraphNode, events: readonly TaskEvent[]): Attempt[] {
  const unique = new Map<string, TaskEvent>();
  for (const e of events) unique.set(e.id, e);
  const sorted = [...unique.values()].sort(compareTaskEvents);
  const folded = foldAttempts(sorted);
  return folded.map(({ name: _name, ...a }, i) => {
    // A worker outage ended the last run (no event says so): it ends as the node does (INTERRUPTED/LOST).
    const outage =
      i === folded.length - 1 &&
      a.state === "STARTED" &&
      (node.state === "INTERRUPTED" || node.state === "LOST");
    const state: TaskState = outage ? node.state : a.state;
    const finished = outage ? node.finished_at : a.finished_at;
    // Events of this attempt (a Task.replace generation shares the key: its exception, if any, shows on both).
    const own = sorted.filter((e) => attemptKey(e) === `${a.retries}:${a.delivery >> 1}`);
    const times = own.map((e) => e.ts);
    const start = a.published_at ?? a.received_at ?? a.started_at ?? (times.length ? Math.min(...times) : 0);
    const end = Math.max(start, finished ?? (times.length ? Math.max(...times) : start));
    return {
      ...a,
      state,
      finished_at: finished,
      spanId: otlpSpanId(node.id, a.retries, a.delivery),
      events: own,
      start,
      end,
    };
  });
}

/** The attempt of `parent` that was running when `at` happened (the last one started by then). */
function attemptAt(parent: readonly Attempt[], at: number | null): Attempt | undefined {
  if (at === null) return parent[parent.length - 1];
  let found: Attempt | undefined;
  for (const a of parent) if ((a.started_at ?? a.start) <= at + 0.001) found = a;
  return found ?? parent[parent.length - 1];
}

/** The first valid `traceparent` a root task (one without a task parent) was published with. */
export function rootTraceparent(input: OtlpTraceInput, parentless: readonly GraphNode[]): TraceParent | null {
  const ordered = [...parentless].sort(
    (a, b) =>
      (a.id === input.traceKey ? 0 : 1) - (b.id === input.traceKey ? 0 : 1) ||
      (a.published_at ?? Infinity) - (b.published_at ?? Infinity),
  );
  for (const node of ordered)
    for (const e of [...(input.events.get(node.id) ?? [])].sort(compareTaskEvents)) {
      const parsed = parseTraceparent(e.traceparent);
      if (parsed) return parsed;
    }
  return null;
}

function exceptionEvents(a: Attempt): [number, OtlpEvent][] {
  const out: [number, OtlpEvent][] = [];
  const seen = new Set<string>();
  for (const e of a.events) {
    if (!e.exception || !(e.type === "failed" || e.type === "internal_error" || e.type === "retried"))
      continue;
    const key = `${e.exception.type}\u0000${e.exception.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push([
      e.ts,
      {
        timeUnixNano: unixNano(e.ts),
        name: "exception",
        attributes: attributes({
          "exception.type": e.exception.type,
          "exception.message": e.exception.message,
          "exception.stacktrace": e.traceback ?? null,
        }),
      },
    ]);
  }
  return out;
}

/** What a trace's export is made of: every span, and the OTLP trace id used. */
export interface OtlpTrace {
  traceId: string;
  /** The remote parent when the root was published with a `traceparent`. */
  parent: TraceParent | null;
  spans: OtlpSpan[];
}

/** Builds the spans of a trace (see the module comment for what maps to what). */
export function buildOtlpTrace(input: OtlpTraceInput): OtlpTrace {
  const { view } = input;
  const nodes = new Map(view.nodes.map((n) => [n.id, n]));
  const attempts = new Map<string, Attempt[]>();
  for (const n of view.nodes) {
    const events = input.events.get(n.id);
    if (events && events.length) attempts.set(n.id, attemptsOf(n, events));
  }
  const chordOfCallback = new Map(
    view.containers.filter((c) => c.kind === "CHORD" && c.callback_id).map((c) => [c.callback_id!, c]),
  );
  const chordOfMember = new Map<string, string>();
  for (const c of view.containers)
    if (c.kind === "CHORD") for (const m of c.members) chordOfMember.set(m, c.id);
  const incoming = new Map<string, GraphEdge>();
  for (const e of view.edges) if (nodes.has(e.source) && !incoming.has(e.target)) incoming.set(e.target, e);

  /** The task a task's span hangs from, and how (edge kind), or null for a root. */
  const parentOf = (node: GraphNode): { id: string; kind: GraphEdge["kind"] } | null => {
    const chord = chordOfCallback.get(node.id);
    if (chord) {
      // The chord's own parent: where its header tasks came from.
      for (const m of chord.members) {
        const edge = incoming.get(m);
        if (edge && attempts.has(edge.source)) return { id: edge.source, kind: "chord" };
      }
      return null;
    }
    const edge = incoming.get(node.id);
    return edge && attempts.has(edge.source) ? { id: edge.source, kind: edge.kind } : null;
  };

  const parents = new Map<string, { id: string; kind: GraphEdge["kind"] } | null>();
  for (const n of view.nodes) if (attempts.has(n.id)) parents.set(n.id, parentOf(n));
  const parentless = view.nodes.filter((n) => attempts.has(n.id) && parents.get(n.id) === null);
  const remote = rootTraceparent(input, parentless);
  const traceId = remote?.traceId ?? otlpTraceId(input.traceKey);

  const spans: OtlpSpan[] = [];
  for (const node of view.nodes) {
    const list = attempts.get(node.id);
    if (!list) continue;
    const parent = parents.get(node.id) ?? null;
    const chord = chordOfCallback.get(node.id);
    const rootId =
      [...(input.events.get(node.id) ?? [])].map((e) => e.root_id).find((r): r is string => !!r) ?? null;
    // Fan-in: the callback links to every header task's last attempt (direct members: a chain in
    // the header is linked through its last step, which carries the group).
    const links: OtlpLink[] = [];
    if (chord) {
      const direct = chord.members.filter((m) => nodes.get(m)?.group_id === chord.id);
      for (const m of direct.length ? direct : chord.members) {
        const last = attempts.get(m)?.at(-1);
        if (!last) continue;
        links.push({
          traceId,
          spanId: last.spanId,
          attributes: attributes({
            "celery.link": "chord_header",
            "celery.task_id": m,
            "celery.group_index": nodes.get(m)?.group_index ?? null,
          }),
        });
      }
    }
    list.forEach((a, i) => {
      let parentSpanId: string | undefined;
      if (i > 0) parentSpanId = list[i - 1]!.spanId;
      else if (parent) parentSpanId = attemptAt(attempts.get(parent.id)!, a.published_at ?? a.start)?.spanId;
      else if (remote) parentSpanId = remote.spanId;
      const queueWait =
        a.started_at !== null
          ? Math.max(0, a.started_at - (a.published_at ?? a.received_at ?? a.started_at))
          : null;
      const timed: [number, OtlpEvent][] = [];
      if (a.received_at !== null)
        timed.push([
          a.received_at,
          {
            timeUnixNano: unixNano(a.received_at),
            name: "celery.received",
            attributes: attributes({ "celery.worker": a.worker }),
          },
        ]);
      if (a.started_at !== null)
        timed.push([
          a.started_at,
          {
            timeUnixNano: unixNano(a.started_at),
            name: "celery.started",
            attributes: attributes({ "celery.worker": a.worker, "process.pid": a.pid }),
          },
        ]);
      timed.push(...exceptionEvents(a));
      const spanEvents = timed.sort((x, y) => x[0] - y[0]).map(([, e]) => e);
      const last = i === list.length - 1;
      const failed = isFailed(a.state);
      const exception = a.exception ?? a.events.find((e) => e.exception)?.exception ?? null;
      spans.push({
        traceId,
        spanId: a.spanId,
        ...(parentSpanId ? { parentSpanId } : {}),
        name: node.name ?? "celery.task",
        kind: SPAN_KIND_CONSUMER,
        startTimeUnixNano: unixNano(a.start),
        endTimeUnixNano: unixNano(a.end),
        attributes: attributes({
          "celery.task_name": node.name,
          "celery.task_id": node.id,
          "celery.queue": node.queue,
          "celery.retries": a.retries,
          "celery.delivery": a.delivery || null,
          "celery.state": a.state,
          "celery.worker": a.worker,
          "celery.group_id": node.group_id,
          "celery.group_index": node.group_index,
          "celery.chord_id": chord?.id ?? chordOfMember.get(node.id) ?? null,
          "celery.root_id": rootId ?? input.traceKey,
          "celery.parent_id": i > 0 ? node.id : node.parent_id,
          "celery.edge": i > 0 ? "retry" : (parent?.kind ?? null),
          "celery.trace_key": input.traceKey,
          "celery.eta": a.eta,
          "celery.queue_wait_ms": queueWait === null ? null : Math.round(queueWait * 1000 * 1000) / 1000,
          "celery.runtime_ms": a.runtime_ms,
          "celery.retry_reason": a.retry_reason,
          "celery.state_reason": last ? node.state_reason : null,
        }),
        events: spanEvents,
        links,
        ...(failed
          ? {
              status: {
                code: STATUS_CODE_ERROR,
                message: exception
                  ? `${exception.type}: ${exception.message}`
                  : (node.state_reason ?? a.state),
              },
            }
          : {}),
      });
    });
  }
  return { traceId, parent: remote, spans };
}

/** The export requests for a trace's spans: at most `maxSpans` spans each. */
export function otlpRequests(trace: OtlpTrace, serviceName: string, maxSpans: number): OtlpExportRequest[] {
  const out: OtlpExportRequest[] = [];
  const size = Math.max(1, Math.floor(maxSpans));
  for (let i = 0; i < trace.spans.length; i += size)
    out.push({
      resourceSpans: [
        {
          resource: { attributes: attributes({ "service.name": serviceName }) },
          scopeSpans: [{ scope: OTLP_SCOPE, spans: trace.spans.slice(i, i + size) }],
        },
      ],
    });
  return out;
}

/**
 * `OTLP_HEADERS` as OTEL_EXPORTER_OTLP_HEADERS writes them: `k=v,k2=v2`, values percent-decoded,
 * blanks trimmed. Throws on an entry without `=` (a misconfiguration should be loud).
 */
export function parseOtlpHeaders(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!value) return out;
  for (const part of value.split(",")) {
    if (!part.trim()) continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`OTLP_HEADERS: "${part.trim()}" is not key=value`);
    const key = part.slice(0, eq).trim();
    let v = part.slice(eq + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch {
      // not percent-encoded: taken as written
    }
    out[key] = v;
  }
  return out;
}
