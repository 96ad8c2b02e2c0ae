import type { Anomaly, AnomalyKind, GraphNode } from "../shared/api";
import {
  anomalyHolds,
  explainAnomaly,
  startedTimeout,
  stateAnomalyKind,
  watchFor,
  type AnomalyConfig,
  type AnomalySubject,
  type ExplainContext,
  type RuntimeProfile,
  type Watch,
} from "../shared/anomalies";
import type { TraceGraphView } from "../shared/graph";
import { isBroken, type TaskRecord } from "../shared/task-fold";
import type { LiveRegistry } from "./protocol";
import type { Deadlines } from "./deadlines";
import type { Sql } from "./sql";

/** The other objects the detector asks, only from alarms (never on the ingest path). */
export interface AnomalyPeers {
  fleet(): { liveRegistry(): Promise<LiveRegistry> };
  index(): { runtimeProfile(name: string): Promise<RuntimeProfile> };
}

interface AnomalyRow extends Record<string, SqlStorageValue> {
  trace_id: string;
  id: string;
  kind: string;
  task_id: string;
  task_name: string | null;
  since: number;
  detected_at: number;
  resolved_at: number | null;
  explanation: string;
  fix: string;
}

/** After a broken task, the whole-graph check (NOT_RUN) waits this long to coalesce a burst. */
const GRAPH_CHECK_DELAY_S = 1;

function subjectOfNode(n: GraphNode): AnomalySubject {
  return { ...n, task_id: n.id, last_started_at: null };
}

/** A task's watch as the shard stores it on the task's row (`watch_kind`, `due_at`). */
export interface TaskWatch {
  trace_id: string;
  task_id: string;
  record: TaskRecord;
  kind: Watch["kind"];
}

/** Sets or clears the watch on a task's row; the caller owns the `tasks` table. */
export type SetWatch = (traceId: string, taskId: string, watch: Watch | null) => void;

const keyOf = (traceId: string, taskId: string) => `${traceId}\u0000${taskId}`;

/**
 * The anomaly detector of one TraceGraph shard (all of its traces). It owns the `anomalies` table
 * and asks for whole-graph checks (`Deadlines`); a task's watch (when its state must have moved on)
 * lives on the task's own row. Invariants: at most one open anomaly per (trace, task, kind); an
 * anomaly resolves itself when its condition stops holding and stays in the table as history; the
 * ingest path only writes rows (no calls to other objects), the alarm path may ask the Fleet and
 * the index.
 */
export class AnomalyWatch {
  /** trace + task → open kinds → anomaly id; loaded lazily, kept in step with the table. */
  private openByTask: Map<string, Map<AnomalyKind, string>> | undefined;
  /** trace → how many anomalies are open in it. */
  private openByTrace = new Map<string, number>();

  constructor(
    private readonly sql: Sql,
    private readonly deadlines: Deadlines,
    private readonly config: AnomalyConfig,
    private readonly peers: AnomalyPeers,
  ) {}

  /** trace → whether a task of it broke (the `trace_marks` table), as far as asked. */
  private brokenTraces = new Map<string, boolean>();

  /** Forgets the cache (rows were deleted by retention). */
  reset(): void {
    this.openByTask = undefined;
    this.openByTrace.clear();
    this.brokenTraces.clear();
  }

  /** Whether a task of this trace ever broke: then a late announcement or member may stop more steps. */
  private isBrokenTrace(traceId: string): boolean {
    let broken = this.brokenTraces.get(traceId);
    if (broken === undefined) {
      broken =
        this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM trace_marks WHERE trace_id = ${traceId}`.one().n >
        0;
      if (this.brokenTraces.size > 50_000) this.brokenTraces.clear(); // a cache, bounded
      this.brokenTraces.set(traceId, broken);
    }
    return broken;
  }

  private markBroken(traceId: string): void {
    if (this.brokenTraces.get(traceId) === true) return;
    this
      .sql`INSERT INTO trace_marks (trace_id, not_run) VALUES (${traceId}, 0) ON CONFLICT (trace_id) DO NOTHING`;
    this.brokenTraces.set(traceId, true);
  }

  private open(): Map<string, Map<AnomalyKind, string>> {
    if (!this.openByTask) {
      this.openByTask = new Map();
      this.openByTrace.clear();
      for (const row of this.sql<{ id: string; trace_id: string; task_id: string; kind: string }>`
        SELECT id, trace_id, task_id, kind FROM anomalies WHERE resolved_at IS NULL`)
        this.remember(row.trace_id, row.task_id, row.kind as AnomalyKind, row.id);
    }
    return this.openByTask;
  }

  private remember(traceId: string, taskId: string, kind: AnomalyKind, id: string): void {
    const map = this.openByTask!;
    const key = keyOf(traceId, taskId);
    const kinds = map.get(key) ?? new Map<AnomalyKind, string>();
    if (!kinds.has(kind)) this.openByTrace.set(traceId, (this.openByTrace.get(traceId) ?? 0) + 1);
    kinds.set(kind, id);
    map.set(key, kinds);
  }

  private isOpen(traceId: string, taskId: string, kind: AnomalyKind): boolean {
    return this.open().get(keyOf(traceId, taskId))?.has(kind) ?? false;
  }

  openCount(traceId: string): number {
    this.open();
    return this.openByTrace.get(traceId) ?? 0;
  }

  /** Puts the kind of a node's open anomaly on it (the first, if several). */
  decorate(traceId: string, nodes: GraphNode[]): void {
    const open = this.open();
    if (open.size === 0 || !this.openByTrace.get(traceId)) return;
    for (const node of nodes) {
      const kinds = open.get(keyOf(traceId, node.id));
      if (kinds && kinds.size) node.anomaly = kinds.keys().next().value ?? null;
    }
  }

  private openAnomaly(
    traceId: string,
    kind: AnomalyKind,
    subject: AnomalySubject,
    since: number,
    ctx: ExplainContext,
  ): void {
    if (this.isOpen(traceId, subject.task_id, kind)) return;
    const { explanation, fix } = explainAnomaly(kind, subject, ctx);
    const id = `${kind}:${subject.task_id}:${Math.round(ctx.now * 1000)}`;
    this
      .sql`INSERT OR REPLACE INTO anomalies (trace_id, id, kind, task_id, task_name, since, detected_at, resolved_at, explanation, fix, reported)
             VALUES (${traceId}, ${id}, ${kind}, ${subject.task_id}, ${subject.name}, ${since}, ${ctx.now}, NULL, ${explanation}, ${fix}, 0)`;
    this.remember(traceId, subject.task_id, kind, id);
  }

  private resolve(traceId: string, taskId: string, kind: AnomalyKind, id: string, now: number): void {
    this.sql`UPDATE anomalies SET resolved_at = ${now}, reported = 0 WHERE id = ${id}`;
    const key = keyOf(traceId, taskId);
    const kinds = this.open().get(key);
    if (kinds?.delete(kind))
      this.openByTrace.set(traceId, Math.max(0, (this.openByTrace.get(traceId) ?? 1) - 1));
    if (kinds && kinds.size === 0) this.openByTask!.delete(key);
  }

  /**
   * After a trace's tasks were re-folded: resolves what no longer holds, opens the state anomalies,
   * and returns each task's watch (stored with the task's row). Returns whether an anomaly opened
   * or resolved.
   */
  onRecords(
    traceId: string,
    records: TaskRecord[],
    now: number,
  ): { changed: boolean; watches: (Watch | null)[] } {
    let changed = false;
    let broken = false;
    const watches: (Watch | null)[] = [];
    const open = this.open();
    for (const r of records) {
      watches.push(watchFor(r, this.config, now));
      const kinds = open.get(keyOf(traceId, r.task_id));
      if (kinds)
        for (const [kind, id] of [...kinds])
          if (!anomalyHolds(kind, r)) {
            this.resolve(traceId, r.task_id, kind, id, now);
            changed = true;
          }
      const kind = stateAnomalyKind(r);
      if (kind && !this.isOpen(traceId, r.task_id, kind)) {
        this.openAnomaly(traceId, kind, r, r.finished_at ?? r.last_started_at ?? r.received_at ?? now, {
          now,
        });
        changed = true;
      }
      if (isBroken(r.state)) broken = true;
    }
    if (broken) this.markBroken(traceId);
    // NOT_RUN needs the whole graph: checked from the alarm, coalesced, only after something broke.
    // Events arrive in any order: after a break, a chord member finishing or an announcement (the
    // steps a message names) arriving late can stop more steps, so those check again.
    else
      broken =
        records.some(
          (r) =>
            r.group_id !== null ||
            r.chord_callback_id !== null ||
            r.chain.length > 0 ||
            !!r.chord_callback_chain?.length,
        ) && this.isBrokenTrace(traceId);
    if (broken) this.deadlines.set({ kind: "graph_check", traceId }, now + GRAPH_CHECK_DELAY_S, "earliest");
    return { changed, watches };
  }

  /**
   * Chain steps and chord callbacks that can no longer run (NOT_RUN, known only to the whole graph):
   * opens one anomaly per stop, resolves the ones that no longer hold, and keeps the trace's count
   * of NOT_RUN tasks (its summary counts them). Returns the NOT_RUN placeholders.
   */
  checkGraph(traceId: string, view: TraceGraphView, now: number): GraphNode[] {
    const notRunNodes = view.nodes.filter((n) => n.state === "NOT_RUN");
    this.sql`INSERT INTO trace_marks (trace_id, not_run) VALUES (${traceId}, ${notRunNodes.length})
             ON CONFLICT (trace_id) DO UPDATE SET not_run = excluded.not_run`;
    this.brokenTraces.set(traceId, true);
    const brokenAt = Math.max(
      0,
      ...view.nodes.filter((n) => isBroken(n.state) && n.state !== "NOT_RUN").map((n) => n.finished_at ?? 0),
    );
    const notRun = new Set<string>();
    for (const node of view.nodes) {
      if (node.state !== "NOT_RUN") continue;
      const kind = stateAnomalyKind(node); // null after another NOT_RUN step: one anomaly per stop
      if (!kind) continue;
      notRun.add(node.id);
      this.openAnomaly(traceId, kind, subjectOfNode(node), brokenAt || now, { now });
    }
    const prefix = keyOf(traceId, "");
    for (const [key, kinds] of [...this.open()]) {
      if (!key.startsWith(prefix)) continue;
      const taskId = key.slice(prefix.length);
      for (const [kind, id] of [...kinds])
        if ((kind === "chain_stopped" || kind === "chord_never_fired") && !notRun.has(taskId))
          this.resolve(traceId, taskId, kind, id, now);
    }
    return notRunNodes;
  }

  /**
   * Runs the watches that fell due: opens stuck anomalies whose condition still holds, asks the
   * Fleet (registries, queues) and the index (runtime history) at most once each.
   */
  async runDueWatches(due: TaskWatch[], setWatch: SetWatch, now: number): Promise<void> {
    if (due.length === 0) return;
    let registry: LiveRegistry | null | undefined;
    const liveRegistry = async () => {
      if (registry === undefined) {
        try {
          registry = await this.peers.fleet().liveRegistry();
        } catch (err) {
          console.warn("anomaly watch: the fleet did not answer", err);
          registry = null;
        }
      }
      return registry;
    };
    const profiles = new Map<string, RuntimeProfile | null>();
    const profileOf = async (name: string | null) => {
      if (!name) return null;
      if (!profiles.has(name)) {
        try {
          profiles.set(name, await this.peers.index().runtimeProfile(name));
        } catch (err) {
          console.warn("anomaly watch: the index did not answer", err);
          profiles.set(name, null);
        }
      }
      return profiles.get(name) ?? null;
    };

    for (const { trace_id: traceId, record: r, kind } of due) {
      const set = (watch: Watch | null) => setWatch(traceId, r.task_id, watch);
      const current = watchFor(r, this.config, now);
      if (!current) {
        set(null);
        continue;
      }
      switch (kind) {
        case "check_registered":
        case "stuck_pending": {
          if (r.state !== "PENDING" || r.published_at === null) {
            set(current);
            break;
          }
          const dueAt = r.published_at + this.config.pendingS;
          // Re-armed before the awaits below, which let other events in.
          set(dueAt > now + 0.001 ? { kind: "stuck_pending", due_at: dueAt } : null);
          const live = await liveRegistry();
          if (kind === "check_registered" && r.name && live) {
            const registering = live.online.filter((w) => w.registers);
            if (
              registering.length > 0 &&
              !((Object.hasOwn(live.names, r.name) ? live.names[r.name] : undefined)?.length ?? 0)
            )
              this.openAnomaly(traceId, "unregistered", r, r.published_at, { now, online: live.online });
          }
          if (dueAt <= now + 0.001)
            this.openAnomaly(traceId, "stuck_pending", r, r.published_at, {
              now,
              ...(live ? { online: live.online } : {}),
            });
          break;
        }
        case "stuck_received": {
          if (current.kind !== "stuck_received" || current.due_at > now + 0.001) {
            set(current);
            break;
          }
          set(null);
          this.openAnomaly(traceId, "stuck_received", r, current.due_at - this.config.receivedS, { now });
          break;
        }
        case "stuck_started": {
          if (current.kind !== "stuck_started") {
            set(current);
            break;
          }
          const start = r.last_started_at ?? r.started_at ?? now;
          const override = r.name ? this.config.startedByName[r.name] : undefined;
          const timeout = startedTimeout(
            r.name,
            this.config,
            override === undefined ? await profileOf(r.name) : null,
          );
          if (start + timeout.seconds > now + 0.001) {
            set({ kind: "stuck_started", due_at: start + timeout.seconds });
            break;
          }
          set(null);
          this.openAnomaly(traceId, "stuck_started", r, start, { now, timeout });
          break;
        }
        default:
          set(current);
      }
    }
  }

  /** Anomalies not yet sent to the index; marked sent (the caller sends them before awaiting anything else). */
  unreported(): Anomaly[] {
    const rows = this.sql<AnomalyRow>`SELECT * FROM anomalies WHERE reported = 0`.toArray();
    if (rows.length) this.sql`UPDATE anomalies SET reported = 1 WHERE reported = 0`;
    return rows.map(toAnomaly);
  }

  /** Puts anomalies back in the outbox (their report did not reach the index). */
  unsent(anomalies: Anomaly[]): void {
    if (anomalies.length)
      this
        .sql`UPDATE anomalies SET reported = 0 WHERE id IN (SELECT value FROM json_each(${JSON.stringify(anomalies.map((a) => a.id))}))`;
  }

  list(traceId: string): Anomaly[] {
    return this
      .sql<AnomalyRow>`SELECT * FROM anomalies WHERE trace_id = ${traceId} ORDER BY detected_at DESC LIMIT 1000`
      .toArray()
      .map(toAnomaly);
  }
}

function toAnomaly(row: AnomalyRow): Anomaly {
  return {
    id: row.id,
    kind: row.kind as AnomalyKind,
    trace_id: row.trace_id,
    task_id: row.task_id,
    task_name: row.task_name,
    since: row.since,
    detected_at: row.detected_at,
    resolved_at: row.resolved_at,
    explanation: row.explanation,
    fix: row.fix,
  };
}
