/**
 * One task's detail as it was at a moment (`GET /api/tasks/:taskId?at=`, shared/replay.ts): its
 * events with `ts <= at` folded by the same fold as the live record. Cheap on purpose: only the
 * task's own row and the rows of the tasks its panel links to (parent, children, chord members)
 * are read, never the whole trace. Which tasks are linked comes from the live graph (the links
 * never change, only whether and how far each linked task had got by then).
 */
import type { Outage } from "../shared/anomalies";
import type { GraphContainer, TaskDetail, TaskLink, TaskState } from "../shared/api";
import { announcedTasks, summarizeStates, toGraphNode, type TraceGraphView } from "../shared/graph";
import { compareTaskEvents, foldAttempts, foldPayload, foldTask, type TaskRecord } from "../shared/task-fold";
import type { TaskEvent } from "../shared/wire";
import type { Sql } from "./sql";

/** The task had no event yet at the moment: `first_event_at` is when its first one happened (null: none). */
export interface NotYet {
  not_yet: { first_event_at: number | null };
}

/**
 * The task's detail at `at`, `NotYet` when none of its events had happened by then, null when the
 * live graph does not know the task. `live` is the trace's live graph (its structure names the links).
 */
export function readTaskAt(
  sql: Sql,
  live: TraceGraphView,
  traceId: string,
  taskId: string,
  at: number,
): TaskDetail | NotYet | null {
  const liveNode = live.nodes.find((n) => n.id === taskId);
  if (!liveNode) return null;
  const chord = live.containers.find((c) => c.callback_id === taskId);
  const parentEdge = live.edges.find((e) => e.target === taskId && live.nodes.some((n) => n.id === e.source));
  const parentId = chord ? null : (parentEdge?.source ?? liveNode.parent_id);
  const childEdges = live.edges.filter((e) => e.source === taskId);
  const ids = new Set<string>([taskId, ...(parentId ? [parentId] : []), ...childEdges.map((e) => e.target)]);
  for (const m of chord?.members ?? []) ids.add(m);

  // Only the linked tasks' rows, each with its events up to `at` (SQLite filters them).
  const rows = sql<{ task_id: string; events: string | null; first: number | null }>`
    SELECT t.task_id AS task_id,
           json_group_array(json(e.value)) FILTER (WHERE e.value ->> '$.ts' <= ${at}) AS events,
           MIN(e.value ->> '$.ts') AS first
    FROM tasks t, json_each(t.events) e
    WHERE t.trace_id = ${traceId} AND t.task_id IN (SELECT value FROM json_each(${JSON.stringify([...ids])}))
    GROUP BY t.task_id`.toArray();
  const eventsOf = new Map<string, TaskEvent[]>();
  let first: number | null = null;
  for (const r of rows) {
    if (r.task_id === taskId) first = r.first;
    const events = r.events === null ? [] : (JSON.parse(r.events) as TaskEvent[]);
    if (events.length) eventsOf.set(r.task_id, events);
  }
  const own = eventsOf.get(taskId);
  if (!own) return { not_yet: { first_event_at: first } };

  // Worker outages end running tasks only from their own moment on (as the replayed graph does).
  const outages = sql<{ host: string; kind: string; ts: number }>`
    SELECT host, kind, ts FROM outages WHERE trace_id = ${traceId} AND ts <= ${at}`
    .toArray()
    .map((o) => ({ host: o.host, kind: o.kind as Outage["kind"], ts: o.ts }));
  const records = new Map<string, TaskRecord>();
  for (const [id, events] of eventsOf) records.set(id, foldTask(id, events, outages));
  const record = records.get(taskId)!;
  const announced = new Set(announcedTasks(record).map((t) => t.task_id));
  const nameOf = (id: string) => live.nodes.find((n) => n.id === id)?.name ?? null;
  // A linked task with no event yet is the graph's placeholder (PENDING) when announced by then.
  const stateOf = (id: string): TaskState => records.get(id)?.state ?? "PENDING";
  const link = (id: string, kind: TaskLink["kind"]): TaskLink => ({
    task_id: id,
    name: records.get(id)?.name ?? nameOf(id),
    state: stateOf(id),
    kind,
  });

  // As the replayed graph shows it: a chord callback's origin is its chord.
  const node = toGraphNode(chord ? { ...record, parent_id: chord.id } : record);
  const sorted = [...own].sort(compareTaskEvents);
  return {
    trace_id: traceId,
    task: node,
    attempts: foldAttempts(sorted).map(({ name: _name, ...attempt }, i, all) =>
      i === all.length - 1 &&
      attempt.state === "STARTED" &&
      (node.state === "INTERRUPTED" || node.state === "LOST")
        ? { ...attempt, state: node.state, finished_at: node.finished_at }
        : attempt,
    ),
    ...foldPayload(sorted),
    parent: chord ? chordLink(chord, stateOf) : parentId ? link(parentId, parentEdge?.kind ?? null) : null,
    children: childEdges
      .filter((e) => records.has(e.target) || announced.has(e.target))
      .map((e) => link(e.target, e.kind)),
    events: sorted.map((e) => ({
      type: e.type,
      ts: e.ts,
      host: e.host,
      pid: e.pid ?? null,
      retries: e.retries ?? null,
    })),
    names: [...new Set(sorted.map((e) => e.name).filter((n): n is string => !!n))],
  };
}

/** A chord callback's parent link: the chord, its state summed from its members' and callback's states then. */
function chordLink(chord: GraphContainer, stateOf: (id: string) => TaskState): TaskLink {
  const states = [...chord.members, ...(chord.callback_id ? [chord.callback_id] : [])].map(stateOf);
  return {
    task_id: chord.id,
    name: chord.size === null ? "chord" : `chord of ${chord.size} task${chord.size === 1 ? "" : "s"}`,
    state: summarizeStates(states),
    kind: "chord",
    container: { kind: chord.kind, size: chord.size },
  };
}
