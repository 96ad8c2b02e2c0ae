/**
 * The one place that says what task states mean together: which are finished, which stop what
 * comes after them, which count as failures, and what a set of tasks adds up to. The fold, the
 * graph (containers), snapshots, live deltas, the index's summaries and statistics, and the web's
 * filters all use these, so a trace never has one state in the list and another on its page.
 */
import type { TaskState } from "./api";

const set = (...states: TaskState[]): ReadonlySet<TaskState> => new Set(states);

/** Finished: no event can still move them (a later attempt is a new attempt). */
export const TERMINAL = set(
  "SUCCESS",
  "FAILURE",
  "REVOKED",
  "REJECTED",
  "IGNORED",
  "UNREGISTERED",
  "INTERRUPTED",
  "LOST",
  "NOT_RUN",
  "REPLACED",
);

/** Stop a chain or a chord: what comes after them can no longer run. */
export const BROKEN = set("FAILURE", "REVOKED", "REJECTED", "UNREGISTERED", "INTERRUPTED", "LOST", "NOT_RUN");

/** Counted as failures (a trace's failure count, a task name's failure rate). */
export const FAILED = set("FAILURE", "UNREGISTERED", "INTERRUPTED", "LOST", "REJECTED");

/** A worker is running it (or about to run it again). */
export const RUNNING = set("STARTED", "RETRY");

/** Sent, not started: waiting for a worker, or for its ETA. */
export const WAITING = set("PENDING", "RECEIVED", "SCHEDULED");

export const isTerminal = (state: TaskState): boolean => TERMINAL.has(state);
export const isBroken = (state: TaskState): boolean => BROKEN.has(state);
export const isFailed = (state: TaskState): boolean => FAILED.has(state);

/** How many tasks are in each state. */
export type StateCounts = Partial<Record<TaskState, number>>;

export function countStates(states: Iterable<TaskState>): StateCounts {
  const counts: StateCounts = {};
  for (const s of states) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

/** Every state `summarize` can answer: what a trace, a GROUP or a CHORD can be (the list's filter). */
export const SUMMARY_STATES: readonly TaskState[] = [
  "PENDING",
  "SCHEDULED",
  "RECEIVED",
  "STARTED",
  "SUCCESS",
  "FAILURE",
  "INTERRUPTED",
  "LOST",
  "REVOKED",
];

/**
 * What a set of tasks adds up to, from how many are in each state (SQL `GROUP BY state` gives the
 * same counts as a list of nodes): running while any runs; once all are finished, failed if any
 * broke the flow, else interrupted, lost or revoked if any was, else success.
 */
export function summarize(counts: StateCounts): TaskState {
  const n = (...states: TaskState[]) => states.reduce((sum, s) => sum + (counts[s] ?? 0), 0);
  const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  if (total === 0) return "PENDING";
  const finished = [...TERMINAL].reduce((sum, s) => sum + (counts[s] ?? 0), 0);
  if (finished < total) {
    if (n("STARTED", "RETRY") > 0) return "STARTED";
    if (n("RECEIVED") > 0 || finished > 0) return "RECEIVED";
    if (n("SCHEDULED") > 0) return "SCHEDULED";
    return "PENDING";
  }
  if (n("FAILURE", "NOT_RUN", "UNREGISTERED", "REJECTED") > 0) return "FAILURE";
  if (n("INTERRUPTED") > 0) return "INTERRUPTED";
  if (n("LOST") > 0) return "LOST";
  if (n("REVOKED") > 0) return "REVOKED";
  return "SUCCESS";
}

/** The number of tasks in the FAILED states. */
export function failureCount(counts: StateCounts): number {
  return [...FAILED].reduce((sum, s) => sum + (counts[s] ?? 0), 0);
}
