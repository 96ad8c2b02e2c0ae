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
  AnnouncedTask.extend({ group_id: NullableId, group_index: z.number().int().nonnegative().nullable().optional() }),
  z.object({
    group_id: Id.nullable(),
    tasks: z.array(AnnouncedTask).max(10_000),
    chord_callback: AnnouncedTask.nullable().optional(),
  }),
]);
export type ChainStep = z.infer<typeof ChainStep>;

/** A link callback / errback signature. Celery 5.2 assigns no id to these until they run. */
export const LinkedSignature = z.object({ name: z.string().min(1).max(300), task_id: Id.nullable().optional() });
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
  ts: z.number().finite().nonnegative(),
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
  runtime_ms: z.number().finite().nonnegative().nullable().optional(),
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
  received_ts: z.number().finite().nonnegative().optional(),
  started_ts: z.number().finite().nonnegative().optional(),
});
export type TaskEvent = z.infer<typeof TaskEvent>;

/** What the message said (links, arguments, announcements): carried by `received`, not by `started` or the end. */
export const MESSAGE_FIELDS = [
  "root_id", "parent_id", "group_id", "group_index", "eta", "expires", "args", "kwargs",
  "chain", "callbacks", "errbacks", "chord_callback_id", "chord_callback_name",
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
  if (received_ts !== undefined) out.push({ ...without(end, OUTCOME_FIELDS), id: `${e.id}:received`, type: "received", ts: received_ts });
  if (started_ts !== undefined) out.push({ ...without(end, [...OUTCOME_FIELDS, ...MESSAGE_FIELDS]), id: `${e.id}:started`, type: "started", ts: started_ts });
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
  freq: z.number().finite().positive().nullable().optional(),
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
  type Check = { check: string; minimum?: number; maximum?: number; value?: number; inclusive?: boolean; format?: string };
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
        const fields = new Map(Object.entries(shape).map(([key, field]) => [key, { optional: defOf(field).type === "optional", test: compile(field) }]));
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
        const options = (def.options as unknown[]).map((option) => ({ test: compile(option), fails: certainlyFails(option) }));
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
    const entries = Object.entries(def.shape as Record<string, unknown>).map(([key, field]) => ({ key, def: defOf(field) }));
    const required = entries.filter((e) => e.def.type !== "optional").map((e) => e.key);
    const literals = entries.filter((e) => e.def.type === "literal").map((e) => ({ key: e.key, values: e.def.values as unknown[] }));
    return (v) => {
      if (typeof v !== "object" || v === null || Array.isArray(v)) return true;
      const record = v as Record<string, unknown>;
      return (
        required.some((key) => !Object.prototype.hasOwnProperty.call(record, key)) ||
        literals.some((l) => Object.prototype.hasOwnProperty.call(record, l.key) && !l.values.includes(record[l.key]))
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
export function parseEvent(value: unknown): { success: true; data: Event } | { success: false; error: z.ZodError } {
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
