/**
 * The minimap: top-level boxes only (containers as one rect with their aggregate state, free
 * tasks, fold stubs) plus the viewport. React Flow's own MiniMap draws every node as a component
 * with a store subscription, which at 2,000 tasks cost more than the graph itself.
 * Click or drag on it to move the view.
 */
import { useReactFlow, useStore, type ReactFlowState } from "@xyflow/react";
import { memo, useMemo, useRef, type PointerEvent } from "react";
import { STATE_STYLES } from "../states";
import type { FlowNode } from "./types";

const W = 200;
const H = 140;

const viewSelector = (s: ReactFlowState) => ({
  x: s.transform[0],
  y: s.transform[1],
  zoom: s.transform[2],
  width: s.width,
  height: s.height,
});

function color(n: FlowNode): string {
  if (n.data.kind === "task") return STATE_STYLES[n.data.task.state].color;
  if (n.data.kind === "container") return STATE_STYLES[n.data.container.state].color;
  return "var(--accent)"; // fold stubs and shelves
}

const boxed = (n: FlowNode) => n.data.kind === "container" || n.data.kind === "shelf";

const Boxes = memo(function Boxes({ nodes }: { nodes: FlowNode[] }) {
  return (
    <>
      {nodes.map((n) =>
        n.parentId ? null : (
          <rect
            key={n.id}
            data-id={n.id}
            x={n.position.x}
            y={n.position.y}
            width={n.width ?? 0}
            height={n.height ?? 0}
            rx={boxed(n) ? 14 : 6}
            fill={color(n)}
            fillOpacity={boxed(n) ? 0.22 : 0.75}
            stroke={boxed(n) ? color(n) : "none"}
            strokeWidth={boxed(n) ? 1.5 : 0}
            vectorEffect="non-scaling-stroke"
          />
        ),
      )}
    </>
  );
});

export function Overview({ nodes }: { nodes: FlowNode[] }) {
  const flow = useReactFlow();
  const view = useStore(
    viewSelector,
    (a, b) => a.x === b.x && a.y === b.y && a.zoom === b.zoom && a.width === b.width && a.height === b.height,
  );
  const dragging = useRef(false);
  const bounds = useMemo(() => {
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    for (const n of nodes) {
      if (n.parentId) continue;
      minX = Math.min(minX, n.position.x);
      minY = Math.min(minY, n.position.y);
      maxX = Math.max(maxX, n.position.x + (n.width ?? 0));
      maxY = Math.max(maxY, n.position.y + (n.height ?? 0));
    }
    if (!Number.isFinite(minX)) return { x: 0, y: 0, w: 1, h: 1 };
    return { x: minX, y: minY, w: Math.max(1, maxX - minX), h: Math.max(1, maxY - minY) };
  }, [nodes]);
  // The visible area in graph coordinates, and a box covering both it and the graph.
  const vx = -view.x / view.zoom;
  const vy = -view.y / view.zoom;
  const vw = view.width / view.zoom;
  const vh = view.height / view.zoom;
  const pad = Math.max(bounds.w, bounds.h) * 0.05;
  const x0 = Math.min(bounds.x, vx) - pad;
  const y0 = Math.min(bounds.y, vy) - pad;
  const x1 = Math.max(bounds.x + bounds.w, vx + vw) + pad;
  const y1 = Math.max(bounds.y + bounds.h, vy + vh) + pad;
  const scale = Math.max((x1 - x0) / W, (y1 - y0) / H);
  const moveTo = (e: PointerEvent<SVGSVGElement>) => {
    const rect = e.currentTarget.getBoundingClientRect();
    const gx = x0 + (e.clientX - rect.left) * scale;
    const gy = y0 + (e.clientY - rect.top) * scale;
    void flow.setViewport({
      x: view.width / 2 - gx * view.zoom,
      y: view.height / 2 - gy * view.zoom,
      zoom: view.zoom,
    });
  };
  return (
    <svg
      className="overview"
      width={W}
      height={H}
      viewBox={`${x0} ${y0} ${W * scale} ${H * scale}`}
      onPointerDown={(e) => {
        dragging.current = true;
        e.currentTarget.setPointerCapture(e.pointerId);
        moveTo(e);
      }}
      onPointerMove={(e) => dragging.current && moveTo(e)}
      onPointerUp={() => (dragging.current = false)}
      aria-label="Overview: click or drag to move the view"
    >
      <Boxes nodes={nodes} />
      <path
        className="overview-mask"
        fillRule="evenodd"
        d={`M${x0 - scale * W} ${y0 - scale * H}h${scale * W * 3}v${scale * H * 3}h${-scale * W * 3}z M${vx} ${vy}h${vw}v${vh}h${-vw}z`}
      />
      <rect
        className="overview-view"
        x={vx}
        y={vy}
        width={vw}
        height={vh}
        vectorEffect="non-scaling-stroke"
      />
    </svg>
  );
}
