/**
 * The trace as a Gantt chart, by task or by worker: bars from started_at to finished_at, the
 * queued time (published_at → started_at) lighter before them, so parallelism and slow steps show.
 * By worker, overlapping tasks get sub-lanes: a worker's concurrency is visible as stacked bars.
 */
import { useMemo, useState } from "react";
import type { GraphNode, TraceSnapshot } from "../../../shared/api";
import { duration, shortId, shortName, time } from "../format";
import { STATE_STYLES } from "../states";
import { useNow } from "../clock";
import { Boundary } from "./Boundary";

interface Row {
  key: string;
  label: string;
  title: string;
  items: GraphNode[];
  lanes: number;
  laneOf: Map<string, number>;
}

const startOf = (t: GraphNode) => t.published_at ?? t.received_at ?? t.started_at ?? 0;

/** A task's runs as [start, end] (a retried task ran more than once; it waited in between). */
function runsOf(t: GraphNode, now: number): [number, number][] {
  if (!t.runs || t.runs.length < 2) return [];
  return t.runs
    .filter((r) => r.started_at !== null)
    .map((r) => [r.started_at!, r.finished_at ?? now] as [number, number]);
}

/** Time spent running: the sum of its runs, without the waits between retries. */
function runningTime(t: GraphNode, now: number): string {
  const runs = runsOf(t, now);
  if (runs.length > 1) return duration(runs.reduce((sum, [a, b]) => sum + Math.max(0, b - a), 0) * 1000);
  return t.started_at !== null ? duration(((t.finished_at ?? now) - t.started_at) * 1000) : "—";
}

function niceStep(span: number): number {
  const raw = span / 6;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw;
}

export function Timeline({
  snapshot,
  selected,
  onSelect,
  at,
}: {
  snapshot: TraceSnapshot;
  selected: string | null;
  onSelect: (id: string) => void;
  /** A replayed moment: running tasks' bars end there instead of at the current time. */
  at?: number;
}) {
  const [by, setBy] = useState<"task" | "worker">("task");
  // Running tasks' bars end at now: a clock that moves every few seconds, not at each render.
  const clock = useNow(5_000);
  const now = at ?? clock;
  const tasks = useMemo(
    () =>
      snapshot.nodes.filter((n) => n.published_at ?? n.started_at).sort((a, b) => startOf(a) - startOf(b)),
    [snapshot],
  );
  const { t0, span } = useMemo(() => {
    if (tasks.length === 0) return { t0: 0, span: 1 };
    const first = Math.min(...tasks.map(startOf));
    const last = Math.max(...tasks.map((n) => n.finished_at ?? (n.started_at !== null ? now : startOf(n))));
    return { t0: first, span: Math.max(0.001, last - first) };
  }, [tasks, now]);
  const rows = useMemo((): Row[] => {
    if (by === "task")
      return tasks.map((t) => ({
        key: t.id,
        label: shortName(t.name),
        title: `${t.name ?? ""} ${t.id}`,
        items: [t],
        lanes: 1,
        laneOf: new Map([[t.id, 0]]),
      }));
    const byWorker = new Map<string, GraphNode[]>();
    for (const t of tasks) {
      const w = t.worker ?? "(not on a worker yet)";
      const list = byWorker.get(w);
      if (list) list.push(t);
      else byWorker.set(w, [t]);
    }
    return [...byWorker].map(([worker, items]) => {
      // Greedy interval packing on each task's whole bar (queued → finished).
      const laneEnds: number[] = [];
      const laneOf = new Map<string, number>();
      for (const t of items) {
        const s = startOf(t);
        const e = t.finished_at ?? (t.started_at !== null ? now : s);
        let lane = laneEnds.findIndex((end) => end <= s);
        if (lane === -1) lane = laneEnds.push(e) - 1;
        else laneEnds[lane] = e;
        laneOf.set(t.id, lane);
      }
      return {
        key: worker,
        label: worker,
        title: `${worker}: ${items.length} tasks, up to ${laneEnds.length} at once`,
        items,
        lanes: Math.max(1, laneEnds.length),
        laneOf,
      };
    });
  }, [by, tasks, now]);
  if (tasks.length === 0)
    return (
      <div className="empty">
        Nothing has been sent yet: the timeline starts with the first published task.
      </div>
    );
  const pct = (t: number) => ((t - t0) / span) * 100;
  const step = niceStep(span);
  const ticks: number[] = [];
  // At most a dozen ticks whatever the times say (a span of 1e308 must not loop forever).
  if (Number.isFinite(span) && Number.isFinite(step) && step > 0)
    for (let s = 0; s <= span + 1e-9 && ticks.length < 12; s += step) ticks.push(s);
  return (
    <div className="timeline">
      <div className="timeline-toolbar">
        <span className="muted">
          from {time(t0)} · {duration(span * 1000)} · <span className="legend-queued" /> queued{" "}
          <span className="legend-run" /> running <span className="legend-wait" /> waiting to retry
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
      <div className="timeline-axis">
        <div className="timeline-label" />
        <div className="timeline-ticks">
          {ticks.map((s) => (
            <span key={s} style={{ left: `${(s / span) * 100}%` }}>
              {s === 0 ? "0" : `+${duration(s * 1000)}`}
            </span>
          ))}
        </div>
        <div className="timeline-dur" />
      </div>
      <div className="timeline-rows">
        {rows.map((row) => (
          <Boundary key={row.key} region={`timeline row ${row.key}`}>
            <div
              className="timeline-row"
              style={{ height: by === "worker" ? Math.max(38, 8 + row.lanes * 16) : 8 + row.lanes * 16 }}
              data-row={row.key}
            >
              <div className="timeline-label" title={row.title}>
                {by === "task" && (
                  <span style={{ color: STATE_STYLES[row.items[0]!.state].color }}>
                    {STATE_STYLES[row.items[0]!.state].icon}{" "}
                  </span>
                )}
                {row.label}
                {by === "worker" && (
                  <div className="muted small" data-lanes={row.lanes}>
                    {row.items.length} {row.items.length === 1 ? "task" : "tasks"} ·{" "}
                    {row.lanes === 1 ? "one at a time" : `up to ${row.lanes} at once`}
                  </div>
                )}
                {by === "task" && <span className="mono muted"> {shortId(row.key)}</span>}
              </div>
              <div className="timeline-track">
                {/* By worker, each lane is one task at a time: numbered, so concurrency reads at a glance. */}
                {by === "worker" &&
                  row.lanes > 1 &&
                  Array.from({ length: row.lanes }, (_, lane) => (
                    <span key={`lane${lane}`} className="timeline-lane-label" style={{ top: 4 + lane * 16 }}>
                      {lane + 1}
                    </span>
                  ))}
                {ticks.map((s) => (
                  <span key={s} className="timeline-grid" style={{ left: `${(s / span) * 100}%` }} />
                ))}
                {row.items.map((t) => {
                  const queued = t.published_at ?? t.received_at ?? t.started_at ?? t0;
                  const start = t.started_at ?? (t.finished_at === null ? now : queued);
                  const end = t.finished_at ?? (t.started_at !== null ? now : start);
                  const top = 4 + (row.laneOf.get(t.id) ?? 0) * 16;
                  const tip = `${t.name ?? ""} ${shortId(t.id)} · ${STATE_STYLES[t.state].label}\nqueued ${time(queued)} (${duration((start - queued) * 1000)})\nstarted ${time(t.started_at)}\nfinished ${time(t.finished_at)} (${duration((end - start) * 1000)})${t.worker ? `\non ${t.worker}` : ""}`;
                  const runs = runsOf(t, now);
                  const waits = runs.slice(1).map((r, i) => [runs[i]![1], r[0]] as const);
                  const waited = waits.reduce((sum, [a, b]) => sum + Math.max(0, b - a), 0);
                  return (
                    <div
                      key={t.id}
                      className={`timeline-item${selected === t.id ? " selected" : ""}`}
                      style={{ top, height: 12 }}
                      onClick={() => onSelect(t.id)}
                      title={
                        tip +
                        (runs.length > 1
                          ? `\n${runs.length} runs; waited ${duration(waited * 1000)} between them (retry countdown)`
                          : "")
                      }
                      data-task-id={t.id}
                    >
                      <span
                        className="queued"
                        style={{
                          left: `${pct(queued)}%`,
                          width: `${Math.max(0, pct(start) - pct(queued))}%`,
                        }}
                      />
                      {runs.length > 1 ? (
                        <>
                          {waits.map(([a, b], i) => (
                            <span
                              key={`w${i}`}
                              className="wait"
                              data-wait={i}
                              style={{ left: `${pct(a)}%`, width: `${Math.max(0, pct(b) - pct(a))}%` }}
                            />
                          ))}
                          {runs.map(([a, b], i) => (
                            <span
                              key={`r${i}`}
                              className="run"
                              data-run={i}
                              style={{
                                left: `${pct(a)}%`,
                                width: `max(3px, ${pct(b) - pct(a)}%)`,
                                background: STATE_STYLES[t.runs![i]!.state].color,
                              }}
                            />
                          ))}
                        </>
                      ) : (
                        <span
                          className="run"
                          style={{
                            left: `${pct(start)}%`,
                            width: `max(3px, ${pct(end) - pct(start)}%)`,
                            background: STATE_STYLES[t.state].color,
                          }}
                        />
                      )}
                    </div>
                  );
                })}
              </div>
              <div className="timeline-dur mono">
                {by === "task" ? runningTime(row.items[0]!, now) : `${row.items.length} tasks`}
              </div>
            </div>
          </Boundary>
        ))}
      </div>
    </div>
  );
}
