/**
 * Webhooks (/webhooks): the configured endpoints (hosts only: a URL's path may hold a token; the
 * secret is never shown), the events sent, and the delivery log with each delivery's attempts,
 * last answer and next retry, and a Redeliver button.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { WebhookDelivery, WebhookDeliveryStatus } from "../../../shared/webhooks";
import { redeliver, webhookDeliveriesQuery, webhookSettingsQuery } from "../api/webhooks";
import { Boundary, RowBoundary } from "../components/Boundary";
import { ago, dateTime, encodeId, shortId, text } from "../format";
import { Link } from "../router";

const STATUS_COLORS: Record<WebhookDeliveryStatus, string> = {
  pending: "var(--st-retry)",
  succeeded: "var(--st-success)",
  failed: "var(--st-failure)",
};

function StatusBadge({ status }: { status: WebhookDeliveryStatus }) {
  return (
    <span className="state-badge" style={{ ["--state" as string]: STATUS_COLORS[status] }}>
      {status}
    </span>
  );
}

/** When the next attempt is due, as "in 3 min" (or "now" when overdue). */
function inTime(ts: number | null): string {
  if (ts === null) return "—";
  const s = ts - Date.now() / 1000;
  if (s <= 1) return "now";
  if (s < 60) return `in ${Math.round(s)} s`;
  if (s < 3600) return `in ${Math.round(s / 60)} min`;
  return `in ${Math.round(s / 3600)} h`;
}

function Settings() {
  const q = useQuery(webhookSettingsQuery());
  if (q.isPending) return <div className="loading">Loading the settings…</div>;
  if (q.isError)
    return <div className="error-box">Could not load the webhook settings: {q.error.message}</div>;
  const s = q.data;
  return (
    <section className="webhook-settings">
      {s.endpoints.length === 0 ? (
        <p className="muted">
          No endpoint is configured. Set <code>WEBHOOK_URLS</code> (comma-separated) and{" "}
          <code>WEBHOOK_SECRET</code> to have stemtrace post signed events when an anomaly opens or a trace
          fails (README, “Webhooks”).
        </p>
      ) : (
        <dl className="webhook-config">
          <dt>Endpoints</dt>
          <dd>
            {s.endpoints.map((e, i) => (
              <span key={i} className="mono endpoint" data-endpoint={e.host}>
                {e.host}
              </span>
            ))}
          </dd>
          <dt>Events</dt>
          <dd>
            {s.events.map((e) => (
              <span key={e} className="mono endpoint">
                {e}
              </span>
            ))}
          </dd>
          <dt>Signing secret</dt>
          <dd>{s.secret_set ? "set (WEBHOOK_SECRET)" : <strong>not set: deliveries wait</strong>}</dd>
        </dl>
      )}
      {s.problems.map((p) => (
        <div key={p} className="error-box webhook-problem">
          {p}
        </div>
      ))}
    </section>
  );
}

function DeliveryRow({ d }: { d: WebhookDelivery }) {
  const client = useQueryClient();
  const again = useMutation({
    mutationFn: () => redeliver(d.id),
    onSettled: () => client.invalidateQueries({ queryKey: ["webhooks", "deliveries"] }),
  });
  const answer = d.last_status !== null ? `HTTP ${d.last_status}` : null;
  // The error repeats the status ("HTTP 500: <body>"): show the receiver's words once.
  const detail =
    answer && d.last_error?.startsWith(answer)
      ? d.last_error.slice(answer.length).replace(/^: /, "")
      : d.last_error;
  return (
    <tr data-delivery={d.id} data-status={d.status}>
      <td>
        <StatusBadge status={d.status} />
      </td>
      <td className="mono">{d.type}</td>
      <td>
        {d.trace_id ? (
          <Link to={`/traces/${encodeId(d.trace_id)}`} className="mono" title={text(d.trace_id)}>
            {shortId(d.trace_id)}
          </Link>
        ) : (
          "—"
        )}
      </td>
      <td className="mono">{d.endpoint}</td>
      <td className="num">{d.attempts}</td>
      <td className="webhook-answer" title={d.last_error ?? undefined}>
        {answer && <span className="mono">{answer}</span>}
        {detail && <span className="muted small"> {detail}</span>}
        {!answer && !d.last_error && <span className="muted">{d.attempts === 0 ? "not sent yet" : "—"}</span>}
      </td>
      <td>{d.status === "pending" ? inTime(d.next_attempt_at) : "—"}</td>
      <td title={dateTime(d.created_at)}>{ago(d.created_at)}</td>
      <td>
        <button onClick={() => again.mutate()} disabled={again.isPending} title={`event ${d.event_id}`}>
          {again.isPending ? "Sending…" : "Redeliver"}
        </button>
        {again.isError && <div className="webhook-error small">{again.error.message}</div>}
      </td>
    </tr>
  );
}

const FILTERS: (WebhookDeliveryStatus | undefined)[] = [undefined, "pending", "succeeded", "failed"];

function Deliveries() {
  const [status, setStatus] = useState<WebhookDeliveryStatus | undefined>();
  const q = useQuery(webhookDeliveriesQuery(status));
  return (
    <section>
      <div className="toolbar webhook-toolbar">
        <h3>Deliveries</h3>
        <div className="tabs small">
          {FILTERS.map((f) => (
            <button key={f ?? "all"} className={f === status ? "active" : ""} onClick={() => setStatus(f)}>
              {f ?? "all"}
            </button>
          ))}
        </div>
      </div>
      {q.isPending ? (
        <div className="loading">Loading deliveries…</div>
      ) : q.isError ? (
        <div className="error-box">Could not load the delivery log: {q.error.message}</div>
      ) : q.data.deliveries.length === 0 ? (
        <p className="muted">No deliveries{status ? ` ${status}` : " yet"}.</p>
      ) : (
        <table className="grid webhook-log">
          <thead>
            <tr>
              <th>status</th>
              <th>event</th>
              <th>trace</th>
              <th>endpoint</th>
              <th className="num">attempts</th>
              <th>last answer</th>
              <th>next attempt</th>
              <th>created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {q.data.deliveries.map((d) => (
              <RowBoundary key={d.id} region={`delivery ${d.id}`} columns={9}>
                <DeliveryRow d={d} />
              </RowBoundary>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function WebhooksPage() {
  return (
    <div className="page">
      <h2>Webhooks</h2>
      <Boundary region="webhook settings">
        <Settings />
      </Boundary>
      <Boundary region="webhook deliveries">
        <Deliveries />
      </Boundary>
    </div>
  );
}
