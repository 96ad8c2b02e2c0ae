/** The task registry (/registry): every task name with its status, runs, failure rate and runtimes. */
import { useQuery } from "@tanstack/react-query";
import { registryQuery } from "../api/client";
import { Boundary, RowBoundary } from "../components/Boundary";
import { ago, duration, encodeId, percent, shortName, text } from "../format";
import { Link } from "../router";
import { REGISTRY_STATUS_STYLES } from "../states";

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
            const { label, color } = REGISTRY_STATUS_STYLES[t.status] ?? { label: "?", color: "gray" };
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
