/**
 * Tasks (/tasks): every task, not every trace — Flower's main page. Newest first, or by when it
 * started, its runtime or how long it waited for a worker; filters by state, name, worker, queue
 * and time; cursor pages; refreshed every few seconds and on live news.
 */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { TaskSort, TaskState } from "../../../shared/api";
import { taskListQuery, type TaskListFilters } from "../api/client";
import { Boundary, RowBoundary } from "../components/Boundary";
import { StateBadge } from "../components/StateBadge";
import { useNow } from "../clock";
import { dateTime, duration, encodeId, shortId, shortName, text, time } from "../format";
import { Link, navigate, useLocation } from "../router";
import { ALL_STATES, STATE_STYLES } from "../states";

const RANGES: [string, number | null][] = [
  ["all time", null],
  ["15 min", 900],
  ["1 hour", 3600],
  ["24 hours", 86400],
];

const SORTS: [TaskSort, string][] = [
  ["published", "received"],
  ["started", "started"],
  ["runtime", "runtime"],
  ["queue_wait", "queue wait"],
];

export function TasksPage() {
  const { search } = useLocation();
  const [cursors, setCursors] = useState<string[]>([]);
  const now = useNow(60_000);
  const range = Number(search.get("range") ?? 0) || null;
  const sort = (SORTS.find(([s]) => s === search.get("sort"))?.[0] ?? "published") as TaskSort;
  const filters: TaskListFilters = {
    sort,
    state: search.get("state") ?? undefined,
    name: search.get("name") ?? undefined,
    worker: search.get("worker") ?? undefined,
    queue: search.get("queue") ?? undefined,
    from: range ? Math.floor(now / 60) * 60 - range : undefined,
    cursor: cursors[cursors.length - 1],
  };
  const q = useQuery(taskListQuery(filters));
  const set = (k: string, v: string | null) => {
    const next = new URLSearchParams(search);
    if (v) next.set(k, v);
    else next.delete(k);
    setCursors([]);
    navigate(`/tasks?${next.toString()}`, true);
  };
  const textFilter = (key: "name" | "worker" | "queue", label: string) => (
    <input
      aria-label={label}
      placeholder={`${label.toLowerCase()}…`}
      defaultValue={filters[key] ?? ""}
      onKeyDown={(e) => e.key === "Enter" && set(key, (e.target as HTMLInputElement).value.trim() || null)}
      onBlur={(e) => set(key, e.target.value.trim() || null)}
    />
  );
  return (
    <div className="page tasks-page">
      <h2>Tasks</h2>
      <Boundary region="filters">
        <div className="toolbar">
          <select
            aria-label="State"
            value={filters.state ?? ""}
            onChange={(e) => set("state", e.target.value || null)}
          >
            <option value="">any state</option>
            {ALL_STATES.map((s) => (
              <option key={s} value={s}>
                {STATE_STYLES[s].label}
              </option>
            ))}
          </select>
          {textFilter("name", "Task name contains")}
          {textFilter("worker", "Worker")}
          {textFilter("queue", "Queue")}
          <div className="tabs small" role="group" aria-label="Time range">
            {RANGES.map(([label, secs]) => (
              <button
                key={label}
                className={range === secs ? "active" : ""}
                onClick={() => set("range", secs ? String(secs) : null)}
              >
                {label}
              </button>
            ))}
          </div>
        </div>
      </Boundary>
      {q.isPending && <div className="loading">Loading tasks…</div>}
      {q.isError && <div className="error-box">Could not list tasks: {q.error.message}</div>}
      {q.data && q.data.tasks.length === 0 && <div className="empty">No task matches these filters.</div>}
      {q.data && q.data.tasks.length > 0 && (
        <Boundary region="task list">
          <table className="grid" data-task-list>
            <thead>
              <tr>
                <th>state</th>
                <th>task</th>
                <th>id</th>
                <th>worker</th>
                <th>queue</th>
                {SORTS.map(([s, label]) => (
                  <th key={s} className={s === "runtime" || s === "queue_wait" ? "num" : undefined}>
                    <button
                      className={`sort${sort === s ? " active" : ""}`}
                      aria-pressed={sort === s}
                      onClick={() => set("sort", s === "published" ? null : s)}
                      title={`sort by ${label}, largest or newest first`}
                    >
                      {label}
                      {sort === s ? " ▾" : ""}
                    </button>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {q.data.tasks.map((t) => (
                <RowBoundary key={t.task_id} region={`task ${text(t.task_id)}`} columns={9}>
                  <tr
                    data-task-id={t.task_id}
                    className="clickable"
                    onClick={() => navigate(`/traces/${encodeId(t.trace_id)}?task=${encodeId(t.task_id)}`)}
                  >
                    <td>
                      <StateBadge state={t.state as TaskState} />
                      {t.retries > 0 && <span className="muted small"> ↻{t.retries}</span>}
                    </td>
                    <td title={t.name ?? ""}>{shortName(t.name)}</td>
                    <td className="mono">
                      <Link to={`/tasks/${encodeId(t.task_id)}`} onClick={(e) => e.stopPropagation()}>
                        {shortId(t.task_id)}
                      </Link>
                    </td>
                    <td className="muted">{t.worker ?? "—"}</td>
                    <td className="muted">{t.queue ?? "—"}</td>
                    <td title={dateTime(t.published_at ?? t.received_at)}>
                      {time(t.published_at ?? t.received_at)}
                    </td>
                    <td title={dateTime(t.started_at)}>{time(t.started_at)}</td>
                    <td className="num">{duration(t.runtime_ms)}</td>
                    <td className="num">{duration(t.queue_wait_ms)}</td>
                  </tr>
                </RowBoundary>
              ))}
            </tbody>
          </table>
          <div className="pager">
            <button disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
              ← newer
            </button>
            <button
              disabled={!q.data.next_cursor}
              onClick={() => q.data.next_cursor && setCursors((c) => [...c, q.data.next_cursor!])}
            >
              older →
            </button>
          </div>
        </Boundary>
      )}
    </div>
  );
}
