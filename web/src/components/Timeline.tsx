/** The trace as a Gantt chart, by task or by worker: what ran in parallel, where it was slow. */
import { useMemo, useState } from "react";
import type { GraphNode, TraceSnapshot } from "../../../shared/api";
import { duration, shortId, shortName, time } from "../format";
import { STATE_STYLES } from "../states";

export function Timeline({ snapshot, selected, onSelect }: { snapshot: TraceSnapshot; selected: string | null; onSelect: (id: string) => void }) {
  const [by, setBy] = useState<"task" | "worker">("task");
  const tasks = snapshot.nodes.filter((n) => n.published_at ?? n.started_at);
  const { t0, span } = useMemo(() => {
    const starts = tasks.map((n) => n.published_at ?? n.started_at ?? 0);
    const ends = tasks.map((n) => n.finished_at ?? Date.now() / 1000);
    const t0 = Math.min(...starts);
    return { t0, span: Math.max(0.001, Math.max(...ends) - t0) };
  }, [tasks]);
  const rows = useMemo(() => {
    if (by === "task") return tasks.map((t) => ({ label: `${shortName(t.name)} ${shortId(t.id)}`, items: [t] }));
    const lanes = new Map<string, GraphNode[]>();
    for (const t of tasks) lanes.set(t.worker ?? "(not on a worker)", [...(lanes.get(t.worker ?? "(not on a worker)") ?? []), t]);
    return [...lanes].map(([label, items]) => ({ label, items }));
  }, [by, tasks]);
  if (tasks.length === 0) return <div className="empty">Nothing has run yet.</div>;
  const pct = (t: number) => `${((t - t0) / span) * 100}%`;
  return (
    <div className="timeline">
      <div className="timeline-toolbar">
        <span className="muted">
          {time(t0)} → {duration(span * 1000)}
        </span>
        <div className="tabs small">
          <button className={by === "task" ? "active" : ""} onClick={() => setBy("task")}>
            by task
          </button>
          <button className={by === "worker" ? "active" : ""} onClick={() => setBy("worker")}>
            by worker
          </button>
        </div>
      </div>
      <div className="timeline-rows">
        {rows.map((row) => (
          <div className="timeline-row" key={row.label}>
            <div className="timeline-label" title={row.label}>
              {row.label}
            </div>
            <div className="timeline-track">
              {row.items.map((t) => {
                const queued = t.published_at ?? t.started_at ?? t0;
                const start = t.started_at ?? queued;
                const end = t.finished_at ?? (t.started_at ? Date.now() / 1000 : start);
                return (
                  <div key={t.id} className={`timeline-item${selected === t.id ? " selected" : ""}`} onClick={() => onSelect(t.id)} title={`${t.name}\nqueued ${time(queued)}\nstarted ${time(t.started_at)}\nfinished ${time(t.finished_at)}`}>
                    <span className="queued" style={{ left: pct(queued), width: `calc(${pct(start)} - ${pct(queued)})` }} />
                    <span className="run" style={{ left: pct(start), width: `max(3px, calc(${pct(end)} - ${pct(start)}))`, background: STATE_STYLES[t.state].color }} />
                  </div>
                );
              })}
            </div>
          </div>
        ))}
      </div>
    </div>
  );
}
