/**
 * The layout engines that replace elk where it is too slow: the tree layout (large traces whose
 * drawn part is a forest) and the linear layered layout (thousands of boxes). Both place the
 * top-level boxes only (containers are grids); `topLevelBoxes` says what those are.
 */
import type { TraceSnapshot } from "../../../shared/api";
import { gridBox, MORE_H, shelfBox, TASK_H, TASK_W, type Box } from "./geometry";
import { push } from "./multimap";
import { containerNode, flowEdges, moreNode, portsOf, rootOf, shelfNode, taskNode } from "./node-factories";
import type { FlowNode, Layout } from "./types";
import type { Visible } from "./visibility";

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
  for (const c of v.containers)
    ranks.set(
      c.container.id,
      Math.min(Infinity, ...c.container.members.map((m) => ranks.get(m) ?? Infinity)),
    );
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
