/**
 * Folds every event of ONE task into its record, independent of arrival order (CELERY.md §4.2, §5):
 * events are sorted by (attempt, lifecycle rank, ts, id) before folding, so any permutation or
 * duplication of the same events gives the same record.
 */
import type { ChainStep, ExceptionInfo, LinkedSignature, TaskEvent, TaskEventType } from "./wire";
import type { AttemptDetail, TaskState } from "./api";
import { isTerminal } from "./states";

/** A worker event that ends the runs on a host: cold shutdown, heartbeat loss, restart. */
export interface Outage {
  host: string;
  kind: "cold" | "lost" | "restart";
  ts: number;
}

/** published < received < started < succeeded/failed/retried < postrun (CELERY.md §5). */
const LIFECYCLE_RANK: Record<TaskEventType, number> = {
  published: 0,
  unknown: 1,
  rejected: 1,
  received: 1,
  started: 2,
  internal_error: 3,
  succeeded: 3,
  failed: 3,
  retried: 3,
  revoked: 4,
  postrun: 5,
};

/** A received ETA this far past receipt makes the task SCHEDULED rather than queued. */
const SCHEDULED_MIN_DELAY_S = 0.5;

export interface AttemptRecord extends AttemptDetail {
  name: string | null;
}

/** What the graph needs of a task: small, stored as JSON in the `tasks` table. */
export interface TaskRecord {
  task_id: string;
  name: string | null;
  /** Every name this id ran under: more than one means `Task.replace` (CELERY.md §4.11). */
  names: string[];
  state: TaskState;
  state_reason: string | null;
  trace_id: string | null;
  root_id: string | null;
  parent_id: string | null;
  group_id: string | null;
  group_index: number | null;
  chord_callback_id: string | null;
  chord_callback_name: string | null;
  /** What runs after the chord callback (wire `chord_callback_chain`). */
  chord_callback_chain?: ChainStep[];
  chain: ChainStep[];
  callbacks: LinkedSignature[];
  errbacks: LinkedSignature[];
  publisher_task_id: string | null;
  retries: number;
  attempt_count: number;
  worker: string | null;
  queue: string | null;
  eta: string | null;
  eager: boolean;
  published_at: number | null;
  received_at: number | null;
  started_at: number | null;
  /** When the current (last) attempt started: what running timeouts and worker outages compare with. */
  last_started_at: number | null;
  finished_at: number | null;
  runtime_ms: number | null;
  exception_type: string | null;
  /** Each run when there was more than one (retries): the waits between them are not running time. */
  runs?: { started_at: number | null; finished_at: number | null; state: TaskState }[];
}

/** The heavy parts, folded on demand for the task-detail view only. */
export interface TaskPayload {
  args: unknown;
  kwargs: unknown;
  result: unknown;
  exception: ExceptionInfo | null;
  traceback: string | null;
}

// The state groups live in states.ts; re-exported for the fold's callers.
export { isBroken, isTerminal } from "./states";

/**
 * How a NOT_RUN task explains itself when what stopped it is another NOT_RUN task: it opens no
 * anomaly of its own, so a stopped chain is one anomaly, at the first step that will not run.
 */
export const NOT_RUN_DOWNSTREAM = "not run:";

function attemptRetries(event: TaskEvent): number {
  return event.retries ?? 0;
}

function deliveryOf(event: TaskEvent): number {
  return event.redelivered ? 1 : 0;
}

/** Total order used everywhere a task's events are folded. */
export function compareTaskEvents(a: TaskEvent, b: TaskEvent): number {
  return (
    attemptRetries(a) - attemptRetries(b) ||
    deliveryOf(a) - deliveryOf(b) ||
    LIFECYCLE_RANK[a.type] - LIFECYCLE_RANK[b.type] ||
    a.ts - b.ts ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

function firstDefined<T>(events: TaskEvent[], pick: (e: TaskEvent) => T | null | undefined): T | null {
  for (const e of events) {
    const value = pick(e);
    if (value !== null && value !== undefined) return value;
  }
  return null;
}

function parseIsoSeconds(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/** The replacement name when this id was `Task.replace`d: a publish from inside itself, same retries, new name. */
function replacementName(events: TaskEvent[]): string | null {
  const publishes = events.filter((e) => e.type === "published");
  for (const p of publishes) {
    const fromItself = p.parent_id === p.task_id || p.publisher_task_id === p.task_id;
    if (!fromItself || !p.name) continue;
    const original = publishes.find(
      (o) => o !== p && attemptRetries(o) === attemptRetries(p) && o.name && o.name !== p.name,
    );
    if (original) return p.name;
  }
  return null;
}

function foldAttempt(events: TaskEvent[], retries: number, delivery: number): AttemptRecord {
  const byType = (type: TaskEventType) => events.filter((e) => e.type === type);
  const first = (type: TaskEventType) => byType(type)[0];
  const published = first("published");
  const received = first("received");
  const started = first("started");
  const succeeded = first("succeeded");
  const failed = first("failed");
  const retried = first("retried");
  const revoked = first("revoked");
  const postrun = first("postrun");
  const unknown = first("unknown");
  const rejected = first("rejected");
  const internalError = first("internal_error");

  let state: TaskState;
  if (revoked) state = "REVOKED";
  else if (failed) state = "FAILURE";
  else if (succeeded) state = "SUCCESS";
  else if (retried) state = "RETRY";
  else if (postrun) {
    const s = postrun.state;
    state = s === null || s === undefined ? "INTERRUPTED" : s === "IGNORED" ? "IGNORED" : s;
  } else if (unknown) state = "UNREGISTERED";
  else if (rejected) state = "REJECTED";
  else if (internalError) state = "FAILURE";
  else if (started) state = "STARTED";
  else if (received) {
    const eta = parseIsoSeconds(received.eta);
    state = eta !== null && eta > received.ts + SCHEDULED_MIN_DELAY_S ? "SCHEDULED" : "RECEIVED";
  } else state = "PENDING";

  const terminalEvent =
    revoked ?? failed ?? succeeded ?? retried ?? postrun ?? unknown ?? rejected ?? internalError;
  const failure = failed ?? internalError;
  const runtime = postrun?.runtime_ms ?? firstDefined(events, (e) => e.runtime_ms);
  return {
    retries,
    delivery,
    name: firstDefined(events, (e) => e.name),
    state,
    worker: (started ?? received ?? terminalEvent)?.host ?? null,
    pid: started?.pid ?? null,
    published_at: published?.ts ?? null,
    received_at: received?.ts ?? null,
    started_at: started?.ts ?? null,
    finished_at: terminalEvent
      ? Math.max(...events.filter((e) => LIFECYCLE_RANK[e.type] >= 3 || e === terminalEvent).map((e) => e.ts))
      : null,
    eta: firstDefined(events, (e) => e.eta),
    runtime_ms: runtime,
    exception: failure?.exception ?? null,
    traceback: failure?.traceback ?? null,
    retry_reason: retried?.reason ?? retried?.exception?.message ?? null,
  };
}

/** Splits a task's sorted events into attempts keyed by (retries, delivery[, replacement]). */
export function foldAttempts(sorted: TaskEvent[]): AttemptRecord[] {
  const replacement = replacementName(sorted);
  const groups = new Map<string, TaskEvent[]>();
  for (const e of sorted) {
    const generation = replacement !== null && e.name === replacement ? 1 : 0;
    const key = `${attemptRetries(e)}:${deliveryOf(e)}:${generation}`;
    const list = groups.get(key);
    if (list) list.push(e);
    else groups.set(key, [e]);
  }
  const attempts: AttemptRecord[] = [];
  for (const [key, events] of groups) {
    const [retries, delivery, generation] = key.split(":").map(Number) as [number, number, number];
    const attempt = foldAttempt(events, retries, delivery * 2 + generation);
    if (replacement !== null && generation === 0 && attempt.state === "IGNORED") attempt.state = "REPLACED";
    attempts.push(attempt);
  }
  attempts.sort((a, b) => a.retries - b.retries || a.delivery - b.delivery);
  return attempts;
}

/**
 * The outage that ended a still-running attempt: a cold shutdown, heartbeat loss or restart of its
 * worker at or after the attempt started. A set, so the fold stays order-independent.
 */
function outageOf(attempt: AttemptRecord | undefined, outages: readonly Outage[]): Outage | null {
  if (!attempt || attempt.state !== "STARTED" || !attempt.worker || attempt.started_at === null) return null;
  let found: Outage | null = null;
  for (const o of outages)
    if (o.host === attempt.worker && o.ts >= attempt.started_at - 0.001 && (!found || o.ts < found.ts))
      found = o;
  return found;
}

const OUTAGE_REASON: Record<Outage["kind"], (host: string) => string> = {
  cold: (host) => `worker ${host} shut down cold (SIGQUIT) while this ran`,
  lost: (host) => `worker ${host} went silent (no heartbeat) while this ran`,
  restart: (host) => `worker ${host} restarted without finishing it`,
};

/**
 * Folds a task's events (any order, duplicates allowed) into its record. `outages` of workers turn
 * a run that can no longer finish into INTERRUPTED (cold shutdown) or LOST; any later event wins.
 */
export function foldTask(
  taskId: string,
  events: readonly TaskEvent[],
  outages: readonly Outage[] = [],
): TaskRecord {
  const unique = new Map<string, TaskEvent>();
  for (const e of events) unique.set(e.id, e);
  const sorted = [...unique.values()].sort(compareTaskEvents);
  const attempts = foldAttempts(sorted);
  const last = attempts[attempts.length - 1];
  const outage = outageOf(last, outages);
  // A retry attempt closed as RETRY while a later attempt exists is history; the last attempt speaks.
  const state: TaskState = outage
    ? outage.kind === "cold"
      ? "INTERRUPTED"
      : "LOST"
    : (last?.state ?? "PENDING");
  const names = [...new Set(sorted.map((e) => e.name).filter((n): n is string => !!n))];
  const replacement = replacementName(sorted);
  const notSelf = (id: string | null | undefined) => (id && id !== taskId ? id : null);
  const startedAts = attempts.map((a) => a.started_at).filter((t): t is number => t !== null);
  const publishedAts = sorted.filter((e) => e.type === "published").map((e) => e.ts);
  const failure = [...attempts].reverse().find((a) => a.exception);
  return {
    task_id: taskId,
    name: replacement ?? last?.name ?? names[0] ?? null,
    names,
    state,
    state_reason: outage ? OUTAGE_REASON[outage.kind](outage.host) : stateReason(state, sorted),
    trace_id: firstDefined(sorted, (e) => e.trace_id),
    root_id: firstDefined(sorted, (e) => e.root_id),
    parent_id: firstDefined(sorted, (e) => notSelf(e.parent_id)),
    group_id: firstDefined(sorted, (e) => e.group_id),
    group_index: firstDefined(sorted, (e) => e.group_index),
    chord_callback_id: firstDefined(sorted, (e) => e.chord_callback_id),
    chord_callback_name: firstDefined(sorted, (e) => e.chord_callback_name),
    chord_callback_chain:
      firstDefined(sorted, (e) =>
        e.chord_callback_chain && e.chord_callback_chain.length ? e.chord_callback_chain : null,
      ) ?? [],
    chain: firstDefined(sorted, (e) => (e.chain && e.chain.length ? e.chain : null)) ?? [],
    callbacks: firstDefined(sorted, (e) => (e.callbacks && e.callbacks.length ? e.callbacks : null)) ?? [],
    errbacks: firstDefined(sorted, (e) => (e.errbacks && e.errbacks.length ? e.errbacks : null)) ?? [],
    publisher_task_id: firstDefined(sorted, (e) => notSelf(e.publisher_task_id)),
    retries: last?.retries ?? 0,
    attempt_count: attempts.length,
    worker: last?.worker ?? null,
    queue: firstDefined(sorted, (e) => e.queue),
    eta: last?.eta ?? null,
    eager: sorted.some((e) => e.eager === true),
    published_at: publishedAts.length ? Math.min(...publishedAts) : null,
    received_at: attempts.find((a) => a.received_at !== null)?.received_at ?? null,
    started_at: startedAts.length ? Math.min(...startedAts) : null,
    last_started_at: last?.started_at ?? null,
    finished_at: outage ? outage.ts : last && isTerminal(state) ? last.finished_at : null,
    runtime_ms: last?.runtime_ms ?? null,
    exception_type: state === "FAILURE" ? (failure?.exception?.type ?? null) : null,
    ...(attempts.length > 1
      ? {
          runs: attempts.map((a, i) =>
            i === attempts.length - 1 && outage
              ? { started_at: a.started_at, finished_at: outage.ts, state }
              : { started_at: a.started_at, finished_at: a.finished_at, state: a.state },
          ),
        }
      : {}),
  };
}

function stateReason(state: TaskState, sorted: TaskEvent[]): string | null {
  switch (state) {
    case "FAILURE": {
      // Celery 5.2.6 can fail again after the task failed, inside its own machinery (an error in
      // on_chord_part_return, recorded 25b): a second failure of the same run, with another error.
      const last = sorted[sorted.length - 1];
      const failures = sorted.filter(
        (e) => e.type === "failed" && attemptRetries(e) === (last ? attemptRetries(last) : 0) && e.exception,
      );
      const distinct = failures.filter(
        (e, i) => failures.findIndex((f) => f.exception!.type === e.exception!.type) === i,
      );
      if (distinct.length < 2) return null;
      const [first, ...later] = distinct;
      return `failed with ${first!.exception!.type}, then Celery itself raised ${later.map((e) => `${e.exception!.type}: ${e.exception!.message}`).join("; ")} (an error inside Celery, e.g. in on_chord_part_return; the result backend keeps the last one)`;
    }
    case "INTERRUPTED":
      return "the run ended without a result (terminated, hard time limit or cold worker shutdown)";
    case "UNREGISTERED":
      return "no worker consuming this queue has this task name registered";
    case "REVOKED": {
      const revoked = sorted.find((e) => e.type === "revoked");
      if (revoked?.expired) return "expired before it could run";
      if (revoked?.terminated) return `terminated while running (signal ${revoked.signum ?? "?"})`;
      return "revoked before it ran";
    }
    case "SCHEDULED":
      return "received with an ETA; waiting for it";
    case "REPLACED":
      return "replaced by another task (Task.replace)";
    default:
      return null;
  }
}

/** The heavy payload of a task, for its detail page. */
export function foldPayload(events: readonly TaskEvent[]): TaskPayload {
  const sorted = [...events].sort(compareTaskEvents);
  const has = (e: TaskEvent, key: "args" | "kwargs" | "result") => e[key] !== undefined;
  const lastFailure = [...sorted].reverse().find((e) => e.type === "failed" || e.type === "internal_error");
  return {
    args: sorted.find((e) => has(e, "args"))?.args ?? null,
    kwargs: sorted.find((e) => has(e, "kwargs"))?.kwargs ?? null,
    result: [...sorted].reverse().find((e) => e.type === "succeeded" && has(e, "result"))?.result ?? null,
    exception: lastFailure?.exception ?? null,
    traceback: lastFailure?.traceback ?? null,
  };
}
