/** Task detail: identity, attempts with their execution timeline, payload, exception, relatives. */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { AttemptDetail, TaskDetail, TaskLink } from "../../../shared/api";
import { ApiError, taskQuery, traceAnomaliesQuery } from "../api/client";
import { AnomalyCard } from "./AnomalyCard";
import { dateTime, duration, encodeId, shortId, shortName, time } from "../format";
import { Link } from "../router";
import { Json } from "./Json";
import { StateBadge } from "./StateBadge";
import { Boundary } from "./Boundary";

function CopyId({ id }: { id: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      className="copy"
      onClick={() => {
        void navigator.clipboard?.writeText(id).then(() => {
          setCopied(true);
          setTimeout(() => setCopied(false), 1200);
        });
      }}
      title="Copy the task id"
    >
      <span className="mono">{id}</span> <span className="muted">{copied ? "✓ copied" : "copy"}</span>
    </button>
  );
}

function AttemptTimeline({ a }: { a: AttemptDetail }) {
  const points = [
    ["queued", a.published_at],
    ["received", a.received_at],
    ["started", a.started_at],
    ["finished", a.finished_at],
  ] as const;
  const known = points.filter(([, t]) => t !== null) as [string, number][];
  const t0 = known[0]?.[1] ?? 0;
  const span = Math.max(0.001, (known[known.length - 1]?.[1] ?? t0) - t0);
  return (
    <div className="attempt-timeline">
      <div className="attempt-bar">
        {known.map(([label, t]) => (
          <span
            key={label}
            className={`tick tick-${label}`}
            style={{ left: `${((t - t0) / span) * 100}%` }}
            title={`${label} ${time(t)}`}
          />
        ))}
      </div>
      <div className="attempt-segments" data-segments>
        {/* Labelled segments: a retry's countdown is waiting, not running (its own runtime is its run). */}
        {a.started_at !== null && (a.published_at ?? a.received_at) !== null && (
          <span>
            <span className="muted">{a.eta && a.retries > 0 ? "waited (retry countdown)" : "queued"}</span>{" "}
            {duration((a.started_at - (a.published_at ?? a.received_at)!) * 1000)}
          </span>
        )}
        {a.started_at !== null && a.finished_at !== null && (
          <span>
            <span className="muted">running</span> {duration((a.finished_at - a.started_at) * 1000)}
          </span>
        )}
      </div>
      <div className="attempt-points">
        {points.map(([label, t]) => (
          <span key={label}>
            <span className="muted">{label}</span> {time(t)}
          </span>
        ))}
        {a.eta && (
          <span title={a.eta}>
            <span className="muted">eta</span> {time(Date.parse(a.eta) / 1000)}
          </span>
        )}
      </div>
    </div>
  );
}

/** The task's anomalies (open first, then its history), fetched only when it has an open one. */
function TaskAnomalies({ traceId, taskId, open }: { traceId: string; taskId: string; open: boolean }) {
  const q = useQuery({ ...traceAnomaliesQuery(traceId), enabled: open });
  const mine = q.data?.anomalies.filter((a) => a.task_id === taskId) ?? [];
  if (!open || mine.length === 0) return null;
  return (
    <section className="task-anomalies">
      {mine.map((a) => (
        <AnomalyCard key={a.id} a={a} />
      ))}
    </section>
  );
}

function Relative({ link, traceId }: { link: TaskLink; traceId?: string }) {
  if (link.container && traceId)
    // A chord callback's origin: its chord (a group of the graph, not a task of its own).
    return (
      <li>
        <Link to={`/traces/${encodeId(traceId)}`}>{link.name}</Link>{" "}
        <span className="mono muted">{shortId(link.task_id)}</span> <StateBadge state={link.state} />
        {link.kind && <span className="edge-kind"> {link.kind}</span>}
      </li>
    );
  return (
    <li>
      <Link to={`/tasks/${encodeId(link.task_id)}`}>{shortName(link.name)}</Link>{" "}
      <span className="mono muted">{shortId(link.task_id)}</span> <StateBadge state={link.state} />
      {link.kind && <span className="edge-kind"> {link.kind}</span>}
    </li>
  );
}

/** The first children, then a button for the rest: a fan-out root can have thousands. */
function Children({ links }: { links: TaskLink[] }) {
  const [all, setAll] = useState(false);
  const shown = all ? links : links.slice(0, 30);
  if (links.length === 0) return <p className="muted">none</p>;
  return (
    <>
      <ul className="relatives">
        {shown.map((c) => (
          <Relative key={c.task_id} link={c} />
        ))}
      </ul>
      {shown.length < links.length && (
        <button className="link-button" onClick={() => setAll(true)}>
          show all {links.length.toLocaleString()}
        </button>
      )}
    </>
  );
}

export function TaskDetailBody({ detail }: { detail: TaskDetail }) {
  const t = detail.task;
  return (
    <div className="task-detail" data-task-id={t.id}>
      <h2>
        {t.name ?? "(unknown task)"} <StateBadge state={t.state} reason={t.state_reason} />
      </h2>
      <CopyId id={t.id} />
      {t.state_reason && <p className="reason">{t.state_reason}</p>}
      <Boundary region="task anomalies">
        <TaskAnomalies traceId={detail.trace_id} taskId={t.id} open={t.anomaly !== null} />
      </Boundary>
      <Boundary region="task facts">
        <dl className="facts">
          <dt>trace</dt>
          <dd>
            <Link to={`/traces/${encodeId(detail.trace_id)}`} className="mono">
              {shortId(detail.trace_id)}
            </Link>
          </dd>
          <dt>worker</dt>
          <dd>{t.worker ?? "—"}</dd>
          <dt>queue</dt>
          <dd>{t.queue ?? "—"}</dd>
          <dt>published</dt>
          <dd>{dateTime(t.published_at)}</dd>
          <dt>runtime</dt>
          <dd>{duration(t.runtime_ms)}</dd>
          <dt>retries</dt>
          <dd>{t.retries}</dd>
          {detail.names.length > 1 && (
            <>
              <dt>names</dt>
              <dd>{detail.names.join(" → ")}</dd>
            </>
          )}
        </dl>
      </Boundary>
      {detail.exception && (
        <Boundary region="exception">
          <section>
            <h3>Exception</h3>
            <p className="exception">
              <strong>{detail.exception.type}</strong>: {detail.exception.message}
            </p>
            {detail.traceback && <pre className="traceback">{detail.traceback}</pre>}
          </section>
        </Boundary>
      )}
      <section>
        <h3>Attempts ({detail.attempts.length})</h3>
        {detail.attempts.length === 0 &&
          (t.state === "NOT_RUN" ? (
            <p className="muted">
              Never ran and never will: it was announced by another task's message (a chain step or a chord
              callback), and what had to come first did not succeed.
            </p>
          ) : (
            <p className="muted">
              No attempt yet: this task was announced by another task and has not been published.
            </p>
          ))}
        {detail.attempts.map((a) => (
          <Boundary key={`${a.retries}:${a.delivery}`} region={`attempt #${a.retries}`}>
            <div className="attempt">
              <div className="attempt-head">
                <span>
                  #{a.retries}
                  {a.delivery ? ` (redelivery ${a.delivery})` : ""}
                </span>{" "}
                <StateBadge state={a.state} />
                <span className="muted">
                  {a.worker ?? "—"}
                  {a.pid ? ` pid ${a.pid}` : ""}
                </span>
                <span className="muted">{duration(a.runtime_ms)}</span>
              </div>
              <AttemptTimeline a={a} />
              {a.retry_reason && <p className="muted">retry: {a.retry_reason}</p>}
              {a.exception && a.state !== "FAILURE" && (
                <p className="muted">
                  {a.exception.type}: {a.exception.message}
                </p>
              )}
            </div>
          </Boundary>
        ))}
      </section>
      <section>
        <h3>Arguments</h3>
        <Boundary region="arguments">
          <Json value={{ args: detail.args, kwargs: detail.kwargs }} />
        </Boundary>
      </section>
      {t.state === "SUCCESS" && (
        <section>
          <h3>Result</h3>
          <Boundary region="result">
            <Json value={detail.result} />
          </Boundary>
        </section>
      )}
      <Boundary region="parent and children">
        <section>
          <h3>Parent</h3>
          {detail.parent ? (
            <ul className="relatives">
              <Relative link={detail.parent} traceId={detail.trace_id} />
            </ul>
          ) : (
            <p className="muted">none (a root task)</p>
          )}
          <h3>Children ({detail.children.length.toLocaleString()})</h3>
          <Children links={detail.children} />
        </section>
      </Boundary>
      <section>
        <h3>Events ({detail.events.length})</h3>
        <Boundary region="events">
          <table className="events">
            <tbody>
              {detail.events.map((e, i) => (
                <tr key={i}>
                  <td className="mono">{time(e.ts)}</td>
                  <td>{e.type}</td>
                  <td className="muted">#{e.retries ?? 0}</td>
                  <td className="muted">
                    {e.host ?? "client"}
                    {e.pid ? ` · ${e.pid}` : ""}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Boundary>
      </section>
    </div>
  );
}

export function TaskDetailLoader({ taskId }: { taskId: string }) {
  const q = useQuery(taskQuery(taskId));
  if (q.isPending) return <div className="loading">Loading task {shortId(taskId)}…</div>;
  if (q.isError)
    return (
      <div className="error-box" data-task-error>
        <h3>Task {shortId(taskId)} is not available</h3>
        <p>{q.error.message}</p>
        {q.error instanceof ApiError && q.error.status === 404 ? (
          <p>
            No trace holds this id. If the task was sent a moment ago its events may still be on their way (
            <button onClick={() => void q.refetch()}>try again</button>); it may be older than the retention
            period; or the id may be mistyped — <Link to={`/?q=${encodeId(taskId)}`}>search for it</Link> or
            go <Link to="/">back to the traces</Link>.
          </p>
        ) : (
          <p>
            <button onClick={() => void q.refetch()}>Try again</button> or go{" "}
            <Link to="/">back to the traces</Link>.
          </p>
        )}
      </div>
    );
  return <TaskDetailBody detail={q.data} />;
}
