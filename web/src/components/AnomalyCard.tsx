/** One anomaly as a person reads it: what, which task, since when, why, and the likely fix. */
import type { Anomaly, AnomalyKind } from "../../../shared/api";
import { ago, encodeId, shortId, shortName } from "../format";
import { Link } from "../router";

export const ANOMALY_LABEL: Record<AnomalyKind, { label: string; icon: string }> = {
  unregistered: { label: "Unregistered", icon: "?" },
  stuck_pending: { label: "Stuck pending", icon: "○" },
  stuck_received: { label: "Stuck received", icon: "◌" },
  stuck_started: { label: "Running too long", icon: "▶" },
  interrupted: { label: "Interrupted", icon: "⚡" },
  lost: { label: "Lost", icon: "☁" },
  chord_never_fired: { label: "Chord never fired", icon: "⊖" },
  chain_stopped: { label: "Chain stopped", icon: "⊖" },
};

export function anomalyLabel(kind: AnomalyKind): string {
  const l = ANOMALY_LABEL[kind] ?? { label: String(kind), icon: "!" };
  return `${l.icon} ${l.label}`;
}

export function AnomalyCard({ a }: { a: Anomaly }) {
  return (
    <div
      className={`anomaly${a.resolved_at !== null ? " resolved" : ""}`}
      data-anomaly={a.kind}
      data-task={a.task_id}
    >
      <strong>{anomalyLabel(a.kind)}</strong>{" "}
      <Link to={`/traces/${encodeId(a.trace_id)}?task=${encodeId(a.task_id)}`}>
        {shortName(a.task_name)} <span className="mono">{shortId(a.task_id)}</span>
      </Link>{" "}
      <span className="muted">
        since {ago(a.since)}
        {a.resolved_at !== null && ` · resolved ${ago(a.resolved_at)}`}
      </span>
      <p>{a.explanation}</p>
      {a.resolved_at === null && (
        <p className="muted">
          <span className="fix-label">What to do:</span> {a.fix}
        </p>
      )}
    </div>
  );
}
