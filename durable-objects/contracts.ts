/**
 * What the objects say to each other: the TraceGraph shards, the Fleet and the index. One file, so
 * no object imports another object's module (types only, no runtime code).
 */
import type { Anomaly, TraceSummary } from "../shared/api";

/** A task as the index keeps it: for the task → trace lookup, search and run statistics. */
export interface IndexedTask {
  trace_id: string;
  task_id: string;
  name: string | null;
  state: string;
  runtime_ms: number | null;
  finished_at: number | null;
  worker: string | null;
}

/**
 * What a TraceGraph shard reports to the index, coalesced (about once per flush interval): the
 * summaries of every trace that changed, the tasks that changed, and anomalies opened or resolved.
 */
export interface IndexReport {
  traces: TraceSummary[];
  tasks: IndexedTask[];
  anomalies: Anomaly[];
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
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
