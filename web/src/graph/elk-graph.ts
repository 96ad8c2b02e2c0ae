/**
 * The elk engine: builds the elk graph of the visible part (nested graphs for containers with
 * edges inside, one box for grid containers and shelves) and reads elk's placement back into
 * React Flow nodes. elk itself is injected (`ElkLike`): the app runs it in a Web Worker, tests
 * run it in-process.
 */
import type { ElkExtendedEdge, ElkNode } from "elkjs/lib/elk-api.js";
import type { TraceSnapshot } from "../../../shared/api";
import { GAP, gridBox, MORE_H, PAD_SIDE, PAD_TOP, shelfBox, TASK_H, TASK_W, type Box } from "./geometry";
import { containerNode, flowEdges, moreNode, portsOf, rootOf, shelfNode, taskNode } from "./node-factories";
import type { ElkLike, FlowNode, Layout } from "./types";
import type { Visible } from "./visibility";

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
        ...(v.containers.some((c) => c.internal)
          ? {}
          : { "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES" }),
      },
      children,
      edges: elkEdges,
    },
  };
}

/** Runs elk on `graph` (from `elkGraph(v)`) and reads its placement back into React Flow nodes. */
export async function elkLayout(
  snapshot: TraceSnapshot,
  v: Visible,
  graph: ElkNode,
  boxes: Map<string, Box>,
  elk: ElkLike,
): Promise<Layout> {
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
        nodes.push(
          m.id === c.moreId
            ? moreNode(m.id, c.container.id, c.hidden, "members", at, ports, c.container.id)
            : taskNode(byId.get(m.id)!, at, ports, c.container.id),
        );
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
  return {
    nodes,
    edges: flowEdges(v, owner),
    rootId: rootOf(snapshot, v, (id) => owner.get(id) ?? id),
    engine: "elk",
  };
}
