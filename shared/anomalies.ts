/**
 * Anomaly rules (issue "Workers and anomalies"): which condition of a task is an anomaly, when a
 * time-based one becomes due, and the words a person reads. Pure: the TraceGraph applies them,
 * node tests check them.
 *
 * Two families:
 * - state anomalies open as soon as the folded state says so (UNREGISTERED, INTERRUPTED, LOST,
 *   NOT_RUN);
 * - watches are deadlines: a task PENDING, RECEIVED/SCHEDULED or STARTED for longer than its
 *   timeout. The TraceGraph keeps one deadline row per watched task and re-derives it on every
 *   re-fold, so a watch follows the task's state without bookkeeping of its own.
 */
import type { AnomalyKind } from "./api";
import { NOT_RUN_DOWNSTREAM, type TaskRecord } from "./task-fold";

// The fold takes outages as input: the type lives with it (no import cycle), re-exported here.
export type { Outage } from "./task-fold";

export interface AnomalyConfig {
  /** Published and not received after this long: stuck pending. */
  pendingS: number;
  /** Received (or past its ETA) and not started after this long: stuck received / scheduled. */
  receivedS: number;
  /** Running longer than this (no override, too little history): stuck started. */
  startedS: number;
  /** Per task name overrides of the running timeout, seconds. */
  startedByName: Record<string, number>;
  /** With history: timeout = max(floor, p99 × factor). */
  startedFactor: number;
  startedFloorS: number;
  /** Finished runs of a name needed before its own p99 is trusted. */
  historyMinRuns: number;
  /** How long after a publish the live workers' registries are checked for its name. */
  registeredGraceS: number;
}

export const DEFAULT_ANOMALY_CONFIG: AnomalyConfig = {
  pendingS: 300,
  receivedS: 300,
  startedS: 3600,
  startedByName: {},
  startedFactor: 3,
  startedFloorS: 60,
  historyMinRuns: 20,
  registeredGraceS: 3,
};

/** Reads the config from Worker vars (strings); bad values fall back to the defaults. */
export function anomalyConfigFrom(vars: Record<string, string | undefined>): AnomalyConfig {
  const num = (key: string, fallback: number) => {
    const raw = vars[key];
    const n = raw === undefined || raw === "" ? NaN : Number(raw);
    return Number.isFinite(n) && n >= 0 ? n : fallback;
  };
  let byName: Record<string, number> = {};
  try {
    const parsed: unknown = JSON.parse(vars.STUCK_STARTED_BY_NAME || "{}");
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
      byName = Object.fromEntries(
        Object.entries(parsed).filter((kv): kv is [string, number] => typeof kv[1] === "number" && kv[1] > 0),
      );
  } catch {
    // a malformed override map is ignored rather than breaking detection
  }
  const d = DEFAULT_ANOMALY_CONFIG;
  return {
    pendingS: num("STUCK_PENDING_S", d.pendingS),
    receivedS: num("STUCK_RECEIVED_S", d.receivedS),
    startedS: num("STUCK_STARTED_S", d.startedS),
    // Without a prototype: a task named "constructor" must find no override (not Object's function).
    startedByName: Object.assign(Object.create(null) as Record<string, number>, byName),
    startedFactor: num("STUCK_STARTED_FACTOR", d.startedFactor),
    startedFloorS: num("STUCK_STARTED_FLOOR_S", d.startedFloorS),
    historyMinRuns: num("STUCK_STARTED_HISTORY_RUNS", d.historyMinRuns),
    registeredGraceS: num("UNREGISTERED_GRACE_S", d.registeredGraceS),
  };
}

/** The time-based checks. `check_registered` is a one-off look at the live workers' registries. */
export type WatchKind = "check_registered" | "stuck_pending" | "stuck_received" | "stuck_started";

export interface Watch {
  kind: WatchKind;
  due_at: number;
}

/** ETA of a task as epoch seconds, or null. */
export function etaSeconds(record: Pick<TaskRecord, "eta">): number | null {
  if (!record.eta) return null;
  const ms = Date.parse(record.eta);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/**
 * The one deadline a task needs now, from its folded state, or null (finished, eager, placeholder).
 * `now` stands in for a missing receive time.
 */
export function watchFor(record: TaskRecord, config: AnomalyConfig, now: number): Watch | null {
  if (record.eager) return null;
  switch (record.state) {
    case "PENDING": {
      if (record.published_at === null) return null; // announced only: waits for its upstream
      // The registry check comes first (at once if the events arrived late); its handler then arms
      // the stuck-pending watch. Re-folding a still-pending task checks again, which is harmless.
      const check = record.published_at + config.registeredGraceS;
      const stuck = record.published_at + config.pendingS;
      return check < stuck
        ? { kind: "check_registered", due_at: check }
        : { kind: "stuck_pending", due_at: stuck };
    }
    case "RECEIVED":
    case "SCHEDULED": {
      const from = Math.max(record.received_at ?? record.published_at ?? now, etaSeconds(record) ?? 0);
      return { kind: "stuck_received", due_at: from + config.receivedS };
    }
    case "STARTED": {
      const start = record.last_started_at ?? record.started_at;
      if (start === null) return null;
      return { kind: "stuck_started", due_at: start + provisionalStartedTimeout(record.name, config) };
    }
    default:
      return null;
  }
}

/** The earliest the running timeout can be: exact with an override, else the smaller of floor and global. */
function provisionalStartedTimeout(name: string | null, config: AnomalyConfig): number {
  const override = name ? config.startedByName[name] : undefined;
  return override ?? Math.min(config.startedFloorS, config.startedS);
}

/** Runtime history of a task name, from the index. */
export interface RuntimeProfile {
  runs: number;
  p99_ms: number | null;
}

/** The running timeout of a task name and why: override, own history (p99 × factor), or global. */
export function startedTimeout(
  name: string | null,
  config: AnomalyConfig,
  profile: RuntimeProfile | null,
): { seconds: number; basis: string } {
  const override = name ? config.startedByName[name] : undefined;
  if (override !== undefined)
    return { seconds: override, basis: "configured for this task (STUCK_STARTED_BY_NAME)" };
  if (profile && profile.runs >= config.historyMinRuns && profile.p99_ms !== null) {
    const derived = (profile.p99_ms / 1000) * config.startedFactor;
    return derived > config.startedFloorS
      ? {
          seconds: derived,
          basis: `${config.startedFactor} × the p99 of its last ${profile.runs} runs (${formatSeconds(profile.p99_ms / 1000)})`,
        }
      : {
          seconds: config.startedFloorS,
          basis: `the floor STUCK_STARTED_FLOOR_S (its p99 over ${profile.runs} runs is ${formatSeconds(profile.p99_ms / 1000)})`,
        };
  }
  return {
    seconds: config.startedS,
    basis: "the global STUCK_STARTED_S (too few finished runs to use its own history)",
  };
}

/** The anomaly a task's state is in by itself, or null. */
export function stateAnomalyKind(record: Pick<TaskRecord, "state" | "state_reason">): AnomalyKind | null {
  switch (record.state) {
    case "UNREGISTERED":
      return "unregistered";
    case "INTERRUPTED":
      return "interrupted";
    case "LOST":
      return "lost";
    case "NOT_RUN":
      if (record.state_reason?.startsWith(NOT_RUN_DOWNSTREAM)) return null; // the stop is reported upstream
      return record.state_reason?.startsWith("chord header") ? "chord_never_fired" : "chain_stopped";
    default:
      return null;
  }
}

/** Whether an open anomaly of this kind still holds for the task's current state. */
export function anomalyHolds(kind: AnomalyKind, record: Pick<TaskRecord, "state" | "state_reason">): boolean {
  switch (kind) {
    case "stuck_pending":
      return record.state === "PENDING";
    case "stuck_received":
      return record.state === "RECEIVED" || record.state === "SCHEDULED";
    case "stuck_started":
      return record.state === "STARTED";
    case "unregistered":
      return record.state === "UNREGISTERED" || record.state === "PENDING";
    default:
      return stateAnomalyKind(record) === kind;
  }
}

export function formatSeconds(s: number): string {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${Math.round(s * 10) / 10} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round((s / 3600) * 10) / 10} h`;
}

const name = (r: Pick<TaskRecord, "name">) => r.name ?? "this task";
const queueOf = (r: Pick<TaskRecord, "queue">) => r.queue ?? "celery";

/** What an explanation reads of a task: a folded record, or a graph node (placeholders have no record). */
export type AnomalySubject = Pick<
  TaskRecord,
  | "task_id"
  | "name"
  | "state"
  | "state_reason"
  | "worker"
  | "queue"
  | "eta"
  | "published_at"
  | "received_at"
  | "started_at"
  | "last_started_at"
>;

/** Facts the explanation may use beyond the record. */
export interface ExplainContext {
  now: number;
  /** Online workers and the queues they consume (from the Fleet), when known. */
  online?: { hostname: string; queues: string[] }[];
  timeout?: { seconds: number; basis: string };
}

/** The human explanation and likely fix of an anomaly. */
export function explainAnomaly(
  kind: AnomalyKind,
  r: AnomalySubject,
  ctx: ExplainContext,
): { explanation: string; fix: string } {
  const age = (since: number | null) =>
    since === null ? "" : ` ${formatSeconds(Math.max(0, ctx.now - since))} ago`;
  const where = r.worker ?? "its worker";
  switch (kind) {
    case "unregistered": {
      if (r.state === "UNREGISTERED")
        return {
          explanation: `${where} received ${name(r)} but has no task registered under that name, so Celery dropped the message (task_unknown).`,
          fix: `Deploy the code that defines ${name(r)} to the workers consuming queue '${queueOf(r)}' (check the module is imported: include=/autodiscover), or fix the name at the call site, then restart the workers.`,
        };
      const online = ctx.online ?? [];
      return {
        explanation: `${name(r)} was published to queue '${queueOf(r)}'${age(r.published_at)}, but none of the ${online.length} online worker${online.length === 1 ? "" : "s"} (${online.map((w) => w.hostname).join(", ")}) registers that name: a worker that receives it will drop it as unknown.`,
        fix: `Deploy the code that defines ${name(r)} to the workers (check the module is imported: include=/autodiscover), or fix the task name at the call site.`,
      };
    }
    case "stuck_pending": {
      const consumers = ctx.online?.filter((w) => w.queues.includes(queueOf(r)));
      const nobody = consumers !== undefined && consumers.length === 0;
      return {
        explanation: `Published to queue '${queueOf(r)}'${age(r.published_at)} and no worker has received it${nobody ? `: no online worker consumes '${queueOf(r)}'` : ""}.`,
        fix: nobody
          ? `Start a worker for that queue (celery -A <app> worker -Q ${queueOf(r)}) or route the task to a consumed queue.`
          : `Check that a worker consumes '${queueOf(r)}' (celery -A <app> inspect active_queues), that the workers are up and not all busy, and that the worker side calls stemtrace.init(app).`,
      };
    }
    case "stuck_received": {
      const eta = etaSeconds(r);
      const scheduled = eta !== null && eta > (r.received_at ?? 0);
      return {
        explanation: scheduled
          ? `Scheduled on ${where} for its ETA${age(eta)} and still not started.`
          : `Received by ${where}${age(r.received_at)} and not started.`,
        fix: `${where} has no free pool slot or is blocked: check its concurrency and what it is running, the prefetch (worker_prefetch_multiplier), and that its event loop is not stalled.`,
      };
    }
    case "stuck_started":
      return {
        explanation: `Running on ${where} for ${formatSeconds(Math.max(0, ctx.now - (r.last_started_at ?? r.started_at ?? ctx.now)))}, longer than its timeout of ${formatSeconds(ctx.timeout?.seconds ?? 0)} (${ctx.timeout?.basis ?? "configured"}).`,
        fix: `Find what it waits on (an external call, a lock, a deadlock); give the task a soft_time_limit/time_limit; if it is legitimately this slow, raise its timeout with STUCK_STARTED_BY_NAME.`,
      };
    case "interrupted":
      return {
        explanation: `The run on ${where} ended without a result: ${r.state_reason ?? "interrupted"}.`,
        fix: `Stop workers warm (SIGTERM) and let them finish; raise hard time limits if they cut it; make the task idempotent with acks_late=True so an interrupted run is delivered again.`,
      };
    case "lost":
      return {
        explanation: `It was running on ${where}: ${r.state_reason ?? "the worker vanished"}. No result will come.`,
        fix: `Check ${where}'s host (OOM killer, SIGKILL, container eviction); with acks_late=True and task_reject_on_worker_lost=True the broker delivers it again, otherwise re-run it.`,
      };
    case "chord_never_fired":
      return {
        explanation: `The chord callback ${name(r)} will never run: ${r.state_reason ?? "a header task failed"}.`,
        fix: `Fix the failing header task and run the chord again; add link_error to the chord to be told when this happens.`,
      };
    case "chain_stopped":
      return {
        explanation: `This chain step (${name(r)}) will never run: ${r.state_reason ?? "an earlier step failed"}.`,
        fix: `Fix the failed upstream step and re-run the chain from it; retries (autoretry_for) keep a transient failure from stopping the chain.`,
      };
  }
}
