/**
 * Layout as a pure function of the snapshot (plus which folds the user opened): React Flow nodes
 * for tasks, GROUP/CHORD containers (parent nodes) and "… N more" stubs, positioned by elkjs
 * (layered, left to right, nested containers). elk itself is injected (`ElkLike`): the app runs it
 * in a Web Worker, tests run it in-process.
 *
 * What keeps 2,000-task traces usable:
 * - big groups and big fan-outs (one parent spawning hundreds) fold to their first members plus a
 *   stub that expands on click; edges of folded tasks are rerouted to the stub;
 * - past a budget of drawn task cards (`CARD_BUDGET`), further groups collapse to their stub
 *   alone, and collapsed groups entered the same way (same parent, same edge kind) share one
 *   "shelf": a grid of group summaries that open on click (80 groups of 25 are 20 boxes, not 80);
 * - edges from one task to many members of a container are drawn once, to the container;
 * - a container whose members have no edges between them is a grid (elk sees one box), so a
 *   500-member group is a compact block instead of a 35,000 px column;
 * - past `ELK_LIMIT` boxes, a linear-time layered layout replaces elk.
 */
import { Position, type Edge, type Node, type NodeHandle } from "@xyflow/react";
import type { ElkExtendedEdge, ElkNode } from "elkjs/lib/elk-api.js";
import type { EdgeKind, GraphContainer, GraphNode, TraceSnapshot } from "../../../shared/api";

export const TASK_W = 216;
export const TASK_H = 60;
export const MORE_H = 44;
const GAP = 10;
const PAD_TOP = 36;
const PAD_SIDE = 12;
/** Groups and fan-outs with more members than this fold until expanded. */
export const FOLD_OVER = 50;
/** How many members a folded group or fan-out still shows. */
export const FOLD_SHOW = 20;
/** Above this many top-level boxes, elk is replaced by the linear layered layout. */
export const ELK_LIMIT = 500;
/**
 * Traces with more tasks than this are laid out as a tree when their drawn part is one: elk in a
 * fresh worker needs 0.3–0.7 s on this machine before its first layout is done (its code compiles
 * on first use), while a tree layout of the same boxes takes a millisecond and looks the same.
 */
export const TREE_OVER = 500;
/**
 * Task cards the graph draws before further groups collapse (in publish order; opened ones stay
 * open). Cards off screen cost little (culled), but every group is a box for elk and an edge:
 * 80 groups of 25 made elk take ~0.5 s and drew 80 dashed edges 40,000 px long, which Chromium's
 * software rasterizer took a second to draw.
 */
export const CARD_BUDGET = 500;
/** Collapsed groups with the same entry share a shelf from this many on. */
export const SHELF_MIN = 2;
/** A group's summary on a shelf. */
export const SUMMARY_W = TASK_W;
export const SUMMARY_H = 52;

export interface ElkLike {
  layout(graph: ElkNode): Promise<ElkNode>;
}

/**
 * Which sides carry edges. Handles are drawn only there: each handle subscribes to the React Flow
 * store, and thousands of idle ones (members of bundled groups) made every store update slow.
 */
export type Ports = { in: boolean; out: boolean };
export type TaskNodeData = { kind: "task"; task: GraphNode; ports: Ports };
/** A grid cell of a container drawn by the container itself (not a React Flow node). */
export type Cell = { id: string; x: number; y: number; more: boolean };
/**
 * `cells` set: the container draws its members itself as plain DOM (`tasks` holds them, in cell
 * order): React Flow then handles one node per group instead of one per member, which is what
 * kept 2,000-task traces slow. Unset: members are child React Flow nodes (containers with edges
 * between members, laid out by elk).
 */
export type ContainerNodeData = { kind: "container"; container: GraphContainer; hidden: number; counts: StateCount[]; ports: Ports; cells?: Cell[]; tasks?: (GraphNode | null)[] };
export type MoreNodeData = { kind: "more"; foldKey: string; hidden: number; what: "members" | "children"; ports: Ports };
/** Collapsed groups drawn as one box of summaries (`cells[i]` is where `groups[i]` is drawn). */
export type ShelfGroup = { container: GraphContainer; counts: StateCount[] };
export type ShelfNodeData = { kind: "shelf"; foldKey: string; groups: ShelfGroup[]; tasks: number; counts: StateCount[]; ports: Ports; cells: Cell[] };
export type FlowNodeData = TaskNodeData | ContainerNodeData | MoreNodeData | ShelfNodeData;
export type FlowNode = Node<FlowNodeData>;
/**
 * `bus`: the edge is one of a fan-out drawn as a comb (see `withBuses`): "down"/"up" draw the
 * trunk from the source to the farthest target below/above, "branch" only the tooth into its
 * target.
 */
export type FlowEdgeData = { kind: EdgeKind; count: number; bus?: "up" | "down" | "branch" };
export type FlowEdge = Edge<FlowEdgeData>;
export type StateCount = [GraphNode["state"], number];

export interface Layout {
  nodes: FlowNode[];
  edges: FlowEdge[];
  /** Where the trace starts (root task or its box): the first view centres here on big graphs. */
  rootId: string | null;
  engine: "elk" | "tree" | "linear";
}

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

/** Decides what is drawn: folds, collapses and shelves groups, reroutes and bundles edges. Pure. */
export function visibleGraph(snapshot: TraceSnapshot, expanded: ReadonlySet<string>): Visible {
  const order = new Map(snapshot.nodes.map((n, i) => [n.id, i]));
  const byId = new Map(snapshot.nodes.map((n) => [n.id, n]));
  const hiddenBy = new Map<string, string>();
  const containerOf = new Map<string, string>();
  // Groups in publish order (of their first member; the snapshot sorts them by id): the budget
  // keeps the earliest drawn, and elk keeps siblings in this order.
  const groups = snapshot.containers.map((container) => {
    const members = container.members.filter((m) => byId.has(m));
    let first = Infinity;
    for (const m of members) first = Math.min(first, order.get(m)!);
    return { container, members, first };
  });
  groups.sort((a, b) => a.first - b.first);
  for (const g of groups) for (const m of g.members) containerOf.set(m, g.container.id);

  // Fan-outs: one source, one edge kind, many targets outside containers.
  const fanOuts = new Map<string, string[]>();
  for (const e of snapshot.edges) {
    if (containerOf.has(e.target) || !byId.has(e.target)) continue;
    const key = `${e.source}:${e.kind}`;
    const list = fanOuts.get(key);
    if (list) list.push(e.target);
    else fanOuts.set(key, [e.target]);
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

  // How each group is entered (edge kinds and sources from outside it): the shelf it would share.
  const entries = new Map<string, Set<string>>();
  for (const e of snapshot.edges) {
    const tc = containerOf.get(e.target);
    const from = containerOf.get(e.source) ?? hiddenBy.get(e.source) ?? e.source;
    if (!tc || from === tc) continue;
    const set = entries.get(tc) ?? new Set<string>();
    set.add(`${e.kind}<${from}`);
    entries.set(tc, set);
  }
  const shelfOf = (cid: string) => `shelf:${[...(entries.get(cid) ?? [])].sort().join("|")}`;

  // Groups in publish order draw their members until the card budget is spent; the rest collapse.
  let drawn = 0;
  for (const n of snapshot.nodes) if (!containerOf.has(n.id) && !hiddenBy.has(n.id)) drawn++;
  let over = false;
  const containers: VisibleContainer[] = groups.map(({ container, members }) => {
    const open = expanded.has(container.id) || expanded.has(shelfOf(container.id));
    const shown = open || members.length <= FOLD_OVER ? members.length : FOLD_SHOW;
    if (!open && members.length > 0 && (over || drawn + shown > CARD_BUDGET)) {
      over = true;
      const stub = moreId(container.id);
      for (const m of members) hiddenBy.set(m, stub);
      return { container, members: [], hidden: members.length, moreId: stub, internal: false, collapsed: true };
    }
    drawn += shown;
    if (shown === members.length) return { container, members, hidden: 0, moreId: null, internal: false, collapsed: false };
    const stub = moreId(container.id);
    for (const m of members.slice(FOLD_SHOW)) hiddenBy.set(m, stub);
    return { container, members: members.slice(0, FOLD_SHOW), hidden: members.length - FOLD_SHOW, moreId: stub, internal: false, collapsed: false };
  });
  for (const c of containers) if (c.moreId) containerOf.set(c.moreId, c.container.id);

  // Collapsed groups with the same entry go on one shelf; their edges attach to it.
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

  // Reroute edges of folded tasks to their stub (or shelf), drop loops and duplicates.
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

  // Bundle: many edges of one kind between an outside task and members of one container → one edge.
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
  const finalEdges = [...merged.values()];
  const drawnContainers = containers.filter((c) => !onShelf.has(c.container.id));
  for (const e of finalEdges) {
    const sc = containerOf.get(e.source);
    if (sc && sc === containerOf.get(e.target)) {
      const c = drawnContainers.find((x) => x.container.id === sc);
      if (c) c.internal = true;
    }
  }
  return { tasks: snapshot.nodes.filter((n) => !hiddenBy.has(n.id)), containers: drawnContainers, folds, shelves, edges: finalEdges };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Columns for a grid container: one column for small groups, roughly square blocks for big ones. */
export function gridColumns(count: number): number {
  if (count <= 8) return 1;
  return Math.max(2, Math.round(Math.sqrt((count * (TASK_H + GAP)) / (TASK_W + GAP))));
}

interface Box {
  width: number;
  height: number;
  /** Member positions relative to the container. */
  cells: Cell[];
}

function gridBox(c: VisibleContainer): Box {
  const items = [...c.members.map((id) => ({ id, more: false })), ...(c.moreId ? [{ id: c.moreId, more: true }] : [])];
  const cols = gridColumns(items.length);
  const rows = Math.ceil(items.length / cols);
  const cells = items.map((item, i) => ({
    ...item,
    x: PAD_SIDE + (i % cols) * (TASK_W + GAP),
    y: PAD_TOP + Math.floor(i / cols) * (TASK_H + GAP),
  }));
  const lastRowHasMore = items.length > 0 && items[items.length - 1]!.more && items.length % cols === 1;
  const height = PAD_TOP + rows * (TASK_H + GAP) - GAP - (lastRowHasMore ? TASK_H - MORE_H : 0) + PAD_SIDE;
  return { width: PAD_SIDE * 2 + cols * (TASK_W + GAP) - GAP, height: Math.max(height, PAD_TOP + MORE_H), cells };
}

function shelfBox(s: VisibleShelf): Box {
  const n = s.containers.length;
  // Two columns at least: the title row (count, state bar, "open all") needs the width.
  const cols = Math.min(n, Math.max(2, Math.round(Math.sqrt((n * (SUMMARY_H + GAP)) / (SUMMARY_W + GAP)))));
  const rows = Math.ceil(n / cols);
  const cells = s.containers.map((c, i) => ({ id: c.id, more: false, x: PAD_SIDE + (i % cols) * (SUMMARY_W + GAP), y: PAD_TOP + Math.floor(i / cols) * (SUMMARY_H + GAP) }));
  return { width: PAD_SIDE * 2 + cols * (SUMMARY_W + GAP) - GAP, height: PAD_TOP + rows * (SUMMARY_H + GAP) - GAP + PAD_SIDE, cells };
}

/** Counts per state of the given tasks. */
export function stateCounts(ids: readonly string[], byId: Map<string, GraphNode>): StateCount[] {
  const counts = new Map<GraphNode["state"], number>();
  for (const id of ids) {
    const n = byId.get(id);
    if (n) counts.set(n.state, (counts.get(n.state) ?? 0) + 1);
  }
  return [...counts];
}

/** Counts per state of a container's members (all of them, folded ones too). */
export function containerCounts(container: GraphContainer, byId: Map<string, GraphNode>): StateCount[] {
  return stateCounts(container.members, byId);
}

/** React Flow edges; an edge to a member drawn inside its container's grid attaches to the container. */
function flowEdges(v: Visible, owner: ReadonlyMap<string, string>): FlowEdge[] {
  const out = new Map<string, FlowEdge>();
  for (const e of v.edges) {
    const source = owner.get(e.source) ?? e.source;
    const target = owner.get(e.target) ?? e.target;
    if (source === target) continue;
    const id = `${e.kind}:${source}->${target}`;
    const known = out.get(id);
    if (known?.data) known.data.count += e.count;
    else out.set(id, { id, source, target, data: { kind: e.kind, count: e.count }, className: `edge edge-${e.kind}`, focusable: false });
  }
  return [...out.values()];
}

function rootOf(snapshot: TraceSnapshot, v: Visible, owner: (id: string) => string): string | null {
  const id = snapshot.summary.root_task_id ?? v.tasks[0]?.id ?? null;
  return id === null ? null : owner(id);
}

/** Options of the root graph elk lays out. */
const ELK_OPTIONS: Record<string, string> = {
  "elk.algorithm": "layered",
  "elk.direction": "RIGHT",
  "elk.hierarchyHandling": "INCLUDE_CHILDREN",
  "elk.layered.spacing.nodeNodeBetweenLayers": "64",
  "elk.spacing.nodeNode": "20",
  "elk.spacing.componentComponent": "40",
  "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
};

/** Builds the elk graph for the visible part. Pure; exported for tests. */
export function elkGraph(v: Visible): { graph: ElkNode; boxes: Map<string, Box> } {
  const boxes = new Map<string, Box>();
  const leafOwner = new Map<string, string>();
  const children: ElkNode[] = [];
  const placed = new Set<string>();
  for (const c of v.containers) {
    if (c.members.length === 0 && !c.moreId) continue;
    for (const m of c.members) placed.add(m);
    if (c.internal) {
      const members: ElkNode[] = c.members.map((m) => ({ id: m, width: TASK_W, height: TASK_H }));
      if (c.moreId) members.push({ id: c.moreId, width: TASK_W, height: MORE_H });
      children.push({
        id: c.container.id,
        layoutOptions: {
          "elk.padding": `[top=${PAD_TOP},left=${PAD_SIDE},bottom=${PAD_SIDE},right=${PAD_SIDE}]`,
          "elk.spacing.nodeNode": String(GAP),
          "elk.layered.spacing.nodeNodeBetweenLayers": "36",
          // Not considerModelOrder here: with INCLUDE_CHILDREN it crashes elk 0.12 (see layout.test.ts).
        },
        children: members,
      });
    } else {
      const box = gridBox(c);
      boxes.set(c.container.id, box);
      for (const cell of box.cells) leafOwner.set(cell.id, c.container.id);
      children.push({ id: c.container.id, width: box.width, height: box.height });
    }
  }
  for (const t of v.tasks) if (!placed.has(t.id)) children.push({ id: t.id, width: TASK_W, height: TASK_H });
  for (const f of v.folds) children.push({ id: f.id, width: TASK_W, height: MORE_H });
  for (const sh of v.shelves) {
    const box = shelfBox(sh);
    boxes.set(sh.id, box);
    children.push({ id: sh.id, width: box.width, height: box.height });
  }
  const known = new Set<string>();
  const collect = (n: ElkNode) => {
    known.add(n.id);
    n.children?.forEach(collect);
  };
  children.forEach(collect);
  const elkEdges: ElkExtendedEdge[] = [];
  const seen = new Set<string>();
  for (const e of v.edges) {
    const source = leafOwner.get(e.source) ?? e.source;
    const target = leafOwner.get(e.target) ?? e.target;
    const id = `${source}->${target}`;
    if (source === target || seen.has(id) || !known.has(source) || !known.has(target)) continue;
    seen.add(id);
    elkEdges.push({ id, sources: [source], targets: [target] });
  }
  return {
    boxes,
    graph: {
      id: "root",
      layoutOptions: {
        ...ELK_OPTIONS,
        // Keeps siblings in publish order; only without nested containers (it crashes elk there).
        ...(v.containers.some((c) => c.internal) ? {} : { "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES" }),
      },
      children,
      edges: elkEdges,
    },
  };
}

/**
 * Lays out the snapshot: elk for normal graphs; for large traces (over `TREE_OVER` tasks) whose
 * drawn part is a forest (every box entered from at most one other: fan-outs, groups, chains,
 * chord callbacks), the tree layout; the linear layout past `ELK_LIMIT` boxes.
 */
export async function layoutGraph(snapshot: TraceSnapshot, expanded: ReadonlySet<string>, elk: ElkLike): Promise<Layout> {
  const v = visibleGraph(snapshot, expanded);
  if (snapshot.nodes.length > TREE_OVER) {
    const tree = treeLayout(snapshot, v);
    if (tree) return withBuses(tree);
  }
  const { graph, boxes } = elkGraph(v);
  if ((graph.children?.length ?? 0) > ELK_LIMIT) return withBuses(linearLayout(snapshot, v));
  return withBuses(await elkLayout(snapshot, v, graph, boxes, elk));
}

/** Fan-outs of at least this many edges (one source, one kind, targets to its right) are combs. */
export const BUS_MIN = 3;

/**
 * Draws each big fan-out as a comb: one trunk beside the source, a short tooth into each target,
 * instead of one curve per target all the way from the source. It reads better, and it is what
 * keeps large traces fast: Chromium's software rasterizer dashes the whole length of every path
 * it draws (spawn edges are dashed), and 80 curves from one task down a 40,000 px column of
 * groups took it seconds per frame; a comb is one long path and short teeth.
 */
export function withBuses(layout: Layout): Layout {
  const boxes = new Map<string, { x: number; cy: number; right: number }>();
  for (const n of layout.nodes) if (!n.parentId) boxes.set(n.id, { x: n.position.x, cy: n.position.y + (n.height ?? 0) / 2, right: n.position.x + (n.width ?? 0) });
  const fans = new Map<string, FlowEdge[]>();
  for (const e of layout.edges) if (e.data && boxes.has(e.source) && boxes.has(e.target)) push(fans, `${e.source}|${e.data.kind}`, e);
  const roles = new Map<string, "up" | "down" | "branch">();
  for (const list of fans.values()) {
    if (list.length < BUS_MIN) continue;
    const from = boxes.get(list[0]!.source)!;
    if (!list.every((e) => boxes.get(e.target)!.x > from.right + BUS_OFFSET)) continue;
    const y = (e: FlowEdge) => boxes.get(e.target)!.cy;
    const lowest = list.reduce((a, e) => (y(e) > y(a) ? e : a));
    const highest = list.reduce((a, e) => (y(e) < y(a) ? e : a));
    for (const e of list) roles.set(e.id, "branch");
    if (y(lowest) > from.cy) roles.set(lowest.id, "down");
    if (y(highest) < from.cy) roles.set(highest.id, "up");
  }
  if (roles.size === 0) return layout;
  const edges = layout.edges.map((e) => {
    const bus = roles.get(e.id);
    return bus && e.data ? { ...e, type: "bus", data: { ...e.data, bus } } : e;
  });
  return { ...layout, edges };
}

/** How far right of its source a comb's trunk runs. */
export const BUS_OFFSET = 24;

async function elkLayout(snapshot: TraceSnapshot, v: Visible, graph: ElkNode, boxes: Map<string, Box>, elk: ElkLike): Promise<Layout> {
  const root = await elk.layout(graph);
  const byId = new Map(snapshot.nodes.map((n) => [n.id, n]));
  const containerInfo = new Map(v.containers.map((c) => [c.container.id, c]));
  const foldInfo = new Map(v.folds.map((f) => [f.id, f]));
  const shelfInfo = new Map(v.shelves.map((sh) => [sh.id, sh]));
  const nodes: FlowNode[] = [];
  const owner = new Map<string, string>();
  for (const [cid, box] of boxes) for (const cell of box.cells) owner.set(cell.id, cid);
  const ports = portsOf(v, owner);
  for (const n of root.children ?? []) {
    const position = { x: n.x ?? 0, y: n.y ?? 0 };
    const c = containerInfo.get(n.id);
    if (c) {
      const width = n.width ?? 0;
      const height = n.height ?? 0;
      const box = boxes.get(c.container.id);
      nodes.push(containerNode(c, position, width, height, byId, ports, box?.cells));
      if (box) continue;
      for (const m of n.children ?? []) {
        const at = { x: m.x ?? 0, y: m.y ?? 0 };
        nodes.push(m.id === c.moreId ? moreNode(m.id, c.container.id, c.hidden, "members", at, ports, c.container.id) : taskNode(byId.get(m.id)!, at, ports, c.container.id));
      }
      continue;
    }
    const fold = foldInfo.get(n.id);
    if (fold) {
      nodes.push(moreNode(fold.id, fold.foldKey, fold.hidden, "children", position, ports));
      continue;
    }
    const shelf = shelfInfo.get(n.id);
    if (shelf) {
      nodes.push(shelfNode(shelf, position, boxes.get(shelf.id)!, byId, ports));
      continue;
    }
    const task = byId.get(n.id);
    if (task) nodes.push(taskNode(task, position, ports));
  }
  return { nodes, edges: flowEdges(v, owner), rootId: rootOf(snapshot, v, (id) => owner.get(id) ?? id), engine: "elk" };
}

type PortsOf = (id: string) => Ports;

function portsOf(v: Visible, owner: ReadonlyMap<string, string> = new Map()): PortsOf {
  const ins = new Set<string>();
  const outs = new Set<string>();
  for (const e of v.edges) {
    outs.add(owner.get(e.source) ?? e.source);
    ins.add(owner.get(e.target) ?? e.target);
  }
  return (id) => ({ in: ins.has(id), out: outs.has(id) });
}

/** Size of the drawn handles (styles.css `.react-flow__handle`): centred on the box's left and right sides. */
const HANDLE = 6;

/**
 * Handle geometry known up front. React Flow renders every node without handle bounds once, to
 * measure its handles, whatever `onlyRenderVisibleElements` says (xyflow `getNodesInside`:
 * `forceInitialRender`): for a 2,000-task trace that first frame mounted, laid out and rasterized
 * every card only to unmount most of them, and kept the page busy for a second after first paint.
 * With `handles` (and `measured`) given, only what is in the viewport is ever mounted, nothing is
 * measured, edges attach right away, and fitView still sees every node. `border`: the handles sit
 * inside a bordered, positioned box (the task card's 1 px).
 */
export function handlesOf(ports: Ports, width: number, height: number, border = 0): NodeHandle[] {
  const y = height / 2 - HANDLE / 2;
  const out: NodeHandle[] = [];
  if (ports.in) out.push({ type: "target", position: Position.Left, x: border - HANDLE / 2, y, width: HANDLE, height: HANDLE });
  if (ports.out) out.push({ type: "source", position: Position.Right, x: width - border - HANDLE / 2, y, width: HANDLE, height: HANDLE });
  return out;
}

function taskNode(task: GraphNode, position: { x: number; y: number }, ports: PortsOf, parentId?: string): FlowNode {
  const p = ports(task.id);
  return { id: task.id, type: "task", position, width: TASK_W, height: TASK_H, measured: { width: TASK_W, height: TASK_H }, handles: handlesOf(p, TASK_W, TASK_H, 1), data: { kind: "task", task, ports: p }, ...(parentId ? { parentId, extent: "parent" as const } : {}) };
}

function moreNode(id: string, foldKey: string, hidden: number, what: MoreNodeData["what"], position: { x: number; y: number }, ports: PortsOf, parentId?: string): FlowNode {
  const p = ports(id);
  return { id, type: "more", position, width: TASK_W, height: MORE_H, measured: { width: TASK_W, height: MORE_H }, handles: handlesOf(p, TASK_W, MORE_H), selectable: false, data: { kind: "more", foldKey, hidden, what, ports: p }, ...(parentId ? { parentId, extent: "parent" as const } : {}) };
}

function shelfNode(sh: VisibleShelf, position: { x: number; y: number }, box: Box, byId: Map<string, GraphNode>, ports: PortsOf): FlowNode {
  const { width, height } = box;
  const p = ports(sh.id);
  const all: string[] = [];
  for (const c of sh.containers) all.push(...c.members);
  return {
    id: sh.id,
    type: "shelf",
    position,
    width,
    height,
    measured: { width, height },
    handles: handlesOf(p, width, height),
    style: { width, height },
    selectable: false,
    data: { kind: "shelf", foldKey: sh.id, groups: sh.containers.map((c) => ({ container: c, counts: containerCounts(c, byId) })), tasks: all.length, counts: stateCounts(all, byId), ports: p, cells: box.cells },
  };
}

function containerNode(c: VisibleContainer, position: { x: number; y: number }, width: number, height: number, byId: Map<string, GraphNode>, ports: PortsOf, cells?: Cell[]): FlowNode {
  return {
    id: c.container.id,
    type: "container",
    position,
    width,
    height,
    measured: { width, height },
    handles: handlesOf(ports(c.container.id), width, height),
    style: { width, height },
    selectable: false,
    data: {
      kind: "container",
      container: c.container,
      hidden: c.hidden,
      counts: containerCounts(c.container, byId),
      ports: ports(c.container.id),
      ...(cells ? { cells, tasks: cells.map((cell) => (cell.more ? null : (byId.get(cell.id) ?? null))) } : {}),
    },
  };
}

/** Everything that draws the top-level boxes of a layout, whichever engine placed them. */
interface Boxes {
  /** Grid cell → the container drawing it. */
  owner: Map<string, string>;
  /** Top-level box ids: containers, free tasks, fold stubs, shelves. */
  items: string[];
  size(id: string): { w: number; h: number };
  place(id: string, position: { x: number; y: number }): FlowNode | null;
  top(id: string): string;
}

function topLevelBoxes(snapshot: TraceSnapshot, v: Visible): Boxes {
  const byId = new Map(snapshot.nodes.map((n) => [n.id, n]));
  const owner = new Map<string, string>();
  const boxes = new Map<string, Box>();
  for (const c of v.containers) {
    const box = gridBox(c);
    boxes.set(c.container.id, box);
    for (const cell of box.cells) owner.set(cell.id, c.container.id);
  }
  for (const sh of v.shelves) boxes.set(sh.id, shelfBox(sh));
  const items: string[] = [];
  for (const c of v.containers) items.push(c.container.id);
  for (const t of v.tasks) if (!owner.has(t.id)) items.push(t.id);
  for (const f of v.folds) items.push(f.id);
  for (const sh of v.shelves) items.push(sh.id);
  const size = (id: string) => {
    const box = boxes.get(id);
    if (box) return { w: box.width, h: box.height };
    return { w: TASK_W, h: id.startsWith("more:") ? MORE_H : TASK_H };
  };
  const ports = portsOf(v, owner);
  const containerInfo = new Map(v.containers.map((c) => [c.container.id, c]));
  const foldInfo = new Map(v.folds.map((f) => [f.id, f]));
  const shelfInfo = new Map(v.shelves.map((sh) => [sh.id, sh]));
  const place = (id: string, position: { x: number; y: number }): FlowNode | null => {
    const { w, h } = size(id);
    const c = containerInfo.get(id);
    if (c) return containerNode(c, position, w, h, byId, ports, boxes.get(id)!.cells);
    const fold = foldInfo.get(id);
    if (fold) return moreNode(fold.id, fold.foldKey, fold.hidden, "children", position, ports);
    const shelf = shelfInfo.get(id);
    if (shelf) return shelfNode(shelf, position, boxes.get(id)!, byId, ports);
    const task = byId.get(id);
    return task ? taskNode(task, position, ports) : null;
  };
  return { owner, items, size, place, top: (id) => owner.get(id) ?? id };
}

const TREE_LAYER_GAP = 64;
const TREE_SIBLING_GAP = 20;
const TREE_COMPONENT_GAP = 40;

/**
 * Left-to-right tree: a column per depth, siblings stacked in publish order (fold stubs and shelves
 * after them), each parent level with its first child, so the first view (at the root) shows the
 * start of the trace. Null when some box is entered from two others (a join: elk places those) or
 * a group has edges inside (elk nests it).
 */
export function treeLayout(snapshot: TraceSnapshot, v: Visible): Layout | null {
  if (v.containers.some((c) => c.internal)) return null;
  const b = topLevelBoxes(snapshot, v);
  // Publish order: a task's place in the snapshot, a group's earliest member's; stubs and shelves last.
  const ranks = new Map(snapshot.nodes.map((n, i) => [n.id, i]));
  for (const c of v.containers) ranks.set(c.container.id, Math.min(Infinity, ...c.container.members.map((m) => ranks.get(m) ?? Infinity)));
  b.items.forEach((id, i) => {
    const r = ranks.get(id);
    if (r === undefined || !Number.isFinite(r)) ranks.set(id, snapshot.nodes.length + i);
  });
  const parent = new Map<string, string>();
  const children = new Map<string, string[]>();
  for (const e of v.edges) {
    const s = b.top(e.source);
    const t = b.top(e.target);
    if (s === t) continue;
    const known = parent.get(t);
    if (known === s) continue;
    if (known !== undefined) return null;
    parent.set(t, s);
    push(children, s, t);
  }
  for (const list of children.values()) list.sort((x, y) => ranks.get(x)! - ranks.get(y)!);
  // Depths from the roots; a box never reached from a root sits on a cycle: not a tree.
  const depth = new Map<string, number>();
  const roots = b.items.filter((id) => !parent.has(id)).sort((x, y) => ranks.get(x)! - ranks.get(y)!);
  const order: string[] = [];
  for (const r of roots) {
    const stack: [string, number][] = [[r, 0]];
    while (stack.length) {
      const [id, d] = stack.pop()!;
      if (depth.has(id)) return null;
      depth.set(id, d);
      order.push(id);
      const kids = children.get(id) ?? [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i]!, d + 1]);
    }
  }
  if (depth.size !== b.items.length) return null;
  const colW: number[] = [];
  for (const id of order) colW[depth.get(id)!] = Math.max(colW[depth.get(id)!] ?? 0, b.size(id).w);
  const colX: number[] = [0];
  for (let d = 1; d < colW.length; d++) colX[d] = colX[d - 1]! + colW[d - 1]! + TREE_LAYER_GAP;
  // Subtree heights bottom-up (reverse pre-order visits children before parents).
  const span = new Map<string, number>();
  const kidsSpan = (id: string) => {
    const kids = children.get(id) ?? [];
    return kids.reduce((n, k) => n + span.get(k)!, 0) + Math.max(0, kids.length - 1) * TREE_SIBLING_GAP;
  };
  for (let i = order.length - 1; i >= 0; i--) {
    const id = order[i]!;
    span.set(id, Math.max(b.size(id).h, kidsSpan(id)));
  }
  const nodes: FlowNode[] = [];
  const at = (id: string, top: number) => {
    const stack: [string, number][] = [[id, top]];
    while (stack.length) {
      const [n, t] = stack.pop()!;
      const node = b.place(n, { x: colX[depth.get(n)!]!, y: t });
      if (node) nodes.push(node);
      let y = t;
      const placed: [string, number][] = [];
      for (const k of children.get(n) ?? []) {
        placed.push([k, y]);
        y += span.get(k)! + TREE_SIBLING_GAP;
      }
      for (let i = placed.length - 1; i >= 0; i--) stack.push(placed[i]!);
    }
  };
  let top = 0;
  for (const r of roots) {
    at(r, top);
    top += span.get(r)! + TREE_COMPONENT_GAP;
  }
  return { nodes, edges: flowEdges(v, b.owner), rootId: rootOf(snapshot, v, b.top), engine: "tree" };
}

/**
 * Columns by depth along edges, boxes stacked in each column, tall columns wrapped: linear time,
 * for graphs elk would take seconds on (thousands of unfolded boxes).
 */
export function linearLayout(snapshot: TraceSnapshot, v: Visible): Layout {
  const b = topLevelBoxes(snapshot, v);
  const incoming = new Map<string, string[]>();
  for (const e of v.edges) {
    const s = b.top(e.source);
    const t = b.top(e.target);
    if (s !== t) push(incoming, t, s);
  }
  // Iterative depth (longest path from a source), guarding against cycles.
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (start: string): number => {
    const stack: string[] = [start];
    while (stack.length) {
      const id = stack[stack.length - 1]!;
      if (depth.has(id)) {
        stack.pop();
        continue;
      }
      const parents = (incoming.get(id) ?? []).filter((p) => !depth.has(p) && !visiting.has(p));
      if (parents.length && !visiting.has(id)) {
        visiting.add(id);
        stack.push(...parents);
        continue;
      }
      visiting.delete(id);
      depth.set(id, Math.max(-1, ...(incoming.get(id) ?? []).map((p) => depth.get(p) ?? -1)) + 1);
      stack.pop();
    }
    return depth.get(start)!;
  };
  const columns = new Map<number, string[]>();
  for (const id of b.items) push(columns, depthOf(id), id);
  const MAX_COLUMN_H = 4000;
  const nodes: FlowNode[] = [];
  let x = 0;
  for (const d of [...columns.keys()].sort((a, b) => a - b)) {
    let y = 0;
    let colW = 0;
    for (const id of columns.get(d)!) {
      const { w, h } = b.size(id);
      if (y > 0 && y + h > MAX_COLUMN_H) {
        x += colW + 24;
        y = 0;
        colW = 0;
      }
      const node = b.place(id, { x, y });
      if (node) nodes.push(node);
      y += h + 16;
      colW = Math.max(colW, w);
    }
    x += colW + 80;
  }
  return { nodes, edges: flowEdges(v, b.owner), rootId: rootOf(snapshot, v, b.top), engine: "linear" };
}

/**
 * Identity of what the layout depends on: node ids, placeholders, containers and their members,
 * edges. State and timing changes (the live deltas) keep it, so they patch nodes in place.
 */
export function structureKey(s: TraceSnapshot): string {
  const parts: string[] = [];
  for (const n of s.nodes) parts.push(n.placeholder ? `${n.id}?` : n.id);
  parts.push("|");
  for (const c of s.containers) parts.push(`${c.id}:${c.kind}:${c.members.join(" ")}`);
  parts.push("|");
  for (const e of s.edges) parts.push(e.id);
  return parts.join(",");
}
