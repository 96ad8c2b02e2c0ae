/**
 * Wire format v1: what producers POST to `/v1/events` (DESIGN.md, "Wire format v1").
 * Pure zod; exported as JSON Schema by `npm run schema` for producers in other languages.
 */
import { z } from "zod";

export const WIRE_VERSION = 1;
export const MAX_EVENTS_PER_BATCH = 1000;
export const MAX_BATCH_BYTES = 1024 * 1024;

const Id = z.string().min(1).max(200);
const NullableId = Id.nullable().optional();

// ---- ranges (issue 15): a value the server could not store or act on is refused per event ----

/** Timestamps are Unix seconds, from 2000-01-01 ... */
export const MIN_TS = 946_684_800;
/**
 * ... to 2100-01-01 in the schema (a bound that does not move). Ingest also refuses a time more
 * than MAX_TS_AHEAD_S ahead of its own clock (`screenEvent`): a worker dated years ahead would
 * never be marked lost, and its later heartbeats would all look stale.
 */
export const MAX_TS = 4_102_444_800;
export const MAX_TS_AHEAD_S = 86_400;
/** args, kwargs and result nest at most this deep (the Python producer stops at 8; SQLite's JSON at 1000). */
export const MAX_PAYLOAD_DEPTH = 64;
/** A heartbeat interval (seconds) above this is not one (Celery's default is 2). */
export const MAX_HEARTBEAT_FREQ_S = 86_400;
/** A run longer than this (about three years, in ms) is a unit error. */
export const MAX_RUNTIME_MS = 1e11;

/** Why a timestamp is out of range, with the likely unit mistake. */
function tsOutOfRange(value: unknown): string {
  const n = Number(value);
  if (n < MIN_TS) return `${n} is before 2000-01-01: send Unix time in seconds`;
  if (n >= 1e14) return `${n} is in the far future: microseconds or nanoseconds instead of seconds?`;
  if (n >= 1e11) return `${n} is in the far future: milliseconds instead of seconds?`;
  return `${n} is after 2100-01-01: send Unix time in seconds`;
}

const Timestamp = z
  .number()
  .min(MIN_TS, { error: (issue) => tsOutOfRange(issue.input) })
  .max(MAX_TS, { error: (issue) => tsOutOfRange(issue.input) });

/** A task named in another task's message before it exists (chain step, chord callback, group member). */
export const AnnouncedTask = z.object({
  task_id: Id,
  name: z.string().min(1).max(300),
});
export type AnnouncedTask = z.infer<typeof AnnouncedTask>;

/**
 * One pre-announced chain step, in execution order. A plain task step, or a group step
 * (`celery.group` with its real id, 09d) optionally with a chord body (`celery.chord`, whose
 * own signature id is never a real task, 09a: the group id is then learned from its members).
 */
export const ChainStep = z.union([
  AnnouncedTask.extend({
    group_id: NullableId,
    group_index: z.number().int().nonnegative().nullable().optional(),
  }),
  z.object({
    group_id: Id.nullable(),
    tasks: z.array(AnnouncedTask).max(10_000),
    chord_callback: AnnouncedTask.nullable().optional(),
  }),
]);
export type ChainStep = z.infer<typeof ChainStep>;

/** A link callback / errback signature. Celery 5.2 assigns no id to these until they run. */
export const LinkedSignature = z.object({
  name: z.string().min(1).max(300),
  task_id: Id.nullable().optional(),
});
export type LinkedSignature = z.infer<typeof LinkedSignature>;

export const TaskEventType = z.enum([
  "published",
  "received",
  "started",
  "succeeded",
  "failed",
  "retried",
  "revoked",
  "rejected",
  "unknown",
  "internal_error",
  "postrun",
]);
export type TaskEventType = z.infer<typeof TaskEventType>;

/** `task_postrun`'s state; `null` means the run was interrupted (terminate, hard limit, cold shutdown). */
export const PostrunState = z.enum(["SUCCESS", "FAILURE", "RETRY", "REJECTED", "IGNORED"]).nullable();

export const ExceptionInfo = z.object({
  type: z.string().max(300),
  message: z.string().max(100_000),
});
export type ExceptionInfo = z.infer<typeof ExceptionInfo>;

const EventBase = z.object({
  v: z.literal(WIRE_VERSION),
  id: Id,
  ts: Timestamp,
  seq: z.number().int().nonnegative(),
  host: z.string().max(300).nullable(),
  pid: z.number().int().nonnegative().nullable().optional(),
});

/** A Celery task signal turned into an event. Only `task_id`, `name` and `trace_id` are always meaningful. */
export const TaskEvent = EventBase.extend({
  kind: z.literal("task"),
  type: TaskEventType,
  task_id: Id,
  name: z.string().max(300).nullable(),
  trace_id: NullableId,
  root_id: NullableId,
  parent_id: NullableId,
  group_id: NullableId,
  group_index: z.number().int().nonnegative().nullable().optional(),
  retries: z.number().int().nonnegative().nullable().optional(),
  chord_callback_id: NullableId,
  chord_callback_name: z.string().max(300).nullable().optional(),
  /**
   * The chain steps that run after the chord callback, in execution order: a chord followed by more
   * steps (its body is a `celery.chain`, 25a) or a callback followed by another chord (25c). Carried
   * by the header tasks' messages, so the steps are known even when the callback never runs.
   */
  chord_callback_chain: z.array(ChainStep).max(10_000).nullable().optional(),
  chain: z.array(ChainStep).max(10_000).nullable().optional(),
  callbacks: z.array(LinkedSignature).max(1000).nullable().optional(),
  errbacks: z.array(LinkedSignature).max(1000).nullable().optional(),
  queue: z.string().max(300).nullable().optional(),
  eta: z.string().max(64).nullable().optional(),
  expires: z.string().max(64).nullable().optional(),
  redelivered: z.boolean().nullable().optional(),
  eager: z.boolean().nullable().optional(),
  args: z.unknown().optional(),
  kwargs: z.unknown().optional(),
  result: z.unknown().optional(),
  exception: ExceptionInfo.nullable().optional(),
  traceback: z.string().max(200_000).nullable().optional(),
  state: PostrunState.optional(),
  runtime_ms: z
    .number()
    .nonnegative()
    .max(MAX_RUNTIME_MS, {
      error: (issue) =>
        `${String(issue.input)} ms is over three years: microseconds instead of milliseconds?`,
    })
    .nullable()
    .optional(),
  terminated: z.boolean().nullable().optional(),
  signum: z.number().int().nullable().optional(),
  expired: z.boolean().nullable().optional(),
  publisher_task_id: NullableId,
  /** `task_retry`: why, and when the next attempt is due (ISO-8601). */
  reason: z.string().max(100_000).nullable().optional(),
  next_eta: z.string().max(64).nullable().optional(),
  /**
   * On an attempt's end event that also stands for its `received` and/or `started` events, which
   * the producer did not send because the task ended first: when those happened. Ingest expands
   * such an event back into the events it stands for (`expandCoalesced`).
   */
  received_ts: Timestamp.optional(),
  started_ts: Timestamp.optional(),
  /**
   * On `published`: the W3C `traceparent` the publisher was called under (an HTTP request's trace),
   * so the OpenTelemetry export joins that trace (shared/otlp.ts). Lowercase hex, as W3C requires.
   */
  traceparent: z
    .string()
    .max(512)
    .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?$/, {
      error: "not a W3C traceparent (version-traceid-parentid-flags, lowercase hex)",
    })
    .nullable()
    .optional(),
});
export type TaskEvent = z.infer<typeof TaskEvent>;

/** What the message said (links, arguments, announcements): carried by `received`, not by `started` or the end. */
export const MESSAGE_FIELDS = [
  "root_id",
  "parent_id",
  "group_id",
  "group_index",
  "eta",
  "expires",
  "args",
  "kwargs",
  "chain",
  "callbacks",
  "errbacks",
  "chord_callback_id",
  "chord_callback_name",
  "chord_callback_chain",
] as const;
/** What the run produced: carried by the end event only. */
const OUTCOME_FIELDS = ["state", "runtime_ms", "result", "exception", "traceback"] as const;

function without(e: TaskEvent, keys: readonly string[]): TaskEvent {
  const out: Record<string, unknown> = { ...e };
  for (const k of keys) delete out[k];
  return out as TaskEvent;
}

/**
 * A coalesced end event (`received_ts` / `started_ts`) → the events it stands for, in lifecycle
 * order: `received` (the attempt and the message's fields), `started` (the attempt), the end event
 * (the attempt and the outcome). Their ids are derived from its id, so a batch sent twice still
 * dedupes. Any other event → itself.
 */
export function expandCoalesced(e: TaskEvent): TaskEvent[] {
  if (e.received_ts === undefined && e.started_ts === undefined) return [e];
  const { received_ts, started_ts, ...end } = e;
  const out: TaskEvent[] = [];
  if (received_ts !== undefined)
    out.push({ ...without(end, OUTCOME_FIELDS), id: `${e.id}:received`, type: "received", ts: received_ts });
  if (started_ts !== undefined)
    out.push({
      ...without(end, [...OUTCOME_FIELDS, ...MESSAGE_FIELDS]),
      id: `${e.id}:started`,
      type: "started",
      ts: started_ts,
    });
  out.push(without(end, MESSAGE_FIELDS));
  return out;
}

export const RegisteredTask = z.object({
  name: z.string().min(1).max(300),
  module: z.string().max(300).nullable().optional(),
  signature: z.string().max(2000).nullable().optional(),
  doc: z.string().max(10_000).nullable().optional(),
});
export type RegisteredTask = z.infer<typeof RegisteredTask>;

export const WorkerEventType = z.enum(["online", "heartbeat", "shutting_down", "offline"]);
export type WorkerEventType = z.infer<typeof WorkerEventType>;

/** Worker lifecycle, keyed by node name (`host`). */
export const WorkerEvent = EventBase.extend({
  kind: z.literal("worker"),
  type: WorkerEventType,
  host: z.string().min(1).max(300),
  registered: z.array(RegisteredTask).max(10_000).nullable().optional(),
  concurrency: z.number().int().nonnegative().nullable().optional(),
  pool: z.string().max(100).nullable().optional(),
  queues: z.array(z.string().max(300)).max(1000).nullable().optional(),
  sw_ver: z.string().max(100).nullable().optional(),
  how: z.enum(["warm", "cold"]).nullable().optional(),
  active: z.array(Id).max(10_000).nullable().optional(),
  freq: z
    .number()
    .positive()
    .max(MAX_HEARTBEAT_FREQ_S, {
      error: (issue) =>
        `${String(issue.input)} s is not a heartbeat interval (at most ${MAX_HEARTBEAT_FREQ_S} s)`,
    })
    .nullable()
    .optional(),
});
export type WorkerEvent = z.infer<typeof WorkerEvent>;

export const Event = z.discriminatedUnion("kind", [TaskEvent, WorkerEvent]);
export type Event = z.infer<typeof Event>;

/**
 * What a producer process says about itself on the batches it sends (optional): the events it has
 * lost so far, cumulative, by reason (`queue_full`, `buffer_full`, `spool_full`, `rejected`,
 * `unencodable`, `exit`). Sent only once it has lost any. `process` tells apart processes that
 * reuse a pid (a restarted container's worker); `host` is the worker's node name, null in a client.
 */
export const ProducerReport = z.object({
  host: z.string().max(300).nullable(),
  pid: z.number().int().nonnegative().nullable().optional(),
  process: z.string().max(64).optional(),
  dropped: z.record(z.string().min(1).max(64), z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
});
export type ProducerReport = z.infer<typeof ProducerReport>;

/**
 * The envelope is checked loosely so that one bad event never costs the rest of the batch (nor does
 * a `producer` report it cannot read: parse it with `ProducerReport` and ignore it when invalid).
 */
export const EventBatch = z.object({
  events: z.array(z.unknown()).min(1).max(MAX_EVENTS_PER_BATCH),
  producer: z.unknown().optional(),
});

export const RejectedEvent = z.object({ index: z.number().int().nonnegative(), error: z.string() });
export type RejectedEvent = z.infer<typeof RejectedEvent>;

export const IngestResponse = z.object({
  accepted: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  rejected: z.array(RejectedEvent),
  /**
   * Events that were valid but not stored because the object holding them failed (the response
   * is then a 503): send the batch again. Absent when everything valid was stored.
   */
  failed: z.array(RejectedEvent).optional(),
});
export type IngestResponse = z.infer<typeof IngestResponse>;

/** Which TraceGraph a task event belongs to (DESIGN.md, "The trace key"). */
export function traceKeyOf(event: Pick<TaskEvent, "trace_id" | "root_id" | "task_id">): string {
  return event.trace_id ?? event.root_id ?? event.task_id;
}

/**
 * A check that accepts a value only when `schema.safeParse(value)` would succeed AND give back a
 * deep-equal copy of it (so no unknown keys to strip, at any depth). It is read off the zod schema
 * itself, so it cannot drift from it; any construct it does not know, or any doubt, answers false.
 * zod cannot compile its fast path in Workers (no `new Function`), and its interpreted path costs
 * about 10 µs an event there; this costs well under one. It never rejects: callers fall back to zod
 * for the answer and for the error message.
 */
export function exactMatcher(schema: z.ZodType): (value: unknown) => boolean {
  type Def = { type: string; [key: string]: unknown };
  type Check = {
    check: string;
    minimum?: number;
    maximum?: number;
    value?: number;
    inclusive?: boolean;
    format?: string;
  };
  const never = () => false;
  const defOf = (s: unknown): Def => (s as { _zod: { def: Def } })._zod.def;
  const checksOf = (def: Def): Check[] | null => {
    const checks = (def.checks as { _zod: { def: Check } }[] | undefined) ?? [];
    return checks.map((c) => c._zod.def);
  };
  const lengthCheck = (checks: Check[]): ((n: number) => boolean) | null => {
    let min = 0;
    let max = Infinity;
    for (const c of checks) {
      if (c.check === "min_length" && typeof c.minimum === "number") min = Math.max(min, c.minimum);
      else if (c.check === "max_length" && typeof c.maximum === "number") max = Math.min(max, c.maximum);
      else return null;
    }
    return (n) => n >= min && n <= max;
  };
  const compile = (s: unknown): ((value: unknown) => boolean) => {
    const def = defOf(s);
    const checks = checksOf(def);
    if (!checks) return never;
    switch (def.type) {
      case "string": {
        const length = lengthCheck(checks);
        if (!length) return never;
        return (v) => typeof v === "string" && length(v.length);
      }
      case "number": {
        const tests: ((n: number) => boolean)[] = [];
        for (const c of checks) {
          if (c.check === "number_format" && c.format === "safeint") tests.push(Number.isSafeInteger);
          else if (c.check === "greater_than" && typeof c.value === "number") {
            const bound = c.value;
            tests.push(c.inclusive ? (n) => n >= bound : (n) => n > bound);
          } else if (c.check === "less_than" && typeof c.value === "number") {
            const bound = c.value;
            tests.push(c.inclusive ? (n) => n <= bound : (n) => n < bound);
          } else return never;
        }
        return (v) => typeof v === "number" && Number.isFinite(v) && tests.every((t) => t(v));
      }
      case "boolean":
        return checks.length ? never : (v) => typeof v === "boolean";
      case "unknown":
        return checks.length ? never : () => true;
      case "literal": {
        const values = def.values as unknown[];
        return checks.length ? never : (v) => values.includes(v);
      }
      case "enum": {
        const values = new Set(Object.values(def.entries as Record<string, unknown>));
        return checks.length ? never : (v) => values.has(v);
      }
      case "nullable": {
        const inner = compile(def.innerType);
        return checks.length ? never : (v) => v === null || inner(v);
      }
      case "optional": {
        const inner = compile(def.innerType);
        return checks.length ? never : (v) => v === undefined || inner(v);
      }
      case "array": {
        const element = compile(def.element);
        const length = lengthCheck(checks);
        if (!length) return never;
        return (v) => {
          if (!Array.isArray(v) || !length(v.length)) return false;
          for (let i = 0; i < v.length; i++) if (!element(v[i])) return false; // holes too, as zod does
          return true;
        };
      }
      case "object": {
        if (checks.length || def.catchall !== undefined) return never;
        const shape = def.shape as Record<string, unknown>;
        const fields = new Map(
          Object.entries(shape).map(([key, field]) => [
            key,
            { optional: defOf(field).type === "optional", test: compile(field) },
          ]),
        );
        const required = [...fields].filter(([, f]) => !f.optional).map(([key]) => key);
        return (v) => {
          if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
          const record = v as Record<string, unknown>;
          for (const key of required) if (!Object.prototype.hasOwnProperty.call(record, key)) return false;
          for (const key in record) {
            if (!Object.prototype.hasOwnProperty.call(record, key)) return false;
            const field = fields.get(key);
            if (!field || !field.test(record[key])) return false; // an unknown key would be stripped: not exact
          }
          return true;
        };
      }
      case "union": {
        if (checks.length) return never;
        // zod keeps the first option that succeeds; an option may only answer for the value when
        // every earlier one certainly fails (a required key missing, or a literal that differs).
        const options = (def.options as unknown[]).map((option) => ({
          test: compile(option),
          fails: certainlyFails(option),
        }));
        return (v) => {
          for (const option of options) {
            if (option.test(v)) return true;
            if (!option.fails(v)) return false;
          }
          return false;
        };
      }
      default:
        return never;
    }
  };
  const certainlyFails = (s: unknown): ((value: unknown) => boolean) => {
    const def = defOf(s);
    if (def.type !== "object") return never;
    const entries = Object.entries(def.shape as Record<string, unknown>).map(([key, field]) => ({
      key,
      def: defOf(field),
    }));
    const required = entries.filter((e) => e.def.type !== "optional").map((e) => e.key);
    const literals = entries
      .filter((e) => e.def.type === "literal")
      .map((e) => ({ key: e.key, values: e.def.values as unknown[] }));
    return (v) => {
      if (typeof v !== "object" || v === null || Array.isArray(v)) return true;
      const record = v as Record<string, unknown>;
      return (
        required.some((key) => !Object.prototype.hasOwnProperty.call(record, key)) ||
        literals.some(
          (l) => Object.prototype.hasOwnProperty.call(record, l.key) && !l.values.includes(record[l.key]),
        )
      );
    };
  };
  return compile(schema);
}

const isExactEvent = exactMatcher(Event);

/**
 * `Event.safeParse`, with the same answers and error messages, but without zod's cost for the
 * common case of an event that is valid as sent (the value itself is returned then).
 */
export function parseEvent(
  value: unknown,
): { success: true; data: Event } | { success: false; error: z.ZodError } {
  if (isExactEvent(value)) return { success: true, data: value as Event };
  const parsed = Event.safeParse(value);
  return parsed.success ? { success: true, data: parsed.data } : { success: false, error: parsed.error };
}

/** A short, human explanation of the first zod issue(s), with the path that failed. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => (issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ");
}

// ---- per-event screening after the schema (issue 15): what zod cannot say cheaply ----

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, "g");
/** In JSON text decoded from UTF-8, a lone surrogate can only come from a `\uD8xx`..`\uDFxx` escape. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;

/** Whether a JSON text may hold a lone surrogate at all (a cheap test that skips the walk for most batches). */
export function mayHoldSurrogates(jsonText: string): boolean {
  return SURROGATE_ESCAPE.test(jsonText);
}

/** Fields of free data and text whose lone surrogates are replaced by U+FFFD (ids and names are refused instead). */
const NORMALISED_FIELDS = new Set(["args", "kwargs", "result", "exception", "traceback", "reason"]);
const PAYLOAD_FIELDS = ["args", "kwargs", "result"] as const;

/** Whether a JSON value nests deeper than `limit` (a scalar is depth 0, `[]` depth 1). Stops early. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (limit <= 0) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (nestsDeeperThan(item, limit - 1)) return true;
    return false;
  }
  for (const key in value)
    if (nestsDeeperThan((value as Record<string, unknown>)[key], limit - 1)) return true;
  return false;
}

/** The path of the first string (or key) that holds a lone surrogate, or null. */
function findLoneSurrogate(value: unknown, path: string): string | null {
  if (typeof value === "string") return LONE_SURROGATE.test(value) ? path : null;
  if (typeof value !== "object" || value === null) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findLoneSurrogate(value[i], `${path}.${i}`);
      if (found) return found;
    }
    return null;
  }
  for (const key in value) {
    if (LONE_SURROGATE.test(key)) return `${path} (a key)`;
    const found = findLoneSurrogate((value as Record<string, unknown>)[key], `${path}.${key}`);
    if (found) return found;
  }
  return null;
}

/** The value with every lone surrogate (in strings and keys) replaced by U+FFFD; the same value when none. */
function wellFormed<T>(value: T): T {
  if (typeof value === "string")
    return (LONE_SURROGATE.test(value) ? value.replace(LONE_SURROGATES, "\uFFFD") : value) as T;
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    value.forEach((item, i) => {
      const fixed = wellFormed(item);
      if (fixed !== item) (out ??= [...value])[i] = fixed;
    });
    return (out ?? value) as T;
  }
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const k = wellFormed(key);
    const fixed = wellFormed(item);
    if (k !== key || fixed !== item) changed = true;
    out[k] = fixed;
  }
  return (changed ? out : value) as T;
}

function describeAhead(seconds: number): string {
  const days = seconds / 86_400;
  return days >= 365
    ? `${Math.round(days / 365)} years`
    : days >= 2
      ? `${Math.round(days)} days`
      : `${Math.round(seconds / 3600)} hours`;
}

/**
 * What the schema leaves to ingest, per event: times more than a day ahead of `nowS`, args /
 * kwargs / result nested deeper than MAX_PAYLOAD_DEPTH, lone UTF-16 surrogates (refused in ids,
 * names and every other field; replaced by U+FFFD in args, kwargs, result, exception, traceback
 * and reason). `mayHaveSurrogates: false` skips the surrogate walk (see `mayHoldSurrogates`).
 * Returns the event to store (normalised when needed) or why it is refused.
 */
export function screenEvent(
  event: Event,
  nowS: number,
  mayHaveSurrogates = true,
): { ok: true; event: Event } | { ok: false; error: string } {
  const latest = nowS + MAX_TS_AHEAD_S;
  const times: [string, number | undefined][] =
    event.kind === "task"
      ? [
          ["ts", event.ts],
          ["received_ts", event.received_ts],
          ["started_ts", event.started_ts],
        ]
      : [["ts", event.ts]];
  for (const [field, ts] of times)
    if (ts !== undefined && ts > latest)
      return {
        ok: false,
        error: `${field}: ${ts} is ${describeAhead(ts - nowS)} ahead of the server's clock (${new Date(nowS * 1000).toISOString()}): is the producer's clock right, or is it milliseconds?`,
      };
  if (event.kind === "task")
    for (const field of PAYLOAD_FIELDS)
      if (nestsDeeperThan(event[field], MAX_PAYLOAD_DEPTH))
        return {
          ok: false,
          error: `${field}: nested deeper than ${MAX_PAYLOAD_DEPTH} levels; send shallower data (the Python producer cuts at 8)`,
        };
  if (!mayHaveSurrogates) return { ok: true, event };
  let out: Record<string, unknown> | null = null;
  for (const [key, value] of Object.entries(event)) {
    if (NORMALISED_FIELDS.has(key)) {
      const fixed = wellFormed(value);
      if (fixed !== value) (out ??= { ...event })[key] = fixed;
      continue;
    }
    const found = findLoneSurrogate(value, key);
    if (found)
      return {
        ok: false,
        error: `${found}: holds a lone UTF-16 surrogate (invalid Unicode); ids, names and hosts must be valid Unicode text`,
      };
  }
  return { ok: true, event: (out ?? event) as Event };
}
