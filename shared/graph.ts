/**
 * Builds the trace graph from task records (CELERY.md §4): placeholders for announced chain steps
 * and chord callbacks, GROUP/CHORD containers, classified parent edges, and the states only the
 * whole graph can tell (NOT_RUN). Pure: the TraceGraph object and the tests share it.
 */
import type { GraphContainer, GraphEdge, GraphNode, TaskState, TraceSummary } from "./api";
import { isBroken, isTerminal, NOT_RUN_DOWNSTREAM, type TaskRecord } from "./task-fold";
import { countStates, failureCount, summarize } from "./states";
import type { AnnouncedTask, ChainStep } from "./wire";

export interface TraceGraphView {
  nodes: GraphNode[];
  containers: GraphContainer[];
  edges: GraphEdge[];
}

interface Placeholder {
  task: AnnouncedTask;
  after: string | null;
  group_id: string | null;
  group_index: number | null;
  chord_callback_id: string | null;
}

function placeholderRecord(p: Placeholder): TaskRecord {
  return {
    task_id: p.task.task_id,
    name: p.task.name,
    names: [p.task.name],
    state: "PENDING",
    state_reason: "announced; not published yet",
    trace_id: null,
    root_id: null,
    parent_id: p.after,
    group_id: p.group_id,
    group_index: p.group_index,
    chord_callback_id: p.chord_callback_id,
    chord_callback_name: null,
    chord_callback_chain: [],
    chain: [],
    callbacks: [],
    errbacks: [],
    publisher_task_id: null,
    retries: 0,
    attempt_count: 0,
    worker: null,
    queue: null,
    eta: null,
    eager: false,
    published_at: null,
    received_at: null,
    started_at: null,
    last_started_at: null,
    finished_at: null,
    runtime_ms: null,
    exception_type: null,
  };
}

/** Every task a record's message names before it exists: chain steps, chord members and callbacks. */
export function announcedTasks(r: TaskRecord): AnnouncedTask[] {
  const out: AnnouncedTask[] = [];
  if (r.chord_callback_id && r.chord_callback_name)
    out.push({ task_id: r.chord_callback_id, name: r.chord_callback_name });
  for (const step of [...r.chain, ...(r.chord_callback_chain ?? [])]) {
    if ("task_id" in step) out.push({ task_id: step.task_id, name: step.name });
    else {
      out.push(...step.tasks);
      if (step.chord_callback) out.push(step.chord_callback);
    }
  }
  return out;
}

/** Orders members by group_index, then publish time, then id (CELERY.md §4.5). */
function memberOrder(a: TaskRecord, b: TaskRecord): number {
  const ai = a.group_index ?? Number.MAX_SAFE_INTEGER;
  const bi = b.group_index ?? Number.MAX_SAFE_INTEGER;
  return (
    ai - bi ||
    (a.published_at ?? Infinity) - (b.published_at ?? Infinity) ||
    (a.task_id < b.task_id ? -1 : a.task_id > b.task_id ? 1 : 0)
  );
}

/** The state a set of members adds up to (shared/states.ts `summarize`). */
export function summarizeStates(states: readonly TaskState[]): TaskState {
  return summarize(countStates(states));
}

export function buildGraph(records: readonly TaskRecord[]): TraceGraphView {
  const byId = new Map<string, TaskRecord>();
  for (const r of records) byId.set(r.task_id, { ...r });

  // 1. Placeholders for everything announced but not seen, and the chain order it implies.
  const chainAnnounced = new Set<string>();
  const chainPredecessor = new Map<string, string>();
  const callbackIds = new Set<string>();
  const announce = (p: Placeholder) => {
    if (!byId.has(p.task.task_id)) byId.set(p.task.task_id, placeholderRecord(p));
  };
  /** Announces `steps` as a chain that runs after `start` (a task id). */
  const walk = (start: string, steps: readonly ChainStep[]) => {
    let previous: string[] = [start];
    for (const step of steps) {
      if ("task_id" in step) {
        chainAnnounced.add(step.task_id);
        for (const p of previous)
          if (!chainPredecessor.has(step.task_id)) chainPredecessor.set(step.task_id, p);
        announce({
          task: step,
          after: previous[0] ?? null,
          group_id: step.group_id ?? null,
          group_index: step.group_index ?? null,
          chord_callback_id: null,
        });
        previous = [step.task_id];
      } else {
        const callback = step.chord_callback ?? null;
        const groupId = step.group_id ?? (callback ? `chord-of:${callback.task_id}` : `group-after:${start}`);
        step.tasks.forEach((t, index) => {
          chainAnnounced.add(t.task_id);
          if (previous[0] && !chainPredecessor.has(t.task_id)) chainPredecessor.set(t.task_id, previous[0]);
          announce({
            task: t,
            after: previous[0] ?? null,
            group_id: groupId,
            group_index: index,
            chord_callback_id: callback?.task_id ?? null,
          });
        });
        if (callback) {
          callbackIds.add(callback.task_id);
          announce({
            task: callback,
            after: null,
            group_id: null,
            group_index: null,
            chord_callback_id: null,
          });
          previous = [callback.task_id];
        } else previous = step.tasks.map((t) => t.task_id);
      }
    }
  };
  for (const r of [...byId.values()].sort((a, b) => (a.task_id < b.task_id ? -1 : 1))) {
    if (r.chord_callback_id) {
      callbackIds.add(r.chord_callback_id);
      if (r.chord_callback_name)
        announce({
          task: { task_id: r.chord_callback_id, name: r.chord_callback_name },
          after: null,
          group_id: null,
          group_index: null,
          chord_callback_id: null,
        });
      // What runs after the callback is known from the header, even if the callback never runs.
      if (r.chord_callback_chain?.length) walk(r.chord_callback_id, r.chord_callback_chain);
    }
    walk(r.task_id, r.chain);
  }

  // 2. Containers: groups by id; a group whose members name a chord callback is a CHORD.
  const groups = new Map<string, TaskRecord[]>();
  for (const r of byId.values()) {
    if (!r.group_id) continue;
    const list = groups.get(r.group_id);
    if (list) list.push(r);
    else groups.set(r.group_id, [r]);
  }
  // Chain slots: earlier steps of a member chain whose last step carries the group (09b/09c).
  const chainSlots = new Map<string, TaskRecord[]>();
  for (const r of byId.values()) {
    const last = r.chain[r.chain.length - 1];
    if (!r.group_id && last && "task_id" in last && last.group_id) {
      const list = chainSlots.get(last.group_id) ?? [];
      list.push(r);
      chainSlots.set(last.group_id, list);
    }
  }

  // 3. NOT_RUN: chain steps after a broken step, chord callbacks of a broken header (§4.7, §4.8).
  const stateOf = (id: string) => byId.get(id)?.state ?? "PENDING";
  const containerOfCallback = new Map<string, string>();
  for (const [groupId, members] of groups) {
    const cb = members.find((m) => m.chord_callback_id)?.chord_callback_id ?? null;
    if (cb) containerOfCallback.set(cb, groupId);
  }
  for (let pass = 0, changed = true; changed && pass < 50; pass++) {
    changed = false;
    for (const r of byId.values()) {
      if (r.state !== "PENDING") continue;
      const predecessor = chainPredecessor.get(r.task_id);
      if (predecessor && isBroken(stateOf(predecessor))) {
        r.state = "NOT_RUN";
        // Only the first step that will not run is an anomaly (chain_stopped); the ones after it say why.
        r.state_reason =
          stateOf(predecessor) === "NOT_RUN"
            ? `${NOT_RUN_DOWNSTREAM} the step before it (${predecessor.slice(0, 8)}) did not run either`
            : `upstream step ${predecessor.slice(0, 8)} ended ${stateOf(predecessor)}`;
        changed = true;
        continue;
      }
      const headerGroup = containerOfCallback.get(r.task_id);
      if (headerGroup) {
        const members = groups.get(headerGroup) ?? [];
        const size = headerSize(members);
        const done = members.filter((m) => isTerminal(m.state));
        const broken = members.find((m) => isBroken(m.state));
        if (broken && done.length >= size) {
          r.state = "NOT_RUN";
          const cause = members.find((m) => isBroken(m.state) && m.state !== "NOT_RUN");
          r.state_reason = cause
            ? `chord header task ${cause.task_id.slice(0, 8)} ended ${cause.state}: the callback never fires (ChordError)`
            : `${NOT_RUN_DOWNSTREAM} its chord header did not run`;
          changed = true;
        }
      }
    }
  }

  const containers: GraphContainer[] = [];
  for (const [groupId, direct] of groups) {
    // Each chain slot goes right before the member its chain leads to (09b: T1 → T3 in slot 0).
    const slots = chainSlots.get(groupId) ?? [];
    const members: TaskRecord[] = [];
    for (const m of [...direct].sort(memberOrder)) {
      for (const slot of slots) {
        const last = slot.chain[slot.chain.length - 1];
        if (last && "task_id" in last && last.task_id === m.task_id) members.push(slot);
      }
      members.push(m);
    }
    for (const slot of slots) if (!members.includes(slot)) members.push(slot);
    const callbackId = direct.find((m) => m.chord_callback_id)?.chord_callback_id ?? null;
    const memberStates = members.map((m) => m.state);
    const states = callbackId ? [...memberStates, stateOf(callbackId)] : memberStates;
    containers.push({
      id: groupId,
      kind: callbackId ? "CHORD" : "GROUP",
      state: summarizeStates(states),
      members: members.map((m) => m.task_id),
      callback_id: callbackId,
      size: direct.some((m) => m.group_index !== null) ? headerSize(direct) : members.length,
    });
  }
  containers.sort((a, b) => (a.id < b.id ? -1 : 1));

  // 4. Edges from parent_id, classified; chord callbacks only through their header (§4.3, §4.6).
  const edges: GraphEdge[] = [];
  const seen = new Set<string>();
  const addEdge = (source: string, target: string, kind: GraphEdge["kind"]) => {
    const id = `${kind}:${source}->${target}`;
    if (source === target || seen.has(id)) return;
    seen.add(id);
    edges.push({ id, source, target, kind });
  };
  for (const r of byId.values()) {
    if (callbackIds.has(r.task_id)) continue;
    const parentId = r.parent_id ?? chainPredecessor.get(r.task_id) ?? null;
    if (!parentId || !byId.has(parentId)) continue;
    const parent = byId.get(parentId)!;
    let kind: GraphEdge["kind"] = "spawn";
    if (chainAnnounced.has(r.task_id) || chainPredecessor.get(r.task_id) === parentId) kind = "chain";
    else if (r.name && parent.errbacks.some((s) => s.name === r.name)) kind = "errback";
    else if (r.name && parent.callbacks.some((s) => s.name === r.name)) kind = "callback";
    addEdge(parentId, r.task_id, kind);
  }
  for (const [cb, groupId] of containerOfCallback) if (byId.has(cb)) addEdge(groupId, cb, "chord");
  edges.sort((a, b) => (a.id < b.id ? -1 : 1));

  // A chord callback's origin is its chord, not whichever header task finished last (Celery's parent_id).
  for (const c of containers) {
    const callback = c.callback_id ? byId.get(c.callback_id) : undefined;
    if (callback) callback.parent_id = c.id;
  }
  const nodes = [...byId.values()].sort(nodeOrder).map(toGraphNode);
  return { nodes, containers, edges };
}

function headerSize(members: readonly TaskRecord[]): number {
  const indexes = members.map((m) => m.group_index).filter((i): i is number => i !== null);
  return indexes.length ? Math.max(...indexes) + 1 : members.length;
}

function nodeOrder(a: TaskRecord, b: TaskRecord): number {
  return (
    (a.published_at ?? a.started_at ?? Infinity) - (b.published_at ?? b.started_at ?? Infinity) ||
    (a.task_id < b.task_id ? -1 : 1)
  );
}

/** A record as the API shows it. `anomaly` is filled in by the TraceGraph from its anomaly table. */
export function toGraphNode(r: TaskRecord): GraphNode {
  return {
    id: r.task_id,
    name: r.name,
    state: r.state,
    placeholder: r.attempt_count === 0,
    retries: r.retries,
    worker: r.worker,
    queue: r.queue,
    parent_id: r.parent_id,
    group_id: r.group_id,
    group_index: r.group_index,
    published_at: r.published_at,
    received_at: r.received_at,
    started_at: r.started_at,
    finished_at: r.finished_at,
    eta: r.eta,
    runtime_ms: r.runtime_ms,
    exception_type: r.exception_type,
    state_reason: r.state_reason,
    anomaly: null,
    ...(r.runs ? { runs: r.runs } : {}),
  };
}

/** The trace's headline numbers, from its built graph. */
export function summarizeGraph(
  traceId: string,
  view: TraceGraphView,
  updatedAt: number,
  anomalyCount = 0,
): TraceSummary {
  const real = view.nodes.filter((n) => !n.placeholder);
  const root =
    view.nodes.find((n) => n.id === traceId) ??
    real.find((n) => !n.parent_id || !view.nodes.some((m) => m.id === n.parent_id)) ??
    view.nodes[0] ??
    null;
  const starts = real
    .map((n) => n.published_at ?? n.received_at ?? n.started_at)
    .filter((t): t is number => t !== null);
  // Tasks sent, and the announced ones that will never run: the index's summary counts the same.
  const counted = countStates(
    view.nodes.filter((n) => !n.placeholder || n.state === "NOT_RUN").map((n) => n.state),
  );
  const state = summarize(counted);
  const finishes = real.map((n) => n.finished_at).filter((t): t is number => t !== null);
  const startedAt = starts.length ? Math.min(...starts) : null;
  const finishedAt = isTerminal(state) && finishes.length ? Math.max(...finishes) : null;
  return {
    trace_id: traceId,
    state,
    root_task_id: root?.id ?? null,
    root_name: root?.name ?? null,
    task_count: real.length,
    failure_count: failureCount(counted),
    started_at: startedAt,
    updated_at: updatedAt,
    finished_at: finishedAt,
    duration_ms:
      startedAt !== null && finishedAt !== null ? Math.round((finishedAt - startedAt) * 1000) : null,
    workers: [...new Set(real.map((n) => n.worker).filter((w): w is string => !!w))].sort(),
    task_names: [...new Set(view.nodes.map((n) => n.name).filter((w): w is string => !!w))].sort(),
    anomaly_count: anomalyCount,
    not_run_count: view.nodes.filter((n) => n.placeholder && n.state === "NOT_RUN").length,
  };
}
