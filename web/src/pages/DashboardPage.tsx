/** The dashboard (/dashboard): open anomalies first, then throughput, busiest and slowest names, workers. */
import { useQuery } from "@tanstack/react-query";
import { anomaliesQuery, statsQuery, workersQuery } from "../api/client";
import { AnomalyCard } from "../components/AnomalyCard";
import { Boundary } from "../components/Boundary";
import { NameTable } from "../components/NameTable";
import { ThroughputBars } from "../components/ThroughputBars";
import { WorkerStatusBadge } from "../components/WorkerStatusBadge";
import { ago, duration, hourMinute, text } from "../format";
import { Link } from "../router";

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
        <h2>Open anomalies {open.length > 0 && <span className="anomaly-badge">{open.length}</span>}</h2>
        {anomalies.isPending && <p className="loading">Checking for anomalies…</p>}
        {anomalies.isError && (
          <p className="error-box">Could not load anomalies: {anomalies.error.message}</p>
        )}
        {anomalies.data && open.length === 0 && (
          <p className="ok">Nothing is stuck, lost or unregistered right now.</p>
        )}
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
              <ThroughputBars
                buckets={stats.data.throughput.hour}
                label="Last hour (5 min buckets)"
                bucketLabel={clock}
              />
            </Boundary>
            <Boundary region="last 24 h">
              <ThroughputBars
                buckets={stats.data.throughput.day}
                label="Last 24 h (hourly)"
                bucketLabel={clock}
              />
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
              <NameTable
                title="Busiest task names (24 h)"
                rows={stats.data.busiest_names}
                value={(r) => `${r.runs.toLocaleString()} ${r.runs === 1 ? "run" : "runs"}`}
              />
            </Boundary>
            <Boundary region="slowest names">
              <NameTable
                title="Slowest task names by p95 (24 h)"
                rows={stats.data.slowest_names}
                value={(r) => duration(r.runtime_p95_ms)}
              />
            </Boundary>
            <Boundary region="longest queue waits">
              <NameTable
                title="Longest waits for a worker, p95 (24 h)"
                rows={stats.data.longest_queue_wait_names ?? []}
                value={(r) => `${duration(r.queue_wait_p95_ms)} queued · runs ${duration(r.runtime_p50_ms)}`}
              />
            </Boundary>
          </section>
        </>
      )}
      <section>
        <h2>
          Workers{" "}
          {stats.data && (
            <span className="muted small">
              {stats.data.workers.online} online · {stats.data.workers.offline} offline ·{" "}
              {stats.data.workers.lost} lost
            </span>
          )}
        </h2>
        {workers.data && workers.data.workers.length === 0 && (
          <p className="muted">
            No worker has reported yet: start one with the producer installed (`stemtrace.init(app)` in the
            app module).
          </p>
        )}
        <Boundary region="worker chips">
          <div className="worker-chips">
            {workers.data?.workers.map((w) => (
              <Link
                key={w.hostname}
                to="/workers"
                className="worker-chip"
                title={`last heartbeat ${ago(w.last_seen)}`}
              >
                <WorkerStatusBadge status={w.status} /> <span className="mono">{w.hostname}</span>{" "}
                <span className="muted small">{w.active.length ? `${w.active.length} running` : "idle"}</span>
              </Link>
            ))}
          </div>
        </Boundary>
      </section>
    </div>
  );
}
