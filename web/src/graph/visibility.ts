/**
 * The visibility policy: which cards a trace draws. Big groups and big fan-outs fold to their
 * first members plus a "… N more" stub; past the card budget further groups collapse, and
 * collapsed groups entered the same way share a shelf; edges of hidden tasks are rerouted to what
 * stands for them and bundled. Pure: a function of the snapshot and the folds the user opened.
 */
import type { EdgeKind, GraphContainer, GraphNode, TraceSnapshot } from "../../../shared/api";
import { push } from "./multimap";

/** Groups and fan-outs with more members than this fold until expanded. */
export const FOLD_OVER = 50;
/** How many members a folded group or fan-out still shows. */
export const FOLD_SHOW = 20;
/**
 * Task cards the graph draws before further groups collapse (in publish order; opened ones stay
 * open). Cards off screen cost little (culled), but every group is a box for elk and an edge:
 * 80 groups of 25 made elk take ~0.5 s and drew 80 dashed edges 40,000 px long, which Chromium's
 * software rasterizer took a second to draw.
 */
export const CARD_BUDGET = 500;
/** Collapsed groups with the same entry share a shelf from this many on. */
export const SHELF_MIN = 2;

export interface VisibleContainer {
  container: GraphContainer;
  /** Member ids drawn, in order (the fold stub, when any, comes after them). */
  members: string[];
  hidden: number;
  moreId: string | null;
  /** Some drawn edge joins two of its members (chain slots): elk lays it out as a nested graph. */
  internal: boolean;
  /** Past the card budget: no member drawn, only the stub. */
  collapsed: boolean;
}

export interface VisibleShelf {
  /** Also its fold key: expanding it opens every group on it. */
  id: string;
  containers: GraphContainer[];
}

export interface VisibleFold {
  id: string;
  foldKey: string;
  hidden: number;
}

export interface VisibleEdge {
  id: string;
  source: string;
  target: string;
  kind: EdgeKind;
  /** How many snapshot edges this one stands for (bundled into a container or a stub). */
  count: number;
}

export interface Visible {
  tasks: GraphNode[];
  containers: VisibleContainer[];
  /** Fan-out stubs outside containers. */
  folds: VisibleFold[];
  /** Collapsed groups sharing an entry; their containers are not in `containers`. */
  shelves: VisibleShelf[];
  edges: VisibleEdge[];
}

export const moreId = (foldKey: string) => `more:${foldKey}`;

/** What the steps of `visibleGraph` share: lookups of the snapshot and the maps they fill in. */
interface Scope {
  snapshot: TraceSnapshot;
  expanded: ReadonlySet<string>;
  /** Task id → its place in the snapshot (publish order). */
  order: Map<string, number>;
  byId: Map<string, GraphNode>;
  /** Hidden task (or stub) id → the stub drawn in its place. */
  hiddenBy: Map<string, string>;
  /** Member (or a container's stub) id → its container's id. */
  containerOf: Map<string, string>;
}

type Group = { container: GraphContainer; members: string[]; first: number };

/** Decides what is drawn: folds, collapses and shelves groups, reroutes and bundles edges. Pure. */
export function visibleGraph(snapshot: TraceSnapshot, expanded: ReadonlySet<string>): Visible {
  const scope: Scope = {
    snapshot,
    expanded,
    order: new Map(snapshot.nodes.map((n, i) => [n.id, i])),
    byId: new Map(snapshot.nodes.map((n) => [n.id, n])),
    hiddenBy: new Map(),
    containerOf: new Map(),
  };
  const groups = groupsInPublishOrder(scope);
  const folds = foldFanOuts(scope);
  const shelfOf = shelfKeys(scope);
  const containers = spendCardBudget(scope, groups, shelfOf);
  for (const c of containers) if (c.moreId) scope.containerOf.set(c.moreId, c.container.id);
  const { shelves, onShelf } = shelveCollapsed(containers, shelfOf);
  const edges = bundleEdges(routeEdges(scope, onShelf), scope.containerOf);
  const drawnContainers = containers.filter((c) => !onShelf.has(c.container.id));
  markInternal(drawnContainers, edges, scope.containerOf);
  return {
    tasks: snapshot.nodes.filter((n) => !scope.hiddenBy.has(n.id)),
    containers: drawnContainers,
    folds,
    shelves,
    edges,
  };
}

/**
 * Groups in publish order (of their first member; the snapshot sorts them by id): the budget
 * keeps the earliest drawn, and elk keeps siblings in this order. Fills `containerOf`.
 */
function groupsInPublishOrder({ snapshot, order, byId, containerOf }: Scope): Group[] {
  const groups = snapshot.containers.map((container) => {
    const members = container.members.filter((m) => byId.has(m));
    let first = Infinity;
    for (const m of members) first = Math.min(first, order.get(m)!);
    return { container, members, first };
  });
  groups.sort((a, b) => a.first - b.first);
  for (const g of groups) for (const m of g.members) containerOf.set(m, g.container.id);
  return groups;
}

/** Fan-outs (one source, one edge kind, many targets outside containers) fold to a stub. */
function foldFanOuts({ snapshot, expanded, order, byId, hiddenBy, containerOf }: Scope): VisibleFold[] {
  const fanOuts = new Map<string, string[]>();
  for (const e of snapshot.edges) {
    if (containerOf.has(e.target) || !byId.has(e.target)) continue;
    push(fanOuts, `${e.source}:${e.kind}`, e.target);
  }
  const folds: VisibleFold[] = [];
  for (const [key, targets] of fanOuts) {
    if (targets.length <= FOLD_OVER || expanded.has(key)) continue;
    const sorted = [...new Set(targets)].sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
    if (sorted.length <= FOLD_OVER) continue;
    const stub = moreId(key);
    for (const t of sorted.slice(FOLD_SHOW)) if (!hiddenBy.has(t)) hiddenBy.set(t, stub);
    folds.push({ id: stub, foldKey: key, hidden: sorted.length - FOLD_SHOW });
  }
  return folds;
}

/** How each group is entered (edge kinds and sources from outside it): the shelf it would share. */
function shelfKeys({ snapshot, hiddenBy, containerOf }: Scope): (containerId: string) => string {
  const entries = new Map<string, Set<string>>();
  for (const e of snapshot.edges) {
    const tc = containerOf.get(e.target);
    const from = containerOf.get(e.source) ?? hiddenBy.get(e.source) ?? e.source;
    if (!tc || from === tc) continue;
    const set = entries.get(tc) ?? new Set<string>();
    set.add(`${e.kind}<${from}`);
    entries.set(tc, set);
  }
  return (cid) => `shelf:${[...(entries.get(cid) ?? [])].sort().join("|")}`;
}

/** Groups in publish order draw their members until the card budget is spent; the rest collapse. */
function spendCardBudget(
  { snapshot, expanded, hiddenBy, containerOf }: Scope,
  groups: Group[],
  shelfOf: (cid: string) => string,
): VisibleContainer[] {
  let drawn = 0;
  for (const n of snapshot.nodes) if (!containerOf.has(n.id) && !hiddenBy.has(n.id)) drawn++;
  let over = false;
  return groups.map(({ container, members }) => {
    const open = expanded.has(container.id) || expanded.has(shelfOf(container.id));
    const shown = open || members.length <= FOLD_OVER ? members.length : FOLD_SHOW;
    if (!open && members.length > 0 && (over || drawn + shown > CARD_BUDGET)) {
      over = true;
      const stub = moreId(container.id);
      for (const m of members) hiddenBy.set(m, stub);
      return {
        container,
        members: [],
        hidden: members.length,
        moreId: stub,
        internal: false,
        collapsed: true,
      };
    }
    drawn += shown;
    if (shown === members.length)
      return { container, members, hidden: 0, moreId: null, internal: false, collapsed: false };
    const stub = moreId(container.id);
    for (const m of members.slice(FOLD_SHOW)) hiddenBy.set(m, stub);
    return {
      container,
      members: members.slice(0, FOLD_SHOW),
      hidden: members.length - FOLD_SHOW,
      moreId: stub,
      internal: false,
      collapsed: false,
    };
  });
}

/**
 * Collapsed groups with the same entry go on one shelf. `onShelf`: a shelved container's id and
 * its stub's → the shelf, where their edges attach.
 */
function shelveCollapsed(
  containers: VisibleContainer[],
  shelfOf: (cid: string) => string,
): { shelves: VisibleShelf[]; onShelf: Map<string, string> } {
  const byShelf = new Map<string, VisibleContainer[]>();
  for (const c of containers) if (c.collapsed) push(byShelf, shelfOf(c.container.id), c);
  const shelves: VisibleShelf[] = [];
  const onShelf = new Map<string, string>();
  for (const [id, list] of byShelf) {
    if (list.length < SHELF_MIN) continue;
    shelves.push({ id, containers: list.map((c) => c.container) });
    for (const c of list) {
      onShelf.set(c.container.id, id);
      onShelf.set(c.moreId!, id);
    }
  }
  return { shelves, onShelf };
}

/** Reroutes edges of folded tasks to their stub (or shelf), drops loops and merges duplicates. */
function routeEdges(
  { snapshot, hiddenBy, containerOf }: Scope,
  onShelf: ReadonlyMap<string, string>,
): Map<string, VisibleEdge> {
  const route = (id: string) => {
    const r = hiddenBy.get(id) ?? id;
    return onShelf.get(r) ?? onShelf.get(containerOf.get(r) ?? "") ?? r;
  };
  const routed = new Map<string, VisibleEdge>();
  for (const e of snapshot.edges) {
    const source = route(e.source);
    const target = route(e.target);
    if (source === target) continue;
    const id = `${e.kind}:${source}->${target}`;
    const known = routed.get(id);
    if (known) known.count++;
    else routed.set(id, { id, source, target, kind: e.kind, count: 1 });
  }
  return routed;
}

/** Bundles many edges of one kind between an outside task and members of one container into one edge. */
function bundleEdges(
  routed: Map<string, VisibleEdge>,
  containerOf: ReadonlyMap<string, string>,
): VisibleEdge[] {
  const bundles = new Map<string, VisibleEdge[]>();
  for (const e of routed.values()) {
    const tc = containerOf.get(e.target);
    const sc = containerOf.get(e.source);
    if (tc && sc !== tc) push(bundles, `in|${e.kind}|${e.source}|${tc}`, e);
    else if (sc && tc !== sc) push(bundles, `out|${e.kind}|${sc}|${e.target}`, e);
  }
  const edges: VisibleEdge[] = [];
  const bundled = new Set<VisibleEdge>();
  for (const [key, list] of bundles) {
    if (list.length < 2) continue;
    // "in|kind|task|container" or "out|kind|container|task": either way, source then target.
    const [, kind, source, target] = key.split("|") as [string, EdgeKind, string, string];
    for (const e of list) bundled.add(e);
    const count = list.reduce((n, e) => n + e.count, 0);
    edges.push({ id: `${kind}:${source}->${target}`, source, target, kind, count });
  }
  for (const e of routed.values()) if (!bundled.has(e)) edges.push(e);
  const merged = new Map<string, VisibleEdge>();
  for (const e of edges) {
    const known = merged.get(e.id);
    if (known) known.count += e.count;
    else merged.set(e.id, e);
  }
  return [...merged.values()];
}

/** A drawn container with an edge between two of its members is `internal` (elk nests it). */
function markInternal(
  containers: VisibleContainer[],
  edges: VisibleEdge[],
  containerOf: ReadonlyMap<string, string>,
) {
  for (const e of edges) {
    const sc = containerOf.get(e.source);
    if (sc && sc === containerOf.get(e.target)) {
      const c = containers.find((x) => x.container.id === sc);
      if (c) c.internal = true;
    }
  }
}
