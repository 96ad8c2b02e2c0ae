/** Task page, workers, registry and the dashboard (anomalies first). */
import { useQuery } from "@tanstack/react-query";
import { anomaliesQuery, registryQuery, statsQuery, workersQuery } from "../api/client";
import { TaskDetailLoader } from "../components/TaskDetailView";
import { ago, duration, shortId, shortName } from "../format";
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
          </tr>
        </thead>
        <tbody>
          {q.data.workers.map((w) => (
            <tr key={w.hostname} data-worker={w.hostname}>
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
                    <Link key={id} to={`/tasks/${id}`} className="mono">
                      {shortId(id)}{" "}
                    </Link>
                  ))
                )}
              </td>
              <td className="num" title={w.registered.map((r) => r.name).join("\n")}>
                {w.registered.length}
              </td>
              <td className="num">{w.sessions}</td>
            </tr>
          ))}
        </tbody>
      </table>
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
              <tr key={t.name} data-task-name={t.name}>
                <td title={[t.module, t.signature, t.doc].filter(Boolean).join("\n")}>
                  <strong>{shortName(t.name)}</strong> <span className="muted small">{t.name}</span>
                  {t.signature && <div className="muted small mono">{t.signature}</div>}
                </td>
                <td>
                  <span className="state-badge" style={{ ["--state" as string]: color }}>
                    {label}
                  </span>
                </td>
                <td className="num">{t.runs}</td>
                <td className={`num${t.failure_rate > 0 ? " bad" : ""}`}>{(t.failure_rate * 100).toFixed(1)}%</td>
                <td className="num">{duration(t.runtime_p50_ms)}</td>
                <td className="num">{duration(t.runtime_p95_ms)}</td>
                <td>{ago(t.last_run_at)}</td>
                <td className="muted">{t.registered_by.join(", ") || "—"}</td>
                <td>
                  <Link to={`/?name=${encodeURIComponent(t.name)}`}>view runs →</Link>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function DashboardPage() {
  const stats = useQuery(statsQuery());
  const anomalies = useQuery(anomaliesQuery());
  const open = anomalies.data?.anomalies.filter((a) => a.resolved_at === null) ?? [];
  return (
    <div className="page dashboard">
      <section>
        <h2>Open anomalies</h2>
        {anomalies.isError && <p className="muted">Anomaly detection is not available on this server ({anomalies.error.message}).</p>}
        {anomalies.data && open.length === 0 && <p className="ok">Nothing is stuck, lost or unregistered right now.</p>}
        {open.map((a) => (
          <div key={a.id} className="anomaly">
            <strong>{a.kind.replace("_", " ")}</strong> <Link to={`/traces/${a.trace_id}?task=${a.task_id}`}>{shortName(a.task_name)} {shortId(a.task_id)}</Link>{" "}
            <span className="muted">since {ago(a.since)}</span>
            <p>{a.explanation}</p>
            <p className="muted">Fix: {a.fix}</p>
          </div>
        ))}
      </section>
      {stats.data && (
        <section className="stat-cards">
          <div className="card">
            <div className="big">{stats.data.last_hour.finished}</div>
            <div className="muted">tasks finished, last hour</div>
          </div>
          <div className="card">
            <div className={`big${stats.data.last_hour.failed ? " bad" : ""}`}>{stats.data.last_hour.failed}</div>
            <div className="muted">failed, last hour</div>
          </div>
          <div className="card">
            <div className="big">{stats.data.last_day.finished}</div>
            <div className="muted">finished, last 24 h ({stats.data.last_day.failed} failed)</div>
          </div>
          <div className="card">
            <div className="big">{stats.data.workers.online}</div>
            <div className="muted">
              workers online ({stats.data.workers.offline} offline, {stats.data.workers.lost} lost)
            </div>
          </div>
          <div className="card">
            <div className="big">{stats.data.traces}</div>
            <div className="muted">traces, {stats.data.tasks} tasks</div>
          </div>
        </section>
      )}
    </div>
  );
}
