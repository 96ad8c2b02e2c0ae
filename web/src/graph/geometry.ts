/**
 * Box geometry: card sizes, how a grid container and a shelf arrange their cells, and where the
 * handles sit on a box. Pure numbers; the node components (nodes.tsx) draw with the same sizes.
 */
import { Position, type NodeHandle } from "@xyflow/react";
import type { Cell, Ports } from "./types";
import type { VisibleContainer, VisibleShelf } from "./visibility";

export const TASK_W = 216;
export const TASK_H = 60;
export const MORE_H = 44;
export const GAP = 10;
export const PAD_TOP = 36;
export const PAD_SIDE = 12;
/** A group's summary on a shelf. */
export const SUMMARY_W = TASK_W;
export const SUMMARY_H = 52;

/** Columns for a grid container: one column for small groups, roughly square blocks for big ones. */
export function gridColumns(count: number): number {
  if (count <= 8) return 1;
  return Math.max(2, Math.round(Math.sqrt((count * (TASK_H + GAP)) / (TASK_W + GAP))));
}

export interface Box {
  width: number;
  height: number;
  /** Member positions relative to the container. */
  cells: Cell[];
}

/** A container drawn as a grid of its members (and its fold stub last). */
export function gridBox(c: VisibleContainer): Box {
  const items = [
    ...c.members.map((id) => ({ id, more: false })),
    ...(c.moreId ? [{ id: c.moreId, more: true }] : []),
  ];
  const cols = gridColumns(items.length);
  const rows = Math.ceil(items.length / cols);
  const cells = items.map((item, i) => ({
    ...item,
    x: PAD_SIDE + (i % cols) * (TASK_W + GAP),
    y: PAD_TOP + Math.floor(i / cols) * (TASK_H + GAP),
  }));
  const lastRowHasMore = items.length > 0 && items[items.length - 1]!.more && items.length % cols === 1;
  const height = PAD_TOP + rows * (TASK_H + GAP) - GAP - (lastRowHasMore ? TASK_H - MORE_H : 0) + PAD_SIDE;
  return {
    width: PAD_SIDE * 2 + cols * (TASK_W + GAP) - GAP,
    height: Math.max(height, PAD_TOP + MORE_H),
    cells,
  };
}

/** A shelf: a grid of group summaries. */
export function shelfBox(s: VisibleShelf): Box {
  const n = s.containers.length;
  // Two columns at least: the title row (count, state bar, "open all") needs the width.
  const cols = Math.min(n, Math.max(2, Math.round(Math.sqrt((n * (SUMMARY_H + GAP)) / (SUMMARY_W + GAP)))));
  const rows = Math.ceil(n / cols);
  const cells = s.containers.map((c, i) => ({
    id: c.id,
    more: false,
    x: PAD_SIDE + (i % cols) * (SUMMARY_W + GAP),
    y: PAD_TOP + Math.floor(i / cols) * (SUMMARY_H + GAP),
  }));
  return {
    width: PAD_SIDE * 2 + cols * (SUMMARY_W + GAP) - GAP,
    height: PAD_TOP + rows * (SUMMARY_H + GAP) - GAP + PAD_SIDE,
    cells,
  };
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
  if (ports.in)
    out.push({
      type: "target",
      position: Position.Left,
      x: border - HANDLE / 2,
      y,
      width: HANDLE,
      height: HANDLE,
    });
  if (ports.out)
    out.push({
      type: "source",
      position: Position.Right,
      x: width - border - HANDLE / 2,
      y,
      width: HANDLE,
      height: HANDLE,
    });
  return out;
}
