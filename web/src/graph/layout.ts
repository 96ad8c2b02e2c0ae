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
 *
 * This file composes the parts:
 * - visibility.ts: what is drawn (folds, the card budget, shelves, rerouted and bundled edges);
 * - geometry.ts: box sizes, grid and shelf cells, handles;
 * - node-factories.ts: React Flow nodes and edges from placed boxes;
 * - elk-graph.ts: the elk graph and reading elk's placement back;
 * - engines.ts: the tree and linear layouts; buses.ts: fan-outs drawn as combs;
 * - types.ts: the node data and `Layout` types.
 */
import type { TraceSnapshot } from "../../../shared/api";
import { withBuses } from "./buses";
import { elkGraph, elkLayout } from "./elk-graph";
import { linearLayout, treeLayout } from "./engines";
import type { ElkLike, Layout } from "./types";
import { visibleGraph } from "./visibility";

// The layout's public surface, importable from here as before the split.
export * from "./types";
export { BUS_MIN, BUS_OFFSET, withBuses } from "./buses";
export { elkGraph } from "./elk-graph";
export { linearLayout, treeLayout } from "./engines";
export { gridColumns, handlesOf, MORE_H, SUMMARY_H, SUMMARY_W, TASK_H, TASK_W } from "./geometry";
export { containerCounts, stateCounts } from "./node-factories";
export {
  CARD_BUDGET,
  FOLD_OVER,
  FOLD_SHOW,
  moreId,
  SHELF_MIN,
  visibleGraph,
  type Visible,
  type VisibleContainer,
  type VisibleEdge,
  type VisibleFold,
  type VisibleShelf,
} from "./visibility";

/** Above this many top-level boxes, elk is replaced by the linear layered layout. */
export const ELK_LIMIT = 500;
/**
 * Traces with more tasks than this are laid out as a tree when their drawn part is one: elk in a
 * fresh worker needs 0.3–0.7 s on this machine before its first layout is done (its code compiles
 * on first use), while a tree layout of the same boxes takes a millisecond and looks the same.
 */
export const TREE_OVER = 500;

/**
 * Lays out the snapshot: elk for normal graphs; for large traces (over `TREE_OVER` tasks) whose
 * drawn part is a forest (every box entered from at most one other: fan-outs, groups, chains,
 * chord callbacks), the tree layout; the linear layout past `ELK_LIMIT` boxes.
 */
export async function layoutGraph(
  snapshot: TraceSnapshot,
  expanded: ReadonlySet<string>,
  elk: ElkLike,
): Promise<Layout> {
  const v = visibleGraph(snapshot, expanded);
  if (snapshot.nodes.length > TREE_OVER) {
    const tree = treeLayout(snapshot, v);
    if (tree) return withBuses(tree);
  }
  const { graph, boxes } = elkGraph(v);
  if ((graph.children?.length ?? 0) > ELK_LIMIT) return withBuses(linearLayout(snapshot, v));
  return withBuses(await elkLayout(snapshot, v, graph, boxes, elk));
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
