/** One trace: the interactive DAG (or a Gantt timeline) with the selected task's detail beside it. */
import { useQuery } from "@tanstack/react-query";
import {
  Background,
  BackgroundVariant,
  Controls,
  Panel,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type Viewport,
  type NodeMouseHandler,
} from "@xyflow/react";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { TraceSnapshot } from "../../../shared/api";
import { traceQuery } from "../api/client";
import { useTraceLive } from "../api/live";
import { StateBadge } from "../components/StateBadge";
import { TaskDetailLoader } from "../components/TaskDetailView";
import { TaskDetailAtLoader } from "../components/TaskDetailAt";
import { Timeline } from "../components/Timeline";
import { dateTime, duration, shortId, shortName } from "../format";
import { elkInWorker } from "../graph/elk";
import { TASK_H, TASK_W } from "../graph/geometry";
import { layoutGraph, structureKey } from "../graph/layout";
import { containerCounts } from "../graph/node-factories";
import { reconcileNodes } from "../graph/reconcile";
import type { FlowNode, Layout, StateCount } from "../graph/types";
import { edgeTypes, GraphActionsContext, nodeTypes, StateBar } from "../graph/nodes";
import { Overview } from "../graph/overview";
import { Link, navigate, useLocation } from "../router";
import { Boundary } from "../components/Boundary";
import { CompareBar, CompareMarks, CompareToggle } from "../components/CompareBar";
import { ReplayBar, ReplayButton, useReplay } from "../components/ReplayBar";

const EDGE_LEGEND = [
  ["chain", "next step of a chain"],
  ["spawn", "published inside the parent task"],
  ["callback", "link: runs on success"],
  ["errback", "link_error: runs on failure"],
  ["chord", "header group → its callback"],
] as const;

/** Below this zoom a fitted view is unreadable: centre on the start of the trace instead. */
const MIN_READABLE_ZOOM = 0.35;

function Graph({
  snapshot,
  selected,
  onSelect,
  refit = false,
}: {
  snapshot: TraceSnapshot;
  selected: string | null;
  onSelect: (id: string) => void;
  /** Fit the view to each new layout (replay: the graph grows and shrinks as the moment moves). */
  refit?: boolean;
}) {
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  // The last layout, with the structure and folds it was made for: pending while they differ
  // (the old layout stays on screen meanwhile).
  const [done, setDone] = useState<{ key: string; expanded: ReadonlySet<string>; layout: Layout } | null>(
    null,
  );
  const [error, setError] = useState<string | null>(null);
  const key = useMemo(() => structureKey(snapshot), [snapshot]);
  const layout = done?.layout ?? null;
  const pending = !done || done.key !== key || done.expanded !== expanded;
  // The layout effect runs on structure changes only, with the snapshot of that moment.
  const latest = useRef(snapshot);
  useLayoutEffect(() => {
    latest.current = snapshot;
  }, [snapshot]);

  useEffect(() => {
    let cancelled = false;
    performance.mark("stemtrace:layout-start");
    elkInWorker()
      .then((elk) => layoutGraph(latest.current, expanded, elk))
      .then((l) => {
        performance.mark("stemtrace:layout-end");
        if (!cancelled) setDone({ key, expanded, layout: l });
      })
      .catch((e: unknown) => !cancelled && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      cancelled = true;
    };
  }, [key, expanded]);

  // Live deltas patch task data into the laid-out nodes; unchanged nodes keep their identity
  // (a memo cache across renders: a Map held in state, refilled by each reconcile).
  const [cache] = useState(() => new Map<string, FlowNode>());
  const nodes = useMemo(() => {
    if (!layout) return [];
    const r = reconcileNodes(layout, snapshot, selected, new Map(cache));
    cache.clear();
    for (const [id, node] of r.cache) cache.set(id, node);
    return r.nodes;
  }, [layout, snapshot, selected, cache]);

  // The first layout decides the viewport before React Flow mounts (no fit-then-move re-render);
  // later layouts (live structure changes, expanding a fold) keep the user's pan and zoom.
  const [box, setBox] = useState<{ width: number; height: number } | null>(null);
  const wrapper = useCallback((el: HTMLDivElement | null) => {
    if (el) setBox({ width: el.clientWidth || 1000, height: el.clientHeight || 700 });
  }, []);
  const [initial, setInitial] = useState<{ viewport: Viewport; big: boolean } | null>(null);
  if (layout && box && !initial) setInitial(initialViewport(layout, box.width, box.height));
  useEffect(() => {
    if (initial) performance.mark("stemtrace:graph-committed");
  }, [initial]);

  // After a fold opens, bring what it opened into view (keeping the zoom).
  const flow = useReactFlow<FlowNode>();
  const focus = useRef<string | null>(null);
  const containerIds = useMemo(() => new Set(snapshot.containers.map((c) => c.id)), [snapshot.containers]);
  const expand = useCallback(
    (foldKey: string, focusId?: string) => {
      // A container's fold key is its id; a fan-out's is "<parent id>:<edge kind>".
      focus.current =
        focusId ?? (containerIds.has(foldKey) ? foldKey : foldKey.slice(0, foldKey.lastIndexOf(":")));
      setExpanded((e) => new Set([...e, foldKey]));
    },
    [containerIds],
  );
  useEffect(() => {
    const id = focus.current;
    if (!layout || !id || pending) return;
    focus.current = null;
    const n = layout.nodes.find((x) => x.id === id);
    if (!n || n.parentId) return;
    const zoom = flow.getZoom();
    const h = Math.min(n.height ?? TASK_H, 600);
    void flow.setCenter(n.position.x + Math.min(n.width ?? TASK_W, 900) / 2, n.position.y + h / 2, {
      zoom,
      duration: 300,
    });
  }, [layout, pending, flow]);
  useEffect(() => {
    if (refit && done && !pending)
      void flow.fitView({ duration: 200, maxZoom: 1.15, minZoom: MIN_READABLE_ZOOM, padding: 0.12 });
  }, [refit, done, pending, flow]);
  const actions = useMemo(() => ({ selected, select: onSelect, expand }), [selected, onSelect, expand]);
  const onNodeClick: NodeMouseHandler<FlowNode> = (_, node) => {
    if (node.data.kind === "task") onSelect(node.id);
    else if (node.data.kind === "more") expand(node.data.foldKey);
  };

  if (error) return <div className="error-box">Could not lay out this graph: {error}</div>;
  if (!layout || !initial)
    return (
      <div className="loading center" ref={wrapper}>
        Laying out {snapshot.nodes.length.toLocaleString()} {snapshot.nodes.length === 1 ? "task" : "tasks"}…
      </div>
    );
  let drawn = 0;
  for (const n of nodes)
    drawn +=
      n.data.kind === "task"
        ? 1
        : n.data.kind === "container"
          ? (n.data.tasks?.filter(Boolean).length ?? 0)
          : 0;
  return (
    <GraphActionsContext.Provider value={actions}>
      <ReactFlow
        defaultViewport={initial.viewport}
        nodes={nodes}
        edges={layout.edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodeClick={onNodeClick}
        onPaneClick={() => undefined}
        nodesDraggable={false}
        nodesConnectable={false}
        minZoom={0.04}
        maxZoom={2}
        onlyRenderVisibleElements={drawn > 150}
        proOptions={{ hideAttribution: true }}
      >
        <Background variant={BackgroundVariant.Dots} gap={22} size={1} />
        <Controls showInteractive={false} position="bottom-right" />
        <Panel position="top-right">
          <Overview nodes={layout.nodes} />
        </Panel>
      </ReactFlow>
      <div className="graph-status">
        {pending && <span className="pill">laying out…</span>}
        {drawn < snapshot.nodes.length && (
          <span
            className="pill"
            title="Large groups and fan-outs are folded: click a “… more” box to expand it"
          >
            {drawn.toLocaleString()} of {snapshot.nodes.length.toLocaleString()} tasks drawn
          </span>
        )}
        {initial.big && (
          <span className="pill">large trace: showing its start · zoom out or drag the overview</span>
        )}
      </div>
    </GraphActionsContext.Provider>
  );
}

/**
 * Fits the whole graph when that stays readable; otherwise starts at the root at a readable zoom
 * (a 2,000-task trace fitted to the screen is confetti, and renders every node).
 */
export function initialViewport(
  layout: Layout,
  width: number,
  height: number,
): { viewport: Viewport; big: boolean } {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const n of layout.nodes) {
    if (n.parentId) continue;
    minX = Math.min(minX, n.position.x);
    minY = Math.min(minY, n.position.y);
    maxX = Math.max(maxX, n.position.x + (n.width ?? TASK_W));
    maxY = Math.max(maxY, n.position.y + (n.height ?? TASK_H));
  }
  if (!Number.isFinite(minX)) return { viewport: { x: 0, y: 0, zoom: 1 }, big: false };
  const pad = 48;
  const gw = maxX - minX;
  const gh = maxY - minY;
  const fit = Math.min((width - 2 * pad) / gw, (height - 2 * pad) / gh, 1.15);
  const root = layout.nodes.find((n) => n.id === layout.rootId);
  if (fit >= MIN_READABLE_ZOOM || !root) {
    const zoom = Math.max(fit, 0.05);
    return {
      viewport: { x: (width - gw * zoom) / 2 - minX * zoom, y: (height - gh * zoom) / 2 - minY * zoom, zoom },
      big: false,
    };
  }
  const zoom = 0.7;
  const rootH = Math.min(root.height ?? TASK_H, height / zoom);
  // A root at the top of the graph (the tree layout) starts at the top; otherwise it is centred.
  const y =
    root.position.y <= minY
      ? pad + 16 - root.position.y * zoom
      : height / 2 - (root.position.y + rootH / 2) * zoom;
  return { viewport: { x: pad - root.position.x * zoom, y, zoom }, big: true };
}

function traceCounts(s: TraceSnapshot): StateCount[] {
  return containerCounts(
    {
      id: "",
      kind: "GROUP",
      state: "PENDING",
      members: s.nodes.map((n) => n.id),
      callback_id: null,
      size: null,
    },
    new Map(s.nodes.map((n) => [n.id, n])),
  );
}

export function TracePage({ traceId }: { traceId: string }) {
  const { search } = useLocation();
  const live = useQuery(traceQuery(traceId));
  // Replaying (?at=): the moment's snapshot once it has arrived; live deltas keep patching the live one only.
  const replay = useReplay(traceId);
  const q = replay.at !== null && (replay.query.data || replay.query.isError) ? replay.query : live;
  useTraceLive(traceId);
  // Start elk's worker while the snapshot is on its way.
  useEffect(() => void elkInWorker(), []);
  const selected = search.get("task");
  const view = search.get("view") === "timeline" ? "timeline" : "graph";
  const setParam = (k: string, v: string | null) => {
    const next = new URLSearchParams(search);
    if (v === null) next.delete(k);
    else next.set(k, v);
    const qs = next.toString();
    navigate(`/traces/${encodeURIComponent(traceId)}${qs ? `?${qs}` : ""}`, true);
  };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && selected && setParam("task", null);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });
  const counts = useMemo(() => (q.data ? traceCounts(q.data) : []), [q.data]);
  const select = useCallback((id: string) => {
    const next = new URLSearchParams(window.location.search);
    next.set("task", id);
    navigate(`${window.location.pathname}?${next.toString()}`, true);
  }, []);
  if (q.isPending) return <div className="loading page">Loading trace {shortId(traceId)}…</div>;
  if (q.isError)
    return (
      <div className="error-box page">
        <h2>Trace {shortId(traceId)} is not available</h2>
        <p>{q.error.message}</p>
        <p>
          If its events were sent a moment ago, <button onClick={() => void q.refetch()}>try again</button>.
          Otherwise it may be older than the retention period. <Link to="/">Back to the traces</Link>
        </p>
      </div>
    );
  const s = q.data.summary;
  return (
    <div className="trace-page">
      <Boundary region="trace header">
        <header className="trace-header">
          <div className="trace-title">
            <div className="crumbs">
              <Link to="/">Traces</Link> / <span className="mono">{shortId(traceId)}</span> ·{" "}
              {/* A plain download: the browser sends the same credentials (Access cookie) as the SPA's reads. */}
              <a
                href={`/api/traces/${encodeURIComponent(traceId)}/export`}
                download
                title="Download this trace's events and graph as one JSON file (POST it to /api/import on any stemtrace)"
              >
                Export
              </a>
              {replay.at === null && (
                <>
                  {" · "}
                  <ReplayButton start={live.data?.summary.started_at ?? null} />
                </>
              )}
            </div>
            <h1>
              <span title={s.root_name ?? ""}>{shortName(s.root_name)}</span> <StateBadge state={s.state} />
              {s.anomaly_count > 0 && (
                <span className="anomaly-badge" title="open anomalies in this trace">
                  ⚠ {s.anomaly_count}
                </span>
              )}
            </h1>
            <div className="trace-facts">
              <span>
                {s.not_run_count ? (
                  // Tasks that were sent, and the announced ones that never will be: every card counted.
                  <span title="tasks sent, and announced tasks that will never run (NOT_RUN)">
                    <b>{s.task_count.toLocaleString()}</b> ran ·{" "}
                    <b className="bad">{s.not_run_count.toLocaleString()}</b> not run
                  </span>
                ) : (
                  <>
                    <b>{s.task_count.toLocaleString()}</b> tasks
                  </>
                )}
              </span>
              <span className={s.failure_count ? "bad" : ""}>
                <b>{s.failure_count}</b> failed
              </span>
              <span>
                started <b>{dateTime(s.started_at)}</b>
              </span>
              <span>
                took{" "}
                <b>
                  {s.finished_at === null && s.started_at !== null ? "running…" : duration(s.duration_ms)}
                </b>
              </span>
              {s.workers.length > 0 && (
                <span title={s.workers.join("\n")}>
                  on {s.workers.length === 1 ? s.workers[0] : `${s.workers.length} workers`}
                </span>
              )}
              <StateBar counts={counts} total={q.data.nodes.length} />
            </div>
            {q.data.truncated && (
              <div className="warn-line">
                This trace has {q.data.truncated.total.toLocaleString()} tasks; the graph holds the earliest{" "}
                {q.data.truncated.shown.toLocaleString()}.
              </div>
            )}
          </div>
          <CompareToggle />
          <div className="tabs" role="tablist">
            <button
              role="tab"
              aria-selected={view === "graph"}
              className={view === "graph" ? "active" : ""}
              onClick={() => setParam("view", null)}
            >
              Graph
            </button>
            <button
              role="tab"
              aria-selected={view === "timeline"}
              className={view === "timeline" ? "active" : ""}
              onClick={() => setParam("view", "timeline")}
            >
              Timeline
            </button>
          </div>
        </header>
      </Boundary>
      <Boundary region="compare">
        <CompareBar snapshot={q.data} onSelect={select} />
      </Boundary>
      <ReplayBar replay={replay} />
      <div className="trace-body">
        <div className="canvas">
          {view === "graph" ? (
            <Boundary region="graph">
              <ReactFlowProvider>
                <CompareMarks snapshot={q.data}>
                  <Graph snapshot={q.data} selected={selected} onSelect={select} refit={replay.at !== null} />
                </CompareMarks>
                <div className="legend">
                  {EDGE_LEGEND.map(([kind, help]) => (
                    <span key={kind} title={help}>
                      <svg width="26" height="8" aria-hidden>
                        <line x1="0" y1="4" x2="26" y2="4" className={`legend-edge edge-${kind}`} />
                      </svg>
                      {kind}
                    </span>
                  ))}
                  <span title="announced by a chain, not published yet">
                    <span className="legend-placeholder" /> not sent yet
                  </span>
                </div>
              </ReactFlowProvider>
            </Boundary>
          ) : (
            <Boundary region="timeline">
              <Timeline
                snapshot={q.data}
                onSelect={(id) => setParam("task", id)}
                selected={selected}
                at={replay.at ?? undefined}
              />
            </Boundary>
          )}
        </div>
        {selected && (
          <aside className="side-panel" aria-label="Task detail">
            <div className="side-actions">
              <Link to={`/tasks/${encodeURIComponent(selected)}`} title="Open as a page">
                ↗
              </Link>
              <button className="close" onClick={() => setParam("task", null)} title="Close (Esc)">
                ×
              </button>
            </div>
            <Boundary region="task detail" key={selected}>
              {replay.at !== null ? (
                <TaskDetailAtLoader taskId={selected} at={replay.at} />
              ) : (
                <TaskDetailLoader taskId={selected} />
              )}
            </Boundary>
          </aside>
        )}
      </div>
    </div>
  );
}
