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
import type { Sql } from "./sql";

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

/** The other objects the detector asks, only from alarms (never on the ingest path). */
export interface AnomalyPeers {
  fleet(): { liveRegistry(): Promise<LiveRegistry> };
  index(): { runtimeProfile(name: string): Promise<RuntimeProfile> };
}

interface AnomalyRow extends Record<string, SqlStorageValue> {
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

/**
 * The anomaly detector of one TraceGraph. It owns the `anomalies` table and the `watch:<task>`
 * deadline rows. Invariants: at most one open anomaly per (task, kind); an anomaly resolves itself
 * when its condition stops holding and stays in the table as history; the ingest path only
 * writes rows (no calls to other objects), the alarm path may ask the Fleet and the index.
 */
export class AnomalyWatch {
  /** task id → open kinds → anomaly id; loaded lazily, kept in step with the table. */
  private openByTask: Map<string, Map<AnomalyKind, string>> | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly config: AnomalyConfig,
    private readonly peers: AnomalyPeers,
  ) {}

  /** Forgets the cache (the storage was deleted by retention). */
  reset(): void {
    this.openByTask = undefined;
  }

  private open(): Map<string, Map<AnomalyKind, string>> {
    if (!this.openByTask) {
      this.openByTask = new Map();
      for (const row of this.sql<{ id: string; task_id: string; kind: string }>`SELECT id, task_id, kind FROM anomalies WHERE resolved_at IS NULL`)
        this.remember(row.task_id, row.kind as AnomalyKind, row.id);
    }
    return this.openByTask;
  }

  private remember(taskId: string, kind: AnomalyKind, id: string): void {
    const map = this.openByTask!;
    const kinds = map.get(taskId) ?? new Map<AnomalyKind, string>();
    kinds.set(kind, id);
    map.set(taskId, kinds);
  }

  private isOpen(taskId: string, kind: AnomalyKind): boolean {
    return this.open().get(taskId)?.has(kind) ?? false;
  }

  openCount(): number {
    let n = 0;
    for (const kinds of this.open().values()) n += kinds.size;
    return n;
  }

  /** Puts the kind of a node's open anomaly on it (the first, if several). */
  decorate(nodes: GraphNode[]): void {
    const open = this.open();
    if (open.size === 0) return;
    for (const node of nodes) {
      const kinds = open.get(node.id);
      if (kinds && kinds.size) node.anomaly = kinds.keys().next().value ?? null;
    }
  }

  private openAnomaly(kind: AnomalyKind, subject: AnomalySubject, since: number, ctx: ExplainContext): void {
    if (this.isOpen(subject.task_id, kind)) return;
    const { explanation, fix } = explainAnomaly(kind, subject, ctx);
    const id = `${kind}:${subject.task_id}:${Math.round(ctx.now * 1000)}`;
    this.sql`INSERT OR REPLACE INTO anomalies (id, kind, task_id, task_name, since, detected_at, resolved_at, explanation, fix, reported)
             VALUES (${id}, ${kind}, ${subject.task_id}, ${subject.name}, ${since}, ${ctx.now}, NULL, ${explanation}, ${fix}, 0)`;
    this.open();
    this.remember(subject.task_id, kind, id);
  }

  private resolve(taskId: string, kind: AnomalyKind, id: string, now: number): void {
    this.sql`UPDATE anomalies SET resolved_at = ${now}, reported = 0 WHERE id = ${id}`;
    const kinds = this.open().get(taskId);
    kinds?.delete(kind);
    if (kinds && kinds.size === 0) this.openByTask!.delete(taskId);
  }

  /**
   * After tasks were re-folded: resolves what no longer holds, opens the state anomalies, and sets
   * each task's watch deadline from its new state (two statements for the whole batch).
   * Returns whether an anomaly opened or resolved.
   */
  onRecords(records: TaskRecord[], now: number): boolean {
    let changed = false;
    let broken = false;
    const watches: { t: string; k: Watch["kind"]; d: number }[] = [];
    const unwatched: string[] = [];
    const open = this.open();
    for (const r of records) {
      const watch = watchFor(r, this.config, now);
      if (watch) watches.push({ t: r.task_id, k: watch.kind, d: watch.due_at });
      else unwatched.push(r.task_id);
      const kinds = open.get(r.task_id);
      if (kinds)
        for (const [kind, id] of [...kinds])
          if (!anomalyHolds(kind, r)) {
            this.resolve(r.task_id, kind, id, now);
            changed = true;
          }
      const kind = stateAnomalyKind(r);
      if (kind && !this.isOpen(r.task_id, kind)) {
        this.openAnomaly(kind, r, r.finished_at ?? r.last_started_at ?? r.received_at ?? now, { now });
        changed = true;
      }
      if (isBroken(r.state)) broken = true;
    }
    if (watches.length)
      this.sql`INSERT INTO deadlines (key, kind, task_id, due_at)
               SELECT 'watch:' || (value ->> '$.t'), value ->> '$.k', value ->> '$.t', value ->> '$.d' FROM json_each(${JSON.stringify(watches)}) WHERE true
               ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at`;
    if (unwatched.length) this.sql`DELETE FROM deadlines WHERE key IN (SELECT 'watch:' || value FROM json_each(${JSON.stringify(unwatched)}))`;
    // NOT_RUN needs the whole graph: checked from the alarm, coalesced, only after something broke.
    if (broken)
      this.sql`INSERT INTO deadlines (key, kind, task_id, due_at) VALUES ('graph_check', 'graph_check', NULL, ${now + GRAPH_CHECK_DELAY_S})
               ON CONFLICT (key) DO UPDATE SET due_at = MIN(deadlines.due_at, excluded.due_at)`;
    return changed;
  }

  /** Chain steps and chord callbacks that can no longer run (NOT_RUN, known only to the whole graph). */
  checkGraph(view: TraceGraphView, now: number): void {
    const brokenAt = Math.max(0, ...view.nodes.filter((n) => isBroken(n.state) && n.state !== "NOT_RUN").map((n) => n.finished_at ?? 0));
    const notRun = new Set<string>();
    for (const node of view.nodes) {
      if (node.state !== "NOT_RUN") continue;
      notRun.add(node.id);
      const kind = stateAnomalyKind(node);
      if (kind) this.openAnomaly(kind, subjectOfNode(node), brokenAt || now, { now });
    }
    for (const [taskId, kinds] of [...this.open()])
      for (const [kind, id] of [...kinds])
        if ((kind === "chain_stopped" || kind === "chord_never_fired") && !notRun.has(taskId)) this.resolve(taskId, kind, id, now);
  }

  /**
   * Runs the watches that fell due: opens stuck anomalies whose condition still holds, asks the
   * Fleet (registries, queues) and the index (runtime history) at most once each.
   */
  async runDueWatches(taskIds: string[], now: number): Promise<void> {
    if (taskIds.length === 0) return;
    const rows = this.sql<{ task_id: string; record: string; kind: string }>`
      SELECT t.task_id, t.record, d.kind FROM deadlines d JOIN tasks t ON t.task_id = d.task_id
      WHERE d.key IN (SELECT 'watch:' || value FROM json_each(${JSON.stringify(taskIds)}))`.toArray();
    const found = new Set(rows.map((r) => r.task_id));
    for (const id of taskIds) if (!found.has(id)) this.sql`DELETE FROM deadlines WHERE key = ${"watch:" + id}`;

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
    const setWatch = (taskId: string, watch: Watch | null) => {
      if (watch) this.sql`UPDATE deadlines SET kind = ${watch.kind}, due_at = ${watch.due_at} WHERE key = ${"watch:" + taskId}`;
      else this.sql`DELETE FROM deadlines WHERE key = ${"watch:" + taskId}`;
    };

    for (const row of rows) {
      const r = JSON.parse(row.record) as TaskRecord;
      const current = watchFor(r, this.config, now);
      if (!current) {
        setWatch(r.task_id, null);
        continue;
      }
      switch (row.kind) {
        case "check_registered":
        case "stuck_pending": {
          if (r.state !== "PENDING" || r.published_at === null) {
            setWatch(r.task_id, current);
            break;
          }
          const due = r.published_at + this.config.pendingS;
          // Re-armed before the awaits below, which let other events in.
          setWatch(r.task_id, due > now + 0.001 ? { kind: "stuck_pending", due_at: due } : null);
          const live = await liveRegistry();
          if (row.kind === "check_registered" && r.name && live) {
            const registering = live.online.filter((w) => w.registers);
            if (registering.length > 0 && !(live.names[r.name]?.length ?? 0))
              this.openAnomaly("unregistered", r, r.published_at, { now, online: live.online });
          }
          if (due <= now + 0.001) this.openAnomaly("stuck_pending", r, r.published_at, { now, ...(live ? { online: live.online } : {}) });
          break;
        }
        case "stuck_received": {
          if (current.kind !== "stuck_received" || current.due_at > now + 0.001) {
            setWatch(r.task_id, current);
            break;
          }
          setWatch(r.task_id, null);
          this.openAnomaly("stuck_received", r, current.due_at - this.config.receivedS, { now });
          break;
        }
        case "stuck_started": {
          if (current.kind !== "stuck_started") {
            setWatch(r.task_id, current);
            break;
          }
          const start = r.last_started_at ?? r.started_at ?? now;
          const override = r.name ? this.config.startedByName[r.name] : undefined;
          const timeout = startedTimeout(r.name, this.config, override === undefined ? await profileOf(r.name) : null);
          if (start + timeout.seconds > now + 0.001) {
            setWatch(r.task_id, { kind: "stuck_started", due_at: start + timeout.seconds });
            break;
          }
          setWatch(r.task_id, null);
          this.openAnomaly("stuck_started", r, start, { now, timeout });
          break;
        }
        default:
          setWatch(r.task_id, current);
      }
    }
  }

  /** Anomalies not yet sent to the index; marked sent (the caller sends them before awaiting anything else). */
  unreported(traceId: string): Anomaly[] {
    const rows = this.sql<AnomalyRow>`SELECT * FROM anomalies WHERE reported = 0`.toArray();
    if (rows.length) this.sql`UPDATE anomalies SET reported = 1 WHERE reported = 0`;
    return rows.map((row) => toAnomaly(traceId, row));
  }

  hasUnreported(): boolean {
    return this.sql`SELECT 1 FROM anomalies WHERE reported = 0 LIMIT 1`.toArray().length > 0;
  }

  list(traceId: string): Anomaly[] {
    return this.sql<AnomalyRow>`SELECT * FROM anomalies ORDER BY detected_at DESC LIMIT 1000`.toArray().map((row) => toAnomaly(traceId, row));
  }
}

function toAnomaly(traceId: string, row: AnomalyRow): Anomaly {
  return {
    id: row.id,
    kind: row.kind as AnomalyKind,
    trace_id: traceId,
    task_id: row.task_id,
    task_name: row.task_name,
    since: row.since,
    detected_at: row.detected_at,
    resolved_at: row.resolved_at,
    explanation: row.explanation,
    fix: row.fix,
  };
}
