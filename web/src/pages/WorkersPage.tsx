/** Workers (/workers): one row per worker with its status, pool, queues, active tasks and drops. */
import { useQuery } from "@tanstack/react-query";
import { workersQuery } from "../api/client";
import { Boundary, RowBoundary } from "../components/Boundary";
import { WorkerStatusBadge } from "../components/WorkerStatusBadge";
import { ago, encodeId, shortId, text } from "../format";
import { Link } from "../router";

export function WorkersPage() {
  const q = useQuery(workersQuery());
  if (q.isPending) return <div className="loading page">Loading workers…</div>;
  if (q.isError) return <div className="error-box page">Could not load workers: {q.error.message}</div>;
  if (q.data.workers.length === 0)
    return (
      <div className="empty page">
        <h2>No worker has reported yet</h2>
        <p>
          Workers appear here when they start with the producer installed (`stemtrace.init(app)` in the app
          module).
        </p>
      </div>
    );
  const online = q.data.workers.filter((w) => w.status === "ONLINE").length;
  return (
    <div className="page">
      <h2>
        Workers{" "}
        <span className="muted small">
          {online} online of {q.data.workers.length}
        </span>
      </h2>
      <Boundary region="worker table">
        <table className="grid">
          <thead>
            <tr>
              <th>status</th>
              <th>worker</th>
              <th className="num">pid</th>
              <th>last heartbeat</th>
              <th>pool</th>
              <th className="num">concurrency</th>
              <th>queues</th>
              <th>active tasks</th>
              <th>registered tasks</th>
              <th className="num">sessions</th>
              <th
                className="num"
                title="events the producer processes on this worker reported lost (full buffer, server rejections, exit)"
              >
                dropped
              </th>
            </tr>
          </thead>
          <tbody>
            {q.data.workers.map((w) => (
              <RowBoundary key={w.hostname} region={`worker ${text(w.hostname)}`} columns={11}>
                <tr data-worker={w.hostname}>
                  <td>
                    <WorkerStatusBadge status={w.status} />
                  </td>
                  <td className="mono">{w.hostname}</td>
                  <td className="num mono">{w.pid ?? "—"}</td>
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
                  <td data-registered={w.registered.length}>
                    {w.registered.length === 0 ? (
                      <span className="muted">none reported</span>
                    ) : (
                      <details>
                        <summary>
                          {w.registered.length} {w.registered.length === 1 ? "task" : "tasks"}
                        </summary>
                        <ul className="registered-names">
                          {w.registered.map((r) => (
                            <li
                              key={r.name}
                              className="mono small"
                              title={[r.signature, r.doc].filter(Boolean).join("\n") || undefined}
                            >
                              {r.name}
                            </li>
                          ))}
                        </ul>
                      </details>
                    )}
                  </td>
                  <td className="num">{w.sessions}</td>
                  <td
                    className={`num${(w.dropped ?? 0) > 0 ? " dropped-warn" : ""}`}
                    title={
                      (w.dropped ?? 0) > 0
                        ? "events lost by this worker's producer: see /api/health for the reasons"
                        : undefined
                    }
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
