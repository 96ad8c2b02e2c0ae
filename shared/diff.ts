/**
 * Run diff (`GET /api/traces/:id/diff`): one trace compared with another run of the same root task
 * name, or with the per-step median of several runs. Pure: the Worker loads the snapshots, this
 * matches their steps and measures what changed.
 *
 * A step is a task at one position of the canvas. Its key is the same in every run of the same
 * canvas, built from the root down (`stepKeys`):
 *   - a task with no parent in the trace (the root):           `app.add`
 *   - a task linked from a parent task by an edge of kind K:   `<parent key> > K:app.mul`
 *     (K is chain, spawn, callback or errback: graph edge kinds)
 *   - a GROUP or CHORD:                                        `<key of its first member's parent> > GROUP`
 *     (or just `GROUP` when the members have no parent)
 *   - a member of a group or chord header, at group index i:   `<container key>[i]:app.add`
 *   - a chord callback:                                        `<chord key> > callback:app.tsum`
 * When siblings would get the same key (a task that spawns `app.fetch` three times), the second and
 * later ones, in publish order, get `#2`, `#3`…. Retries of a task keep its task id, so every
 * attempt is one node and one step: the step's `retries` counts them.
 */
import type {
  DiffAgainst,
  DiffMeasure,
  GraphContainer,
  GraphEdge,
  GraphNode,
  StepDiff,
  TaskState,
  TraceDiff,
} from "./api";
import { queueWaitMs } from "./queue-wait";
import { isBroken } from "./states";

/** What the diff reads of a snapshot (a TraceSnapshot has all of it). */
export interface DiffGraph {
  trace_id: string;
  nodes: readonly GraphNode[];
  containers: readonly GraphContainer[];
  edges: readonly GraphEdge[];
  summary: { started_at: number | null; duration_ms: number | null; root_name: string | null };
  truncated?: { shown: number; total: number } | undefined;
}

/** Siblings that share a key get an ordinal; the first keeps the bare key. */
function withOrdinals<T>(items: readonly T[], groupOf: (item: T) => string): Map<T, string> {
  const seen = new Map<string, number>();
  const out = new Map<T, string>();
  for (const item of items) {
    const g = groupOf(item);
    const n = (seen.get(g) ?? 0) + 1;
    seen.set(g, n);
    out.set(item, n === 1 ? "" : `#${n}`);
  }
  return out;
}

/** Every node's step key (see the module comment), by task id. */
export function stepKeys(graph: Pick<DiffGraph, "nodes" | "containers" | "edges">): Map<string, string> {
  const nodeIds = new Set(graph.nodes.map((n) => n.id));
  const order = new Map(graph.nodes.map((n, i) => [n.id, i]));
  const incoming = new Map<string, GraphEdge>();
  for (const e of graph.edges) if (!incoming.has(e.target)) incoming.set(e.target, e);
  const containerById = new Map(graph.containers.map((c) => [c.id, c]));
  const nodeById = new Map(graph.nodes.map((n) => [n.id, n]));
  const name = (id: string) => nodeById.get(id)?.name ?? "?";

  // Where each node hangs: the segment it adds to its parent's key, and that parent (a task or a container).
  type Ref = { parent: string | null; parentIsContainer: boolean; segment: string };
  const refs = new Map<string, Ref>();
  // Each container's own members (chain slots drawn in it are keyed by their edge), with their
  // position: computed once, a group may have thousands.
  const memberIndex = new Map<string, number>();
  const directMembers = new Map<string, string[]>();
  for (const c of graph.containers) {
    const direct = c.members.filter((m) => nodeById.get(m)?.group_id === c.id);
    directMembers.set(c.id, direct);
    direct.forEach((m, i) => memberIndex.set(m, i));
  }
  for (const n of graph.nodes) {
    const container = n.group_id ? containerById.get(n.group_id) : undefined;
    const edge = incoming.get(n.id);
    if (container && memberIndex.has(n.id)) {
      const index = n.group_index ?? memberIndex.get(n.id)!;
      refs.set(n.id, { parent: container.id, parentIsContainer: true, segment: `[${index}]:${name(n.id)}` });
    } else if (edge?.kind === "chord" && containerById.has(edge.source))
      refs.set(n.id, { parent: edge.source, parentIsContainer: true, segment: ` > callback:${name(n.id)}` });
    else if (edge && nodeIds.has(edge.source))
      refs.set(n.id, {
        parent: edge.source,
        parentIsContainer: false,
        segment: ` > ${edge.kind}:${name(n.id)}`,
      });
    else refs.set(n.id, { parent: null, parentIsContainer: false, segment: name(n.id) });
  }
  // A container hangs where its first member (by group index) does.
  const firstMembers = new Map<string, string | undefined>();
  for (const c of graph.containers) {
    let first: string | undefined;
    const rank = (id: string) => [nodeById.get(id)?.group_index ?? Infinity, order.get(id) ?? 0] as const;
    for (const m of directMembers.get(c.id) ?? []) {
      if (first === undefined) first = m;
      else {
        const [gi, o] = rank(m);
        const [fgi, fo] = rank(first);
        if (gi < fgi || (gi === fgi && o < fo)) first = m;
      }
    }
    firstMembers.set(c.id, first ?? c.members[0]);
  }
  const firstMember = (c: GraphContainer) => firstMembers.get(c.id);
  const containerRefs = new Map<string, Ref>();
  for (const c of graph.containers) {
    const first = firstMember(c);
    const edge = first ? incoming.get(first) : undefined;
    const parent = edge && nodeIds.has(edge.source) ? edge.source : null;
    containerRefs.set(c.id, {
      parent,
      parentIsContainer: false,
      segment: parent ? ` > ${c.kind}` : c.kind,
    });
  }

  const nodeOrdinals = withOrdinals(graph.nodes, (n) => {
    const r = refs.get(n.id)!;
    return `${r.parent ?? ""}\u0000${r.segment}`;
  });
  const containersInOrder = [...graph.containers].sort(
    (a, b) => (order.get(firstMember(a) ?? "") ?? 0) - (order.get(firstMember(b) ?? "") ?? 0),
  );
  const containerOrdinals = withOrdinals(containersInOrder, (c) => {
    const r = containerRefs.get(c.id)!;
    return `${r.parent ?? ""}\u0000${r.segment}`;
  });
  const nodeOrdinal = new Map(graph.nodes.map((n) => [n.id, nodeOrdinals.get(n)!]));
  const containerOrdinal = new Map(graph.containers.map((c) => [c.id, containerOrdinals.get(c)!]));

  const keys = new Map<string, string>();
  const containerKeys = new Map<string, string>();
  const visiting = new Set<string>();
  const keyOf = (id: string, isContainer: boolean): string => {
    const memo = isContainer ? containerKeys : keys;
    const known = memo.get(id);
    if (known !== undefined) return known;
    const mark = `${isContainer ? "c" : "n"}:${id}`;
    // A cycle cannot come from shared/graph.ts; if one did, the step is keyed by its name alone.
    if (visiting.has(mark)) return `?${isContainer ? "container" : name(id)}`;
    visiting.add(mark);
    const r = (isContainer ? containerRefs : refs).get(id)!;
    const ordinal = (isContainer ? containerOrdinal : nodeOrdinal).get(id) ?? "";
    const key = (r.parent ? keyOf(r.parent, r.parentIsContainer) : "") + r.segment + ordinal;
    visiting.delete(mark);
    memo.set(id, key);
    return key;
  };
  for (const n of graph.nodes) keyOf(n.id, false);
  return keys;
}

/** One step of one run, as the diff measures it. */
export interface StepValues {
  key: string;
  name: string | null;
  task_id: string | null;
  state: TaskState;
  runtime_ms: number | null;
  queue_wait_ms: number | null;
  retries: number;
}

/** A node's queue wait (shared/queue-wait.ts), from what the snapshot carries. */
export function nodeQueueWaitMs(n: GraphNode): number | null {
  return queueWaitMs({
    published_at: n.published_at,
    received_at: n.received_at,
    started_at: n.started_at,
    eta: n.eta,
    // Only a single attempt's eta applies to its first start.
    attempt_count: Math.max(n.runs?.length ?? 0, n.retries + 1),
  });
}

/** Every step of a run, in the snapshot's node order. */
export function stepsOf(graph: Pick<DiffGraph, "nodes" | "containers" | "edges">): StepValues[] {
  const keys = stepKeys(graph);
  return graph.nodes.map((n) => ({
    key: keys.get(n.id)!,
    name: n.name,
    task_id: n.id,
    state: n.state,
    runtime_ms: n.runtime_ms,
    queue_wait_ms: nodeQueueWaitMs(n),
    retries: n.retries,
  }));
}

/** The value in the middle (the mean of the two middle ones for an even count); null for none. */
export function median(values: readonly (number | null)[]): number | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** A baseline step: one run's values, or the median of several runs' (with how many had it). */
export interface BaselineStep extends StepValues {
  runs?: number;
}

/**
 * The per-step median of several runs (newest first). A step is in the baseline when at least
 * half of the runs had it; its state is the most frequent one (ties go to the newest run's).
 */
export function medianBaseline(runs: readonly (readonly StepValues[])[]): BaselineStep[] {
  const byKey = new Map<string, StepValues[]>();
  for (const run of runs)
    for (const step of run) {
      const list = byKey.get(step.key);
      if (list) list.push(step);
      else byKey.set(step.key, [step]);
    }
  const out: BaselineStep[] = [];
  for (const [key, steps] of byKey) {
    if (steps.length * 2 < runs.length) continue;
    const counts = new Map<TaskState, number>();
    for (const s of steps) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
    // Map order is first-seen order: runs are newest first, so the newest state wins a tie.
    let state = steps[0]!.state;
    for (const [s, n] of counts) if (n > (counts.get(state) ?? 0)) state = s;
    out.push({
      key,
      name: steps[0]!.name,
      task_id: null,
      state,
      runtime_ms: median(steps.map((s) => s.runtime_ms)),
      queue_wait_ms: median(steps.map((s) => s.queue_wait_ms)),
      retries: median(steps.map((s) => s.retries)) ?? 0,
      runs: steps.length,
    });
  }
  return out;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function measure(then: number | null, now: number | null): DiffMeasure {
  const both = then !== null && now !== null;
  return {
    then,
    now,
    delta_ms: both ? round(now - then, 3) : null,
    ratio: both && then > 0 ? round(now / then, 3) : null,
  };
}

/** Failed, revoked, lost…: broke the flow by itself (NOT_RUN is flagged apart). */
const failed = (s: TaskState | null) => s !== null && s !== "NOT_RUN" && isBroken(s);
const flagged = (d: StepDiff) => d.newly_failed || d.newly_not_run || d.added || d.missing || d.newly_retried;
const cost = (s: StepValues | undefined) => (s?.runtime_ms ?? 0) + (s?.queue_wait_ms ?? 0);

/** The diff of one step: `now` in this run, `then` in the baseline (either may be absent). */
export function diffStep(now: StepValues | undefined, then: BaselineStep | undefined): StepDiff {
  const matched = !!now && !!then;
  const runtime = measure(then?.runtime_ms ?? null, now?.runtime_ms ?? null);
  const queueWait = measure(then?.queue_wait_ms ?? null, now?.queue_wait_ms ?? null);
  return {
    key: (now ?? then)!.key,
    name: (now ?? then)!.name,
    task_id: now?.task_id ?? null,
    other_task_id: then?.task_id ?? null,
    state_then: then?.state ?? null,
    state_now: now?.state ?? null,
    runtime,
    queue_wait: queueWait,
    retries: { then: then?.retries ?? null, now: now?.retries ?? null },
    newly_failed: matched && failed(now.state) && !failed(then.state),
    newly_retried: matched && now.retries > then.retries,
    newly_not_run: matched && now.state === "NOT_RUN" && then.state !== "NOT_RUN",
    added: !!now && !then,
    missing: !now && !!then,
    impact_ms: round(
      matched
        ? Math.abs(runtime.delta_ms ?? 0) + Math.abs(queueWait.delta_ms ?? 0)
        : now
          ? cost(now)
          : cost(then),
      3,
    ),
    ...(then?.runs !== undefined ? { runs: then.runs } : {}),
  };
}

/** How many of the biggest changes the summary lists. */
export const BIGGEST_CHANGES = 10;

/** Below this (in ms, runtime and wait together) a step whose state and flags held counts as unchanged: clock jitter. */
export const CHANGE_THRESHOLD_MS = 1;

export function isChanged(d: StepDiff): boolean {
  return flagged(d) || d.state_then !== d.state_now || d.impact_ms >= CHANGE_THRESHOLD_MS;
}

/** Flagged steps first (a failure outranks any slowdown), then by impact, then in step order. */
export function byImpact(a: StepDiff, b: StepDiff): number {
  return Number(flagged(b)) - Number(flagged(a)) || b.impact_ms - a.impact_ms;
}

/** Compares this run's steps with a baseline's, step by step. */
export function diffSteps(
  now: readonly StepValues[],
  baseline: readonly BaselineStep[],
): { steps: StepDiff[]; summary: TraceDiff["summary"] } {
  const thenByKey = new Map(baseline.map((s) => [s.key, s]));
  const nowKeys = new Set(now.map((s) => s.key));
  const steps = [
    ...now.map((s) => diffStep(s, thenByKey.get(s.key))),
    ...baseline.filter((s) => !nowKeys.has(s.key)).map((s) => diffStep(undefined, s)),
  ];
  const changed = steps.filter(isChanged);
  const count = (f: (d: StepDiff) => boolean) => steps.filter(f).length;
  return {
    steps,
    summary: {
      steps: steps.length,
      changed: changed.length,
      newly_failed: count((d) => d.newly_failed),
      newly_retried: count((d) => d.newly_retried),
      newly_not_run: count((d) => d.newly_not_run),
      added: count((d) => d.added),
      missing: count((d) => d.missing),
      biggest: [...changed].sort(byImpact).slice(0, BIGGEST_CHANGES),
    },
  };
}

/**
 * The whole diff of `current` against `others` (newest first): one run for `trace` and
 * `previous`, up to 20 for `median`.
 */
export function diffTraces(
  current: DiffGraph,
  others: readonly DiffGraph[],
  mode: DiffAgainst["mode"],
): TraceDiff {
  if (others.length === 0) throw new Error("diffTraces needs at least one run to compare with");
  const nowSteps = stepsOf(current);
  const baseline: BaselineStep[] =
    mode === "median" ? medianBaseline(others.map(stepsOf)) : stepsOf(others[0]!);
  const { steps, summary } = diffSteps(nowSteps, baseline);
  const starts = others.map((o) => o.summary.started_at).filter((t): t is number => t !== null);
  const truncated = [current, ...others].some((g) => g.truncated);
  return {
    trace_id: current.trace_id,
    root_name: current.summary.root_name ?? "",
    started_at: current.summary.started_at,
    against: {
      mode,
      trace_ids: others.map((o) => o.trace_id),
      started_from: starts.length ? Math.min(...starts) : null,
      started_to: starts.length ? Math.max(...starts) : null,
    },
    duration: measure(
      mode === "median" ? median(others.map((o) => o.summary.duration_ms)) : others[0]!.summary.duration_ms,
      current.summary.duration_ms,
    ),
    steps,
    summary,
    ...(truncated ? { truncated: true } : {}),
  };
}
