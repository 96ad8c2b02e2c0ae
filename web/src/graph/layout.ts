/**
 * Layout as a pure function of the snapshot: React Flow nodes (tasks, GROUP/CHORD containers,
 * "… N more" stubs for collapsed groups) with positions from elkjs (layered, nested containers).
 * Very large graphs use a fast layered fallback so the page stays interactive.
 */
import type { ElkExtendedEdge, ElkNode } from "elkjs/lib/elk.bundled.js";
import type { Edge, Node } from "@xyflow/react";
import type { EdgeKind, GraphContainer, GraphNode, TraceSnapshot } from "../../../shared/api";

export const TASK_W = 210;
export const TASK_H = 58;
const MORE_H = 40;
/** Groups bigger than this show their first members and a "… N more" node until expanded. */
export const COLLAPSE_OVER = 40;
const SHOWN_WHEN_COLLAPSED = 12;
/** Above this many visible nodes, elk is skipped for the fast layered layout. */
const ELK_LIMIT = 600;

export type TaskNodeData = { kind: "task"; task: GraphNode };
export type ContainerNodeData = { kind: "container"; container: GraphContainer; hidden: number };
export type MoreNodeData = { kind: "more"; containerId: string; hidden: number };
export type FlowNodeData = TaskNodeData | ContainerNodeData | MoreNodeData;
export type FlowNode = Node<FlowNodeData>;
export type FlowEdge = Edge<{ kind: EdgeKind }>;

export interface Layout {
  nodes: FlowNode[];
  edges: FlowEdge[];
}

/** elkjs is large: loaded on the first graph, not with the app. */
let elkInstance: Promise<{ layout(graph: ElkNode): Promise<ElkNode> }> | null = null;
function elk() {
  elkInstance ??= import("elkjs/lib/elk.bundled.js").then((m) => new m.default());
  return elkInstance;
}

interface Visible {
  tasks: GraphNode[];
  containers: { container: GraphContainer; members: string[]; hidden: number }[];
  moreOf: Map<string, string>;
  edges: { id: string; source: string; target: string; kind: EdgeKind }[];
}

/** Decides what is drawn: collapses big groups and reroutes edges of hidden members to their stub. */
export function visibleGraph(snapshot: TraceSnapshot, expanded: ReadonlySet<string>): Visible {
  const hiddenBy = new Map<string, string>();
  const containers = snapshot.containers.map((container) => {
    if (container.members.length <= COLLAPSE_OVER || expanded.has(container.id))
      return { container, members: container.members, hidden: 0 };
    const shown = container.members.slice(0, SHOWN_WHEN_COLLAPSED);
    for (const id of container.members.slice(SHOWN_WHEN_COLLAPSED)) hiddenBy.set(id, `more:${container.id}`);
    return { container, members: shown, hidden: container.members.length - shown.length };
  });
  const route = (id: string) => hiddenBy.get(id) ?? id;
  const seen = new Set<string>();
  const edges = [];
  for (const e of snapshot.edges) {
    const source = route(e.source);
    const target = route(e.target);
    const id = `${e.kind}:${source}->${target}`;
    if (source === target || seen.has(id)) continue;
    seen.add(id);
    edges.push({ id, source, target, kind: e.kind });
  }
  const moreOf = new Map<string, string>();
  for (const c of containers) if (c.hidden) moreOf.set(c.container.id, `more:${c.container.id}`);
  return { tasks: snapshot.nodes.filter((n) => !hiddenBy.has(n.id)), containers, moreOf, edges };
}

function flowEdges(v: Visible): FlowEdge[] {
  return v.edges.map((e) => ({ id: e.id, source: e.source, target: e.target, type: "default", data: { kind: e.kind }, className: `edge edge-${e.kind}` }));
}

/** elk for normal graphs (nested containers, layered left to right). */
export async function layoutGraph(snapshot: TraceSnapshot, expanded: ReadonlySet<string> = new Set()): Promise<Layout> {
  const v = visibleGraph(snapshot, expanded);
  const visibleCount = v.tasks.length + v.containers.length;
  if (visibleCount > ELK_LIMIT) return fastLayout(v);
  const inContainer = new Map<string, string>();
  for (const c of v.containers) for (const m of c.members) inContainer.set(m, c.container.id);
  const taskById = new Map(v.tasks.map((t) => [t.id, t]));
  const children: ElkNode[] = [];
  for (const c of v.containers) {
    const members: ElkNode[] = c.members.filter((m) => taskById.has(m)).map((m) => ({ id: m, width: TASK_W, height: TASK_H }));
    if (c.hidden) members.push({ id: `more:${c.container.id}`, width: TASK_W, height: MORE_H });
    children.push({
      id: c.container.id,
      layoutOptions: { "elk.padding": "[top=34,left=14,bottom=14,right=14]", "elk.direction": "DOWN", "elk.spacing.nodeNode": "10", "elk.layered.crossingMinimization.forceNodeModelOrder": "true", "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES" },
      children: members,
    });
  }
  for (const t of v.tasks) if (!inContainer.has(t.id)) children.push({ id: t.id, width: TASK_W, height: TASK_H });
  const ids = new Set<string>();
  const collect = (n: ElkNode) => {
    ids.add(n.id);
    n.children?.forEach(collect);
  };
  children.forEach(collect);
  const edges: ElkExtendedEdge[] = v.edges.filter((e) => ids.has(e.source) && ids.has(e.target)).map((e) => ({ id: e.id, sources: [e.source], targets: [e.target] }));
  const root = await (await elk()).layout({
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.hierarchyHandling": "INCLUDE_CHILDREN",
      "elk.layered.spacing.nodeNodeBetweenLayers": "60",
      "elk.spacing.nodeNode": "18",
      "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
    },
    children,
    edges,
  });
  const nodes: FlowNode[] = [];
  const containerInfo = new Map(v.containers.map((c) => [c.container.id, c]));
  for (const n of root.children ?? []) {
    const c = containerInfo.get(n.id);
    if (c) {
      nodes.push({
        id: n.id,
        type: "container",
        position: { x: n.x ?? 0, y: n.y ?? 0 },
        data: { kind: "container", container: c.container, hidden: c.hidden },
        style: { width: n.width, height: n.height },
        width: n.width,
        height: n.height,
        selectable: false,
      });
      for (const m of n.children ?? []) nodes.push(childNode(m, n.id, taskById, c));
    } else {
      const task = taskById.get(n.id);
      if (task) nodes.push({ id: n.id, type: "task", position: { x: n.x ?? 0, y: n.y ?? 0 }, width: TASK_W, height: TASK_H, data: { kind: "task", task } });
    }
  }
  return { nodes, edges: flowEdges(v) };
}

function childNode(m: ElkNode, parentId: string, taskById: Map<string, GraphNode>, c: Visible["containers"][number]): FlowNode {
  const position = { x: m.x ?? 0, y: m.y ?? 0 };
  if (m.id.startsWith("more:"))
    return { id: m.id, type: "more", position, parentId, extent: "parent", data: { kind: "more", containerId: c.container.id, hidden: c.hidden } };
  return { id: m.id, type: "task", position, parentId, extent: "parent", width: TASK_W, height: TASK_H, data: { kind: "task", task: taskById.get(m.id)! } };
}

/** Columns by depth along edges, rows in order: linear time, for thousands of nodes. */
export function fastLayout(v: Visible): Layout {
  const depth = new Map<string, number>();
  const incoming = new Map<string, string[]>();
  for (const e of v.edges) incoming.set(e.target, [...(incoming.get(e.target) ?? []), e.source]);
  const containerOf = new Map<string, string>();
  for (const c of v.containers) for (const m of c.members) containerOf.set(m, c.container.id);
  const depthOf = (id: string, guard = 0): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (guard > 200) return 0;
    depth.set(id, 0);
    const parents = incoming.get(id) ?? incoming.get(containerOf.get(id) ?? "") ?? [];
    const d = parents.length ? Math.max(...parents.map((p) => depthOf(p, guard + 1))) + 1 : 0;
    depth.set(id, d);
    return d;
  };
  const columns = new Map<number, string[]>();
  const place = (id: string) => {
    const d = depthOf(id);
    columns.set(d, [...(columns.get(d) ?? []), id]);
  };
  const nodes: FlowNode[] = [];
  const taskById = new Map(v.tasks.map((t) => [t.id, t]));
  for (const t of v.tasks) if (!containerOf.has(t.id)) place(t.id);
  for (const c of v.containers) place(c.container.id);
  const colX = (d: number) => d * (TASK_W + 80);
  for (const [d, ids] of columns) {
    let y = 0;
    for (const id of ids) {
      const c = v.containers.find((x) => x.container.id === id);
      if (c) {
        const rows = c.members.length + (c.hidden ? 1 : 0);
        const height = 34 + rows * (TASK_H + 10) + 10;
        nodes.push({ id, type: "container", position: { x: colX(d), y }, data: { kind: "container", container: c.container, hidden: c.hidden }, style: { width: TASK_W + 28, height }, width: TASK_W + 28, height, selectable: false });
        c.members.forEach((m, i) => {
          const task = taskById.get(m);
          if (task) nodes.push({ id: m, type: "task", parentId: id, extent: "parent", position: { x: 14, y: 34 + i * (TASK_H + 10) }, width: TASK_W, height: TASK_H, data: { kind: "task", task } });
        });
        if (c.hidden) nodes.push({ id: `more:${id}`, type: "more", parentId: id, extent: "parent", position: { x: 14, y: 34 + c.members.length * (TASK_H + 10) }, data: { kind: "more", containerId: id, hidden: c.hidden } });
        y += height + 24;
      } else {
        const task = taskById.get(id);
        if (task) nodes.push({ id, type: "task", position: { x: colX(d), y }, width: TASK_W, height: TASK_H, data: { kind: "task", task } });
        y += TASK_H + 16;
      }
    }
  }
  return { nodes, edges: flowEdges(v) };
}
