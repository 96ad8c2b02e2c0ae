/** Post-pass over any engine's layout: big fan-outs drawn as combs. */
import { push } from "./multimap";
import type { FlowEdge, Layout } from "./types";

/** Fan-outs of at least this many edges (one source, one kind, targets to its right) are combs. */
export const BUS_MIN = 3;
/** How far right of its source a comb's trunk runs. */
export const BUS_OFFSET = 24;

/**
 * Draws each big fan-out as a comb: one trunk beside the source, a short tooth into each target,
 * instead of one curve per target all the way from the source. It reads better, and it is what
 * keeps large traces fast: Chromium's software rasterizer dashes the whole length of every path
 * it draws (spawn edges are dashed), and 80 curves from one task down a 40,000 px column of
 * groups took it seconds per frame; a comb is one long path and short teeth.
 */
export function withBuses(layout: Layout): Layout {
  const boxes = new Map<string, { x: number; cy: number; right: number }>();
  for (const n of layout.nodes)
    if (!n.parentId)
      boxes.set(n.id, {
        x: n.position.x,
        cy: n.position.y + (n.height ?? 0) / 2,
        right: n.position.x + (n.width ?? 0),
      });
  const fans = new Map<string, FlowEdge[]>();
  for (const e of layout.edges)
    if (e.data && boxes.has(e.source) && boxes.has(e.target)) push(fans, `${e.source}|${e.data.kind}`, e);
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
