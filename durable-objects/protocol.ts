/**
 * What the objects say to each other: the TraceGraph shards, the Fleet and the index. One file, so
 * no object imports another object's module (types only, no runtime code).
 */
import type { Anomaly, TaskSort, TraceSummary } from "../shared/api";

/** A task as the index keeps it for the task → trace lookup and search (not its trace's root). */
export interface IndexedTask {
  /** The day partition of its trace (see TraceGraph's partitions). */
  day: number;
  trace_id: string;
  task_id: string;
  name: string | null;
  state: string;
  worker: string | null;
  /** Named by another task's message, not seen itself: never overwrites what the task's own events said. */
  announced?: boolean;
}

/** A run that finished: counted once, when its task first reaches a finished state. */
export interface FinishedRun {
  name: string | null;
  state: string;
  runtime_ms: number | null;
  /**
   * Published (or due, for an ETA) → first started, in ms, clamped at 0 and never below the
   * worker-clock received → started (shared/queue-wait.ts); null when it never started. Optional:
   * a shard running older code during a deploy reports runs without it.
   */
  queue_wait_ms?: number | null;
  finished_at: number;
}

/**
 * What a TraceGraph shard reports to the index, coalesced (about once per flush interval): the
 * summaries of every trace that changed, the changed tasks that are not their trace's root,
 * runs that finished, and anomalies opened or resolved.
 */
export interface IndexReport {
  /** `sort_at`: when the trace was first written (never changes); `day`: its partition. */
  traces: { sort_at: number; day: number; summary: TraceSummary }[];
  tasks: IndexedTask[];
  runs: FinishedRun[];
  anomalies: Anomaly[];
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  /** Events refused by the object (by event id), e.g. a task's events over the row size limit. */
  rejected?: { id: string; error: string }[];
}

/** What the Fleet tells a TraceGraph about one of its workers. */
export interface WorkerChange {
  host: string;
  /** cold shutdown, heartbeats stopped, restarted with a new process, or came back (same process) */
  kind: "cold" | "lost" | "restart" | "back";
  ts: number;
}

/** The live workers as the Fleet sees them: who is online, what they consume and register. */
export interface LiveRegistry {
  online: { hostname: string; queues: string[]; registers: boolean }[];
  /** task name → online workers that register it */
  names: Record<string, string[]>;
}

/** What the Worker asks every shard for one page of the task list (`GET /api/tasks`). */
export interface TaskListQuery {
  sort: TaskSort;
  state?: string;
  name?: string;
  worker?: string;
  queue?: string;
  from?: number;
  to?: number;
  /** The last row of the previous page: (sort key, task id). */
  after?: [number, string];
  limit: number;
}

/**
 * What a TraceGraph shard hands the Webhooks object after a report to the index (webhook-outbox.ts):
 * the anomalies it reported, and the summaries of its traces that failed or have failed tasks (so
 * the object sees a trace leave a failed state as well as enter one). Sent again after a failed
 * call: the object dedupes by event id.
 */
export interface WebhookNotice {
  anomalies: Anomaly[];
  traces: TraceSummary[];
}
