/**
 * The task registry (/registry): every task name with its status, runs, failure rate and runtimes;
 * a search box and a status filter; a row opens into its recent runs and failures.
 */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { RegistryEntry } from "../../../shared/api";
import { registryQuery, taskSearchQuery } from "../api/client";
import { Boundary, RowBoundary } from "../components/Boundary";
import { StateBadge } from "../components/StateBadge";
import { ago, duration, encodeId, percent, shortId, shortName, text } from "../format";
import { Link } from "../router";
import { REGISTRY_STATUS_STYLES } from "../states";

const COLUMNS = 11;

/** What the statuses mean, as the original stemtrace explains "Not registered". */
const STATUS_HELP: Record<RegistryEntry["status"], string> = {
  ACTIVE: "registered by an online worker, and has run",
  NEVER_RUN: "registered by an online worker, but no run has been seen",
  NOT_REGISTERED:
    "seen in published or received messages, but no online worker registers this name: its messages are dropped (task_unknown) or wait forever. Deploy the code that defines it to the workers of its queue, or fix the name at the call site.",
};

/** A name's recent runs (the index's task search by name), newest first. */
function RecentRuns({ name }: { name: string }) {
  const q = useQuery(taskSearchQuery(name));
  if (q.isPending) return <p className="loading">Loading recent runs of {shortName(name)}…</p>;
  if (q.isError) return <p className="error-box">Could not load recent runs: {q.error.message}</p>;
  const runs = q.data.tasks.filter((t) => t.name === name);
  if (runs.length === 0)
    return <p className="muted">No run of this name is kept (retention), or none has finished yet.</p>;
  const failures = runs.filter(
    (t) =>
      t.state === "FAILURE" || t.state === "UNREGISTERED" || t.state === "LOST" || t.state === "INTERRUPTED",
  );
  return (
    <div className="recent-runs" data-recent-runs={name}>
      <span className="muted small">
        last {runs.length} {runs.length === 1 ? "run" : "runs"} · {failures.length} failed
      </span>
      <ul className="relatives">
        {runs.slice(0, 20).map((t) => (
          <li key={t.task_id}>
            <Link to={`/tasks/${encodeId(t.task_id)}`} className="mono">
              {shortId(t.task_id)}
            </Link>{" "}
            <StateBadge state={t.state} /> <span className="muted small">{ago(t.updated_at)}</span>{" "}
            <Link to={`/traces/${encodeId(t.trace_id)}`} className="muted small">
              trace
            </Link>
          </li>
        ))}
      </ul>
    </div>
  );
}

export function RegistryPage() {
  const q = useQuery(registryQuery());
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState<RegistryEntry["status"] | "">("");
  const [open, setOpen] = useState<string | null>(null);
  if (q.isPending) return <div className="loading page">Loading the task registry…</div>;
  if (q.isError) return <div className="error-box page">Could not load the registry: {q.error.message}</div>;
  if (q.data.tasks.length === 0)
    return (
      <div className="empty page">No task names yet: they appear when workers come online or tasks run.</div>
    );
  const needle = search.trim().toLowerCase();
  const shown = q.data.tasks.filter(
    (t) => (!status || t.status === status) && (!needle || t.name.toLowerCase().includes(needle)),
  );
  const unregistered = q.data.tasks.filter((t) => t.status === "NOT_REGISTERED").length;
  return (
    <div className="page">
      <h2>
        Task registry <span className="muted small">{q.data.tasks.length.toLocaleString()} names</span>
      </h2>
      {unregistered > 0 && (
        <p className="error-box" data-not-registered-help>
          {unregistered} {unregistered === 1 ? "name is" : "names are"} <strong>not registered</strong>:{" "}
          {STATUS_HELP.NOT_REGISTERED}
        </p>
      )}
      <div className="toolbar">
        <input
          aria-label="Search task names"
          placeholder="search task names…"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        <select
          aria-label="Status"
          value={status}
          onChange={(e) => setStatus(e.target.value as RegistryEntry["status"] | "")}
        >
          <option value="">any status</option>
          {(Object.keys(REGISTRY_STATUS_STYLES) as RegistryEntry["status"][]).map((s) => (
            <option key={s} value={s}>
              {REGISTRY_STATUS_STYLES[s].label}
            </option>
          ))}
        </select>
        <span className="muted small">
          {shown.length === q.data.tasks.length ? "" : `${shown.length} of ${q.data.tasks.length} shown · `}
          click a row for its recent runs
        </span>
      </div>
      <Boundary region="registry table">
        <table className="grid">
          <thead>
            <tr>
              <th>task</th>
              <th>status</th>
              <th className="num">runs</th>
              <th className="num">failure rate</th>
              <th className="num" title="runtime, 50th percentile">
                run p50
              </th>
              <th className="num" title="runtime, 95th percentile">
                run p95
              </th>
              <th
                className="num"
                title="time waiting for a worker (published → started, never less than the worker's own received → started), 50th percentile"
              >
                queue p50
              </th>
              <th className="num" title="time waiting for a worker, 95th percentile">
                queue p95
              </th>
              <th>last run</th>
              <th>registered by</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 && (
              <tr>
                <td colSpan={COLUMNS} className="muted">
                  No task name matches.
                </td>
              </tr>
            )}
            {shown.map((t) => {
              const { label, color } = REGISTRY_STATUS_STYLES[t.status] ?? { label: "?", color: "gray" };
              const expanded = open === t.name;
              return (
                <RowBoundary key={t.name} region={`task name ${text(t.name)}`} columns={COLUMNS}>
                  <tr
                    data-task-name={t.name}
                    className={`clickable${expanded ? " expanded" : ""}`}
                    onClick={() => setOpen(expanded ? null : t.name)}
                    aria-expanded={expanded}
                  >
                    <td title={[t.module, t.signature, t.doc].filter(Boolean).join("\n")}>
                      <span className="muted">{expanded ? "▾" : "▸"}</span>{" "}
                      <strong>{shortName(t.name)}</strong> <span className="muted small">{t.name}</span>
                      {t.open_anomalies > 0 && (
                        <Link
                          to="/dashboard"
                          className="anomaly-badge"
                          onClick={(e) => e.stopPropagation()}
                          title={`${t.open_anomalies} open anomalies for this task name`}
                        >
                          ⚠ {t.open_anomalies}
                        </Link>
                      )}
                      {t.signature && <div className="muted small mono">{t.signature}</div>}
                    </td>
                    <td>
                      <span
                        className="state-badge"
                        style={{ ["--state" as string]: color }}
                        title={STATUS_HELP[t.status]}
                      >
                        {label}
                      </span>
                    </td>
                    <td className="num">{t.runs.toLocaleString()}</td>
                    <td className={`num${t.failure_rate > 0 ? " bad" : ""}`}>{percent(t.failure_rate)}</td>
                    <td className="num">{duration(t.runtime_p50_ms)}</td>
                    <td
                      className="num"
                      title={t.runtime_p99_ms != null ? `p99 ${duration(t.runtime_p99_ms)}` : undefined}
                    >
                      {duration(t.runtime_p95_ms)}
                    </td>
                    <td className="num" data-queue-p50>
                      {duration(t.queue_wait_p50_ms)}
                    </td>
                    <td
                      className="num"
                      title={t.queue_wait_p99_ms != null ? `p99 ${duration(t.queue_wait_p99_ms)}` : undefined}
                    >
                      {duration(t.queue_wait_p95_ms)}
                    </td>
                    <td>{ago(t.last_run_at)}</td>
                    <td className="muted">{t.registered_by.join(", ") || "—"}</td>
                    <td onClick={(e) => e.stopPropagation()}>
                      <Link to={`/?name=${encodeId(t.name)}`}>view traces →</Link>
                    </td>
                  </tr>
                  {expanded && (
                    <tr className="expansion">
                      <td colSpan={COLUMNS}>
                        <Boundary region={`recent runs of ${text(t.name)}`}>
                          {t.status === "NOT_REGISTERED" && (
                            <p className="muted">{STATUS_HELP.NOT_REGISTERED}</p>
                          )}
                          <RecentRuns name={t.name} />
                        </Boundary>
                      </td>
                    </tr>
                  )}
                </RowBoundary>
              );
            })}
          </tbody>
        </table>
      </Boundary>
    </div>
  );
}
