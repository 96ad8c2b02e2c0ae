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
});
export type TaskEvent = z.infer<typeof TaskEvent>;

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

/** The envelope is checked loosely so that one bad event never costs the rest of the batch. */
export const EventBatch = z.object({ events: z.array(z.unknown()).min(1).max(MAX_EVENTS_PER_BATCH) });

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

/** A short, human explanation of the first zod issue(s), with the path that failed. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => (issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ");
}
