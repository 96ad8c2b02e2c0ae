/** One trace: the interactive DAG (or a Gantt timeline) with the selected task's detail beside it. */
import { useQuery } from "@tanstack/react-query";
import { Background, Controls, MiniMap, ReactFlow, ReactFlowProvider, useReactFlow, type NodeMouseHandler } from "@xyflow/react";
import { useEffect, useMemo, useRef, useState } from "react";
import type { TraceSnapshot } from "../../../shared/api";
import { traceQuery } from "../api/client";
import { useTraceLive } from "../api/live";
import { StateBadge } from "../components/StateBadge";
import { TaskDetailLoader } from "../components/TaskDetailView";
import { Timeline } from "../components/Timeline";
import { duration, dateTime, shortId, shortName } from "../format";
import { layoutGraph, type FlowNode, type Layout } from "../graph/layout";
import { nodeTypes } from "../graph/nodes";
import { navigate, useLocation } from "../router";
import { STATE_STYLES } from "../states";

const EDGE_LEGEND = [
  ["chain", "next step of a chain"],
  ["spawn", "published inside the parent"],
  ["callback", "link (on success)"],
  ["errback", "link_error (on failure)"],
  ["chord", "header group → callback"],
] as const;

/** Only the structure decides the layout; state changes patch node data in place (keeps zoom). */
function structureKey(s: TraceSnapshot): string {
  return `${s.nodes.length}|${s.edges.length}|${s.containers.map((c) => c.id + c.members.length).join(",")}|${s.nodes.filter((n) => n.placeholder).length}`;
}

function Graph({ snapshot, selected, onSelect }: { snapshot: TraceSnapshot; selected: string | null; onSelect: (id: string) => void }) {
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [layout, setLayout] = useState<Layout | null>(null);
  const [error, setError] = useState<string | null>(null);
  const fitted = useRef(false);
  const flow = useReactFlow();
  const key = structureKey(snapshot);
  const latest = useRef(snapshot);
  latest.current = snapshot;
  useEffect(() => {
    let cancelled = false;
    layoutGraph(latest.current, expanded)
      .then((l) => !cancelled && setLayout(l))
      .catch((e: unknown) => !cancelled && setError(String(e)));
    return () => {
      cancelled = true;
    };
  }, [key, expanded]);
  // Patch states and timings into the laid-out nodes without moving anything.
  const nodes = useMemo(() => {
    if (!layout) return [];
    const byId = new Map(snapshot.nodes.map((n) => [n.id, n]));
    const containers = new Map(snapshot.containers.map((c) => [c.id, c]));
    return layout.nodes.map((n): FlowNode => {
      if (n.data.kind === "task") {
        const task = byId.get(n.id);
        return { ...n, selected: n.id === selected, data: task ? { kind: "task", task } : n.data };
      }
      if (n.data.kind === "container") {
        const c = containers.get(n.id);
        return c ? { ...n, data: { ...n.data, container: c } } : n;
      }
      return n;
    });
  }, [layout, snapshot, selected]);
  useEffect(() => {
    if (layout && !fitted.current) {
      fitted.current = true;
      requestAnimationFrame(() => void flow.fitView({ padding: 0.15, maxZoom: 1.2 }));
    }
  }, [layout, flow]);
  const onNodeClick: NodeMouseHandler<FlowNode> = (_, node) => {
    if (node.data.kind === "task") onSelect(node.id);
    else if (node.data.kind === "more") setExpanded((e) => new Set([...e, (node.data as { containerId: string }).containerId]));
  };
  if (error) return <div className="error-box">Could not lay out this graph: {error}</div>;
  if (!layout) return <div className="loading">Laying out {snapshot.nodes.length} tasks…</div>;
  return (
    <ReactFlow
      nodes={nodes}
      edges={layout.edges}
      nodeTypes={nodeTypes}
      onNodeClick={onNodeClick}
      nodesDraggable={false}
      nodesConnectable={false}
      minZoom={0.05}
      onlyRenderVisibleElements
      proOptions={{ hideAttribution: true }}
    >
      <Background gap={24} />
      <Controls showInteractive={false} />
      <MiniMap pannable zoomable nodeColor={(n) => ((n.data as FlowNode["data"]).kind === "task" ? STATE_STYLES[(n.data as { task: { state: keyof typeof STATE_STYLES } }).task.state].color : "transparent")} />
    </ReactFlow>
  );
}

export function TracePage({ traceId }: { traceId: string }) {
  const { search } = useLocation();
  const q = useQuery(traceQuery(traceId));
  useTraceLive(traceId);
  const selected = search.get("task");
  const view = search.get("view") === "timeline" ? "timeline" : "graph";
  const setParam = (k: string, v: string | null) => {
    const next = new URLSearchParams(search);
    if (v === null) next.delete(k);
    else next.set(k, v);
    navigate(`/traces/${traceId}?${next.toString()}`, true);
  };
  if (q.isPending) return <div className="loading page">Loading trace {shortId(traceId)}…</div>;
  if (q.isError)
    return (
      <div className="error-box page">
        <h2>Trace {shortId(traceId)} not available</h2>
        <p>{q.error.message}</p>
        <p>
          If you just sent its events, wait a second and <button onClick={() => void q.refetch()}>retry</button>.
        </p>
      </div>
    );
  const s = q.data.summary;
  return (
    <div className="trace-page">
      <header className="trace-header">
        <div>
          <h1>
            {shortName(s.root_name)} <StateBadge state={s.state} />
          </h1>
          <div className="muted">
            <span className="mono">{traceId}</span> · {s.task_count} tasks · {s.failure_count} failed · started {dateTime(s.started_at)} · {duration(s.duration_ms)}
            {s.workers.length ? ` · ${s.workers.join(", ")}` : ""}
            {q.data.truncated && ` · showing the first ${q.data.truncated.shown} of ${q.data.truncated.total} tasks`}
          </div>
        </div>
        <div className="tabs">
          <button className={view === "graph" ? "active" : ""} onClick={() => setParam("view", null)}>
            Graph
          </button>
          <button className={view === "timeline" ? "active" : ""} onClick={() => setParam("view", "timeline")}>
            Timeline
          </button>
        </div>
      </header>
      <div className="trace-body">
        <div className="canvas">
          {view === "graph" ? (
            <ReactFlowProvider>
              <Graph snapshot={q.data} selected={selected} onSelect={(id) => setParam("task", id)} />
            </ReactFlowProvider>
          ) : (
            <Timeline snapshot={q.data} onSelect={(id) => setParam("task", id)} selected={selected} />
          )}
          <div className="legend">
            {EDGE_LEGEND.map(([kind, help]) => (
              <span key={kind} title={help}>
                <svg width="26" height="8">
                  <line x1="0" y1="4" x2="26" y2="4" className={`legend-edge edge-${kind}`} />
                </svg>
                {kind}
              </span>
            ))}
          </div>
        </div>
        {selected && (
          <aside className="side-panel">
            <button className="close" onClick={() => setParam("task", null)} title="Close">
              ×
            </button>
            <TaskDetailLoader taskId={selected} />
          </aside>
        )}
      </div>
    </div>
  );
}
