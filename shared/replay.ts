/**
 * Time-travel replay (`GET /api/traces/:id?at=<epoch seconds>`): the trace as it was at a moment,
 * rebuilt from its stored events. Pure zod + parsing, shared by the Worker and the SPA.
 *
 * The moment is compared with each event's own `ts` (when it happened in the emitting process),
 * not with when stemtrace received it: a replay shows what had happened by then, which is what a
 * user scrubbing a timeline expects. Arrival order is not causal order (producers batch, retry and
 * spool; CELERY.md), so "what stemtrace knew then" would replay the producer's network, not the run.
 */
import { z } from "zod";
import { TaskDetail, TraceSnapshot } from "./api";

/** The earliest and latest moment a replay accepts (1970 … 2286): anything else is a typo or a unit mix-up. */
export const MIN_REPLAY_AT = 0;
export const MAX_REPLAY_AT = 10_000_000_000;
/** How many buckets the event-density strip over the trace's span has. */
export const REPLAY_DENSITY_BUCKETS = 80;

/** Where a moment sits in the trace's events: the slider's span and the steps to the neighbouring events. */
export const ReplayInfo = z.object({
  /** The moment asked for. */
  at: z.number(),
  /** The first and last event time of the trace (seconds): the slider's span. */
  first_event_at: z.number(),
  last_event_at: z.number(),
  events_total: z.number().int(),
  /** Events with `ts <= at`: the ones this snapshot is built from. */
  events_applied: z.number().int(),
  /** The latest event time at or before `at` (the moment the snapshot looks like), null before the first event. */
  current_at: z.number().nullable(),
  /** Step back: the latest event time before `current_at` (null: at most one moment is behind). */
  previous_at: z.number().nullable(),
  /** Step forward: the first event time after `at` (null: nothing happens later). */
  next_at: z.number().nullable(),
  /** Events per equal slice of [first_event_at, last_event_at] (REPLAY_DENSITY_BUCKETS slices). */
  density: z.array(z.number().int()),
});
export type ReplayInfo = z.infer<typeof ReplayInfo>;

/**
 * A replayed snapshot: the same shape as the live one (nodes, containers, edges, summary as the
 * graph rules derive them from the events up to `at`), plus where the moment sits. Anomaly marks
 * are left out (`anomaly: null`, `anomaly_count: 0`): they are judgements the server made on its
 * own clock (a timeout elapsed, a worker went silent), not events of the run.
 */
export const ReplaySnapshot = TraceSnapshot.extend({ replay: ReplayInfo });
export type ReplaySnapshot = z.infer<typeof ReplaySnapshot>;

/**
 * A task's detail as it was at `as_of` (`GET /api/tasks/:taskId?at=`): its events up to then
 * folded as the live detail's are (no result or exception before it finished); its parent's and
 * children's states as of then too. A task with no event by then is a 404 `not_yet_published`.
 */
export const ReplayTaskDetail = TaskDetail.extend({ as_of: z.number() });
export type ReplayTaskDetail = z.infer<typeof ReplayTaskDetail>;

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Parses `?at=`: a finite number of epoch seconds in [MIN_REPLAY_AT, MAX_REPLAY_AT], or why not. */
export function parseReplayAt(raw: string): { at: number } | { error: string } {
  const text = raw.trim();
  if (text === "") return { error: "at is empty: give a moment as epoch seconds, e.g. at=1795334409.03" };
  const at = NUMBER.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(at))
    return {
      error: `at must be a finite number of epoch seconds (e.g. at=1795334409.03), not ${JSON.stringify(raw.slice(0, 40))}`,
    };
  if (at < MIN_REPLAY_AT || at > MAX_REPLAY_AT)
    return {
      error: `at=${text.slice(0, 40)} is out of range: epoch seconds from ${MIN_REPLAY_AT} to ${MAX_REPLAY_AT} (milliseconds? divide by 1000)`,
    };
  return { at };
}
