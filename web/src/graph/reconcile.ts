/**
 * Merging a layout with the latest snapshot: live deltas change task states and timings without
 * changing the structure, so the page keeps its layout and patches task data into its nodes here.
 */
import type { GraphNode, TraceSnapshot } from "../../../shared/api";
import { containerCounts, stateCounts } from "./node-factories";
import type { FlowNode, Layout, StateCount } from "./types";

/**
 * The React Flow nodes to render: `layout`'s nodes (positions, sizes) with the task, container and
 * shelf data of `snapshot`, and `selected` marked. A node whose position, data and selection are
 * unchanged since the previous call is returned as the same object (taken from `cache`, the
 * previous call's nodes by id), so React Flow re-renders only what changed and the view and
 * selection stay put. Returns the nodes and the cache for the next call.
 */
export function reconcileNodes(
  layout: Layout,
  snapshot: TraceSnapshot,
  selected: string | null,
  cache: ReadonlyMap<string, FlowNode>,
): { nodes: FlowNode[]; cache: Map<string, FlowNode> } {
  const byId = new Map<string, GraphNode>(snapshot.nodes.map((n) => [n.id, n]));
  const containers = new Map(snapshot.containers.map((c) => [c.id, c]));
  const next = new Map<string, FlowNode>();
  const nodes = layout.nodes.map((n): FlowNode => {
    const prev = cache.get(n.id);
    let node: FlowNode = n;
    if (n.data.kind === "task") {
      const task = byId.get(n.id) ?? n.data.task;
      const isSelected = n.id === selected;
      if (
        prev &&
        prev.position === n.position &&
        prev.data.kind === "task" &&
        prev.data.task === task &&
        Boolean(prev.selected) === isSelected
      )
        node = prev;
      else node = { ...n, selected: isSelected, data: { ...n.data, task } };
    } else if (n.data.kind === "container") {
      const c = containers.get(n.id) ?? n.data.container;
      const tasks = n.data.cells?.map((cell) => (cell.more ? null : (byId.get(cell.id) ?? null)));
      const prevData = prev?.position === n.position && prev.data.kind === "container" ? prev.data : null;
      const same =
        prevData !== null &&
        prevData.container === c &&
        (tasks === undefined || tasks.every((t, i) => t === prevData.tasks?.[i]));
      if (same && prev) node = prev;
      else
        node = {
          ...n,
          data: { ...n.data, container: c, counts: containerCounts(c, byId), ...(tasks ? { tasks } : {}) },
        };
    } else if (n.data.kind === "shelf") {
      // Summaries show member states: recount (cheap), keep the node when nothing moved.
      const groups = n.data.groups.map((g) => {
        const c = containers.get(g.container.id) ?? g.container;
        return { container: c, counts: containerCounts(c, byId) };
      });
      const prevData = prev?.position === n.position && prev.data.kind === "shelf" ? prev.data : null;
      const same =
        prevData !== null &&
        groups.every(
          (g, i) =>
            g.container === prevData.groups[i]?.container && sameCounts(g.counts, prevData.groups[i]!.counts),
        );
      if (same && prev) node = prev;
      else
        node = {
          ...n,
          data: {
            ...n.data,
            groups,
            counts: stateCounts(
              groups.flatMap((g) => g.container.members),
              byId,
            ),
          },
        };
    }
    next.set(n.id, node);
    return node;
  });
  return { nodes, cache: next };
}

function sameCounts(a: StateCount[], b: StateCount[]): boolean {
  return a.length === b.length && a.every(([s, n], i) => b[i]![0] === s && b[i]![1] === n);
}
