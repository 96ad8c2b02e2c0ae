/**
 * React Flow node and edge factories: turn placed boxes of the visible graph into `FlowNode`s
 * (tasks, fold stubs, containers, shelves, with their sizes, handles and state counts) and the
 * visible edges into `FlowEdge`s. Every layout engine builds its result with these.
 */
import type { GraphContainer, GraphNode, TraceSnapshot } from "../../../shared/api";
import { handlesOf, MORE_H, TASK_H, TASK_W, type Box } from "./geometry";
import type { Cell, FlowEdge, FlowNode, MoreNodeData, Ports, StateCount } from "./types";
import type { Visible, VisibleContainer, VisibleShelf } from "./visibility";

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
export function flowEdges(v: Visible, owner: ReadonlyMap<string, string>): FlowEdge[] {
  const out = new Map<string, FlowEdge>();
  for (const e of v.edges) {
    const source = owner.get(e.source) ?? e.source;
    const target = owner.get(e.target) ?? e.target;
    if (source === target) continue;
    const id = `${e.kind}:${source}->${target}`;
    const known = out.get(id);
    if (known?.data) known.data.count += e.count;
    else
      out.set(id, {
        id,
        source,
        target,
        data: { kind: e.kind, count: e.count },
        className: `edge edge-${e.kind}`,
        focusable: false,
      });
  }
  return [...out.values()];
}

/** The box the trace starts at: its root task's (or the first drawn task's) top-level box. */
export function rootOf(snapshot: TraceSnapshot, v: Visible, owner: (id: string) => string): string | null {
  const id = snapshot.summary.root_task_id ?? v.tasks[0]?.id ?? null;
  return id === null ? null : owner(id);
}

export type PortsOf = (id: string) => Ports;

/** Which boxes have edges in and out (`owner`: a grid cell → the container drawing it). */
export function portsOf(v: Visible, owner: ReadonlyMap<string, string> = new Map()): PortsOf {
  const ins = new Set<string>();
  const outs = new Set<string>();
  for (const e of v.edges) {
    outs.add(owner.get(e.source) ?? e.source);
    ins.add(owner.get(e.target) ?? e.target);
  }
  return (id) => ({ in: ins.has(id), out: outs.has(id) });
}

export function taskNode(
  task: GraphNode,
  position: { x: number; y: number },
  ports: PortsOf,
  parentId?: string,
): FlowNode {
  const p = ports(task.id);
  return {
    id: task.id,
    type: "task",
    position,
    width: TASK_W,
    height: TASK_H,
    measured: { width: TASK_W, height: TASK_H },
    handles: handlesOf(p, TASK_W, TASK_H, 1),
    data: { kind: "task", task, ports: p },
    ...(parentId ? { parentId, extent: "parent" as const } : {}),
  };
}

export function moreNode(
  id: string,
  foldKey: string,
  hidden: number,
  what: MoreNodeData["what"],
  position: { x: number; y: number },
  ports: PortsOf,
  parentId?: string,
): FlowNode {
  const p = ports(id);
  return {
    id,
    type: "more",
    position,
    width: TASK_W,
    height: MORE_H,
    measured: { width: TASK_W, height: MORE_H },
    handles: handlesOf(p, TASK_W, MORE_H),
    selectable: false,
    data: { kind: "more", foldKey, hidden, what, ports: p },
    ...(parentId ? { parentId, extent: "parent" as const } : {}),
  };
}

export function shelfNode(
  sh: VisibleShelf,
  position: { x: number; y: number },
  box: Box,
  byId: Map<string, GraphNode>,
  ports: PortsOf,
): FlowNode {
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
    data: {
      kind: "shelf",
      foldKey: sh.id,
      groups: sh.containers.map((c) => ({ container: c, counts: containerCounts(c, byId) })),
      tasks: all.length,
      counts: stateCounts(all, byId),
      ports: p,
      cells: box.cells,
    },
  };
}

export function containerNode(
  c: VisibleContainer,
  position: { x: number; y: number },
  width: number,
  height: number,
  byId: Map<string, GraphNode>,
  ports: PortsOf,
  cells?: Cell[],
): FlowNode {
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
      ...(cells
        ? { cells, tasks: cells.map((cell) => (cell.more ? null : (byId.get(cell.id) ?? null))) }
        : {}),
    },
  };
}
