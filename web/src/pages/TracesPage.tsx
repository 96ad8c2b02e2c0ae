/** Home: recent traces, filters, search by task id, cursor pagination, live updates. */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { TaskState } from "../../../shared/api";
import { taskSearchQuery, tracesQuery, type TraceFilters } from "../api/client";
import { StateBadge } from "../components/StateBadge";
import { Boundary, RowBoundary } from "../components/Boundary";
import { ago, dateTime, duration, encodeId, shortId, shortName, text } from "../format";
import { Link, navigate, useLocation } from "../router";
import { SUMMARY_STATES } from "../../../shared/states";
import { STATE_STYLES } from "../states";
import { useNow } from "../clock";

const RANGES: [string, number | null][] = [
  ["all time", null],
  ["15 min", 900],
  ["1 hour", 3600],
  ["24 hours", 86400],
  ["7 days", 7 * 86400],
];

export function EmptyInstall() {
  const origin = window.location.origin;
  return (
    <div className="empty install">
      <h2>No traces yet</h2>
      <p>
        Add the producer to the module that defines your Celery app (clients and workers import it alike):
      </p>
      <pre>{`pip install ./python        # from this repository; standard library only beyond Celery

# in the module that creates your Celery app
import stemtrace
stemtrace.init(app)

# then run workers and clients with
STEMTRACE_URL=${origin} celery -A yourapp worker`}</pre>
      <p className="muted">
        No Celery at hand? POST a recorded workflow: see “Try it without Celery” in the README.
      </p>
    </div>
  );
}

export function TracesPage() {
  const { search } = useLocation();
  const [cursors, setCursors] = useState<string[]>([]);
  const [idQuery, setIdQuery] = useState(() => search.get("q") ?? ""); // ?q= links here from a task that is not found
  const range = Number(search.get("range") ?? 0) || null;
  const now = useNow(60_000); // a time preset's window moves by the minute
  const filters: TraceFilters = {
    state: search.get("state") ?? undefined,
    name: search.get("name") ?? undefined,
    from: range ? Math.floor(now / 60) * 60 - range : undefined,
    cursor: cursors[cursors.length - 1],
  };
  const q = useQuery(tracesQuery(filters));
  const hits = useQuery(taskSearchQuery(idQuery.trim()));
  const set = (k: string, v: string | null) => {
    const next = new URLSearchParams(search);
    if (v) next.set(k, v);
    else next.delete(k);
    setCursors([]);
    navigate(`/?${next.toString()}`, true);
  };
  const filtered = Boolean(filters.state || filters.name || range);
  return (
    <div className="page traces-page">
      <Boundary region="filters">
        <div className="toolbar">
          <select
            aria-label="State"
            value={filters.state ?? ""}
            onChange={(e) => set("state", e.target.value || null)}
          >
            <option value="">any state</option>
            {/* Every state a trace can have (shared/states.ts), and only those. */}
            {SUMMARY_STATES.map((s) => (
              <option key={s} value={s}>
                {STATE_STYLES[s].label}
              </option>
            ))}
          </select>
          <input
            aria-label="Task name"
            placeholder="task name contains…"
            defaultValue={filters.name ?? ""}
            onKeyDown={(e) =>
              e.key === "Enter" && set("name", (e.target as HTMLInputElement).value.trim() || null)
            }
            onBlur={(e) => set("name", e.target.value.trim() || null)}
          />
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
          <div className="search">
            <input
              aria-label="Find a task by id"
              placeholder="find task by id or name…"
              value={idQuery}
              onChange={(e) => setIdQuery(e.target.value)}
            />
            {idQuery.trim() && hits.data && (
              <Boundary region="search results">
                <ul className="search-results">
                  {hits.data.tasks.length === 0 && <li className="muted">no task matches</li>}
                  {hits.data.tasks.map((t) => (
                    <li key={t.task_id}>
                      <Link to={`/traces/${encodeId(t.trace_id)}?task=${encodeId(t.task_id)}`}>
                        <span className="mono">{shortId(t.task_id)}</span> {shortName(t.name)}
                      </Link>{" "}
                      <StateBadge state={t.state} />
                    </li>
                  ))}
                </ul>
              </Boundary>
            )}
          </div>
        </div>
      </Boundary>
      {q.isPending && <div className="loading">Loading traces…</div>}
      {q.isError && <div className="error-box">Could not load traces: {q.error.message}</div>}
      {q.data &&
        q.data.traces.length === 0 &&
        (filtered ? <div className="empty">No trace matches these filters.</div> : <EmptyInstall />)}
      {q.data && q.data.traces.length > 0 && (
        <Boundary region="trace list">
          <table className="grid traces">
            <thead>
              <tr>
                <th>state</th>
                <th>root task</th>
                <th>trace</th>
                <th className="num">tasks</th>
                <th className="num">failed</th>
                <th>started</th>
                <th className="num">duration</th>
                <th>workers</th>
              </tr>
            </thead>
            <tbody>
              {q.data.traces.map((t) => (
                <RowBoundary key={t.trace_id} region={`trace ${text(t.trace_id)}`} columns={8}>
                  <tr
                    onClick={() => navigate(`/traces/${encodeId(t.trace_id)}`)}
                    className="clickable"
                    data-trace-id={t.trace_id}
                  >
                    <td>
                      <StateBadge state={t.state as TaskState} />
                      {t.anomaly_count > 0 && (
                        <span className="anomaly-badge" title={`${t.anomaly_count} anomalies`}>
                          !{t.anomaly_count}
                        </span>
                      )}
                    </td>
                    <td>
                      <Link to={`/traces/${encodeId(t.trace_id)}`} title={text(t.root_name)}>
                        {shortName(t.root_name)}
                      </Link>
                      <span className="muted small">
                        {" "}
                        {t.task_names.length > 1 ? `+${t.task_names.length - 1} names` : ""}
                      </span>
                    </td>
                    <td className="mono muted">{shortId(t.trace_id)}</td>
                    <td
                      className="num"
                      title={
                        t.not_run_count
                          ? `${t.task_count} sent, ${t.not_run_count} announced but never run`
                          : undefined
                      }
                    >
                      {t.task_count}
                      {t.not_run_count ? (
                        <span className="bad small"> +{t.not_run_count} not run</span>
                      ) : null}
                    </td>
                    <td className={`num${t.failure_count ? " bad" : ""}`}>{t.failure_count}</td>
                    <td title={dateTime(t.started_at)}>{ago(t.started_at)}</td>
                    <td className="num">{duration(t.duration_ms)}</td>
                    <td className="muted">{t.workers.join(", ")}</td>
                  </tr>
                </RowBoundary>
              ))}
            </tbody>
          </table>
        </Boundary>
      )}
      <div className="pager">
        {cursors.length > 0 && <button onClick={() => setCursors((c) => c.slice(0, -1))}>← newer</button>}
        {q.data?.next_cursor && (
          <button onClick={() => setCursors((c) => [...c, q.data!.next_cursor!])}>older →</button>
        )}
      </div>
    </div>
  );
}
