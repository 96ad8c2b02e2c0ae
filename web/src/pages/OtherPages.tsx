/** Task page, workers, registry and the dashboard (anomalies first). */
import { useQuery } from "@tanstack/react-query";
import type { NameStat, ThroughputBucket } from "../../../shared/api";
import { anomaliesQuery, registryQuery, statsQuery, workersQuery } from "../api/client";
import { AnomalyCard } from "../components/AnomalyCard";
import { TaskDetailLoader } from "../components/TaskDetailView";
import { Boundary, RowBoundary } from "../components/Boundary";
import { ago, duration, encodeId, hourMinute, percent, shortId, shortName, text } from "../format";
import { Link } from "../router";

export function TaskPage({ taskId }: { taskId: string }) {
  return (
    <div className="page narrow">
      <TaskDetailLoader taskId={taskId} />
    </div>
  );
}

const WORKER_STATUS: Record<string, string> = { ONLINE: "var(--st-success)", OFFLINE: "var(--st-pending)", LOST: "var(--st-interrupted)" };

export function WorkersPage() {
  const q = useQuery(workersQuery());
  if (q.isPending) return <div className="loading page">Loading workers…</div>;
  if (q.isError) return <div className="error-box page">Could not load workers: {q.error.message}</div>;
  if (q.data.workers.length === 0)
    return (
      <div className="empty page">
        <h2>No worker has reported yet</h2>
        <p>Workers appear here when they start with the producer installed (`stemtrace.init(app)` in the app module).</p>
      </div>
    );
  return (
    <div className="page">
      <Boundary region="worker table">
      <table className="grid">
        <thead>
          <tr>
            <th>status</th>
            <th>worker</th>
            <th>last heartbeat</th>
            <th>pool</th>
            <th className="num">concurrency</th>
            <th>queues</th>
            <th>active tasks</th>
            <th className="num">registered</th>
            <th className="num">sessions</th>
            <th className="num" title="events the producer processes on this worker reported lost (full buffer, server rejections, exit)">dropped</th>
          </tr>
        </thead>
        <tbody>
          {q.data.workers.map((w) => (
            <RowBoundary key={w.hostname} region={`worker ${text(w.hostname)}`} columns={9}>
            <tr data-worker={w.hostname}>
              <td>
                <span className="state-badge" style={{ ["--state" as string]: WORKER_STATUS[w.status] }}>
                  {w.status.toLowerCase()}
                </span>
              </td>
              <td className="mono">{w.hostname}</td>
              <td>{ago(w.last_seen)}</td>
              <td>{w.pool ?? "—"}</td>
              <td className="num">{w.concurrency ?? "—"}</td>
              <td>{w.queues.join(", ") || "—"}</td>
              <td>
                {w.active.length === 0 ? (
                  <span className="muted">idle</span>
                ) : (
                  w.active.map((id) => (
                    <Link key={id} to={`/tasks/${encodeId(id)}`} className="mono">
                      {shortId(id)}{" "}
                    </Link>
                  ))
                )}
              </td>
              <td className="num" title={w.registered.map((r) => r.name).join("\n")}>
                {w.registered.length}
              </td>
              <td className="num">{w.sessions}</td>
              <td
                className={`num${(w.dropped ?? 0) > 0 ? " dropped-warn" : ""}`}
                title={(w.dropped ?? 0) > 0 ? "events lost by this worker's producer: see /api/health for the reasons" : undefined}
              >
                {(w.dropped ?? 0).toLocaleString()}
              </td>
            </tr>
            </RowBoundary>
          ))}
        </tbody>
      </table>
      </Boundary>
    </div>
  );
}

const REGISTRY_BADGE: Record<string, [string, string]> = {
  ACTIVE: ["Active", "var(--st-success)"],
  NEVER_RUN: ["Never run", "var(--st-pending)"],
  NOT_REGISTERED: ["Not registered", "var(--st-failure)"],
};

export function RegistryPage() {
  const q = useQuery(registryQuery());
  if (q.isPending) return <div className="loading page">Loading the task registry…</div>;
  if (q.isError) return <div className="error-box page">Could not load the registry: {q.error.message}</div>;
  if (q.data.tasks.length === 0) return <div className="empty page">No task names yet: they appear when workers come online or tasks run.</div>;
  return (
    <div className="page">
      <Boundary region="registry table">
      <table className="grid">
        <thead>
          <tr>
            <th>task</th>
            <th>status</th>
            <th className="num">runs</th>
            <th className="num">failure rate</th>
            <th className="num">p50</th>
            <th className="num">p95</th>
            <th>last run</th>
            <th>registered by</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {q.data.tasks.map((t) => {
            const [label, color] = REGISTRY_BADGE[t.status] ?? ["?", "gray"];
            return (
              <RowBoundary key={t.name} region={`task name ${text(t.name)}`} columns={9}>
              <tr data-task-name={t.name}>
                <td title={[t.module, t.signature, t.doc].filter(Boolean).join("\n")}>
                  <strong>{shortName(t.name)}</strong> <span className="muted small">{t.name}</span>
                  {t.open_anomalies > 0 && (
                    <Link to="/dashboard" className="anomaly-badge" title={`${t.open_anomalies} open anomalies for this task name`}>
                      ⚠ {t.open_anomalies}
                    </Link>
                  )}
                  {t.signature && <div className="muted small mono">{t.signature}</div>}
                </td>
                <td>
                  <span className="state-badge" style={{ ["--state" as string]: color }}>
                    {label}
                  </span>
                </td>
                <td className="num">{t.runs}</td>
                <td className={`num${t.failure_rate > 0 ? " bad" : ""}`}>{percent(t.failure_rate)}</td>
                <td className="num">{duration(t.runtime_p50_ms)}</td>
                <td className="num">{duration(t.runtime_p95_ms)}</td>
                <td>{ago(t.last_run_at)}</td>
                <td className="muted">{t.registered_by.join(", ") || "—"}</td>
                <td>
                  <Link to={`/?name=${encodeId(t.name)}`}>view runs →</Link>
                </td>
              </tr>
              </RowBoundary>
            );
          })}
        </tbody>
      </table>
      </Boundary>
    </div>
  );
}

/** Finished tasks per bucket with the failed part on top: throughput and failure rate at a glance. */
function ThroughputBars({ buckets, label, bucketLabel }: { buckets: ThroughputBucket[]; label: string; bucketLabel: (start: number) => string }) {
  const max = Math.max(1, ...buckets.map((b) => b.finished));
  const finished = buckets.reduce((s, b) => s + b.finished, 0);
  const failed = buckets.reduce((s, b) => s + b.failed, 0);
  const w = 12;
  const h = 48;
  return (
    <div className="card throughput">
      <div className="muted">{label}</div>
      <div>
        <span className="big">{finished}</span> finished ·{" "}
        <span className={failed ? "bad" : "ok"}>{finished ? percent(failed / finished) : "0.0%"} failed</span>
      </div>
      <svg viewBox={`0 0 ${buckets.length * (w + 2)} ${h}`} width="100%" height={h} preserveAspectRatio="none" role="img" aria-label={`${label}: ${finished} finished, ${failed} failed`}>
        {buckets.map((b, i) => {
          const total = (b.finished / max) * h;
          const bad = (b.failed / max) * h;
          return (
            <g key={b.start}>
              <title>{`${bucketLabel(b.start)}: ${b.finished} finished, ${b.failed} failed`}</title>
              <rect x={i * (w + 2)} y={h - total} width={w} height={Math.max(total - bad, 0)} fill="var(--st-success)" opacity={0.7} />
              <rect x={i * (w + 2)} y={h - bad} width={w} height={bad} fill="var(--st-failure)" />
              {b.finished === 0 && <rect x={i * (w + 2)} y={h - 1} width={w} height={1} fill="var(--border)" />}
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function NameTable({ title, rows, value }: { title: string; rows: NameStat[]; value: (r: NameStat) => string }) {
  return (
    <div className="card">
      <div className="muted">{title}</div>
      {rows.length === 0 ? (
        <p className="muted">No finished task in the last 24 h.</p>
      ) : (
        <table className="grid compact">
          <tbody>
            {rows.map((r) => (
              <RowBoundary key={r.name} region={`task name ${text(r.name)}`} columns={3}>
              <tr>
                <td>
                  <Link to={`/?name=${encodeId(r.name)}`}>{shortName(r.name)}</Link>
                </td>
                <td className="num">{value(r)}</td>
                <td className={`num${r.failures ? " bad" : " muted"}`}>{r.failures ? `${r.failures} failed` : ""}</td>
              </tr>
              </RowBoundary>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

const clock = hourMinute;

export function DashboardPage() {
  const stats = useQuery(statsQuery());
  const anomalies = useQuery(anomaliesQuery());
  const workers = useQuery(workersQuery());
  const open = anomalies.data?.anomalies.filter((a) => a.resolved_at === null) ?? [];
  const resolved = anomalies.data?.anomalies.filter((a) => a.resolved_at !== null).slice(0, 10) ?? [];
  return (
    <div className="page dashboard">
      <section>
        <h2>
          Open anomalies {open.length > 0 && <span className="anomaly-badge">{open.length}</span>}
        </h2>
        {anomalies.isPending && <p className="loading">Checking for anomalies…</p>}
        {anomalies.isError && <p className="error-box">Could not load anomalies: {anomalies.error.message}</p>}
        {anomalies.data && open.length === 0 && <p className="ok">Nothing is stuck, lost or unregistered right now.</p>}
        {open.map((a) => (
          <Boundary key={a.id} region={`anomaly ${text(a.id)}`}>
            <AnomalyCard a={a} />
          </Boundary>
        ))}
        {resolved.length > 0 && (
          <details>
            <summary className="muted">Recently resolved ({resolved.length})</summary>
            {resolved.map((a) => (
              <Boundary key={a.id} region={`anomaly ${text(a.id)}`}>
                <AnomalyCard a={a} />
              </Boundary>
            ))}
          </details>
        )}
      </section>
      {stats.isError && <p className="error-box">Could not load statistics: {stats.error.message}</p>}
      {stats.data && (
        <>
          <section className="stat-cards">
            <Boundary region="last hour">
              <ThroughputBars buckets={stats.data.throughput.hour} label="Last hour (5 min buckets)" bucketLabel={clock} />
            </Boundary>
            <Boundary region="last 24 h">
              <ThroughputBars buckets={stats.data.throughput.day} label="Last 24 h (hourly)" bucketLabel={clock} />
            </Boundary>
            <Boundary region="totals">
              <div className="card">
                <div className="big">{stats.data.traces}</div>
                <div className="muted">traces, {stats.data.tasks} tasks kept</div>
              </div>
            </Boundary>
          </section>
          <section className="stat-cards wide">
            <Boundary region="busiest names">
              <NameTable title="Busiest task names (24 h)" rows={stats.data.busiest_names} value={(r) => `${r.runs} runs`} />
            </Boundary>
            <Boundary region="slowest names">
              <NameTable title="Slowest task names by p95 (24 h)" rows={stats.data.slowest_names} value={(r) => duration(r.runtime_p95_ms)} />
            </Boundary>
          </section>
        </>
      )}
      <section>
        <h2>
          Workers{" "}
          {stats.data && (
            <span className="muted small">
              {stats.data.workers.online} online · {stats.data.workers.offline} offline · {stats.data.workers.lost} lost
            </span>
          )}
        </h2>
        {workers.data && workers.data.workers.length === 0 && (
          <p className="muted">No worker has reported yet: start one with the producer installed (`stemtrace.init(app)` in the app module).</p>
        )}
        <Boundary region="worker chips">
        <div className="worker-chips">
          {workers.data?.workers.map((w) => (
            <Link key={w.hostname} to="/workers" className="worker-chip" title={`last heartbeat ${ago(w.last_seen)}`}>
              <span className="state-badge" style={{ ["--state" as string]: WORKER_STATUS[w.status] }}>
                {w.status.toLowerCase()}
              </span>{" "}
              <span className="mono">{w.hostname}</span> <span className="muted small">{w.active.length ? `${w.active.length} running` : "idle"}</span>
            </Link>
          ))}
        </div>
        </Boundary>
      </section>
    </div>
  );
}
