/**
 * "Compare" on the trace page: this run against the previous run of the same root task, the
 * per-step median of its last runs, or a given trace (`GET /api/traces/:id/diff`). The choice is
 * in the URL (`?compare=previous|median|<trace id>`, `&compare_by=queue_wait`) so it can be shared.
 * `CompareToggle` goes in the header, `CompareBar` above the canvas (what was compared, the
 * legend, the biggest changes), `CompareMarks` around the graph (colours the task cards).
 */
import { queryOptions, useQuery } from "@tanstack/react-query";
import { useReactFlow } from "@xyflow/react";
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { TraceDiff, type StepDiff, type TraceSnapshot } from "../../../shared/api";
import { fetchJson } from "../api/client";
import { ago, dateTime, duration, encodeId, shortId, shortName } from "../format";
import { Link, navigate, useLocation } from "../router";
import { STATE_STYLES } from "../states";
import { CompareContext, marksOf, ratioText, signedDuration, type CompareMetric } from "./compare-marks";
import "./compare.css";

/** Graphs up to this many tasks are fitted again when the bar opens or closes. */
const FIT_AGAIN_BELOW = 100;

const traceDiffQuery = (traceId: string, against: string, version: string) =>
  queryOptions({
    // The diff changes as this trace runs: `version` (its state and size) refetches it then.
    queryKey: ["trace-diff", traceId, against, version] as const,
    queryFn: () =>
      fetchJson(`/api/traces/${encodeId(traceId)}/diff?against=${encodeURIComponent(against)}`, TraceDiff),
    placeholderData: (previous) => previous,
    retry: false,
    staleTime: 30_000,
  });

function setParam(key: string, value: string | null) {
  const next = new URLSearchParams(window.location.search);
  if (value === null) next.delete(key);
  else next.set(key, value);
  const qs = next.toString();
  navigate(`${window.location.pathname}${qs ? `?${qs}` : ""}`, true);
}

/** What Compare is set to in the URL: null when it is off. */
function useCompare(): { against: string | null; metric: CompareMetric } {
  const { search } = useLocation();
  return {
    against: search.get("compare") || null,
    metric: search.get("compare_by") === "queue_wait" ? "queue_wait" : "runtime",
  };
}

function useTraceDiff(snapshot: TraceSnapshot, against: string | null) {
  const s = snapshot.summary;
  return useQuery({
    ...traceDiffQuery(snapshot.trace_id, against ?? "", `${s.state}:${s.task_count}:${s.not_run_count ?? 0}`),
    enabled: against !== null,
  });
}

export function CompareToggle() {
  const { against } = useCompare();
  return (
    <button
      className={`compare-toggle${against ? " active" : ""}`}
      aria-pressed={against !== null}
      title="Compare this run with another run of the same root task: colours the graph by what changed"
      onClick={() => setParam("compare", against ? null : "previous")}
    >
      ⇄ Compare
    </button>
  );
}

/** Colours the graph's task cards by the diff while Compare is on. */
export function CompareMarks({ snapshot, children }: { snapshot: TraceSnapshot; children: ReactNode }) {
  const { against, metric } = useCompare();
  const q = useTraceDiff(snapshot, against);
  const data = against && q.data?.trace_id === snapshot.trace_id ? q.data : undefined;
  const marks = useMemo(() => marksOf(data, metric), [data, metric]);
  // The bar above the canvas takes room from it: a small graph is fitted again to stay in view.
  const flow = useReactFlow();
  const small = snapshot.nodes.length <= FIT_AGAIN_BELOW;
  const on = against !== null;
  useEffect(() => {
    if (!small) return;
    const t = setTimeout(() => void flow.fitView({ padding: 0.12, maxZoom: 1.15, duration: 200 }), 60);
    return () => clearTimeout(t);
  }, [on, small, flow]);
  return <CompareContext.Provider value={marks}>{children}</CompareContext.Provider>;
}

const LEGEND: [string, string][] = [
  ["slower-3", "≥3× slower"],
  ["slower-2", "≥1.5×"],
  ["slower-1", "slower"],
  ["same", "about the same"],
  ["faster-1", "faster"],
  ["faster-2", "≤⅔"],
  ["faster-3", "≤⅓"],
  ["failed", "newly failed"],
  ["not-run", "now not run"],
  ["added", "new step"],
];

function Against({ diff }: { diff: TraceDiff }) {
  const a = diff.against;
  const root = <b title={diff.root_name}>{shortName(diff.root_name)}</b>;
  if (a.mode === "median")
    return (
      <span>
        the per-step median of the last <b>{a.trace_ids.length}</b> finished{" "}
        {a.trace_ids.length === 1 ? "run" : "runs"} of {root}, started{" "}
        {a.started_from === a.started_to ? (
          dateTime(a.started_from)
        ) : (
          <>
            between {dateTime(a.started_from)} and {dateTime(a.started_to)}
          </>
        )}
      </span>
    );
  const other = a.trace_ids[0] ?? "";
  return (
    <span>
      {a.mode === "previous" ? <>the previous run of {root}: trace </> : <>trace </>}
      <Link to={`/traces/${encodeId(other)}`} className="mono" title={other} data-compared-trace={other}>
        {shortId(other)}
      </Link>
      , started {dateTime(a.started_from)} ({ago(a.started_from)})
    </span>
  );
}

function Measure({ m, what }: { m: StepDiff["runtime"]; what: string }) {
  if (m.then === null && m.now === null) return null;
  const tone = m.delta_ms === null || Math.abs(m.delta_ms) < 1 ? "" : m.delta_ms > 0 ? "worse" : "better";
  return (
    <span className="compare-measure" title={`${what}: then ${duration(m.then)}, now ${duration(m.now)}`}>
      {what} {duration(m.then)} → {duration(m.now)}
      {m.delta_ms !== null &&
        (tone ? (
          <b className={tone}>
            {" "}
            {signedDuration(m.delta_ms)}
            {m.ratio !== null && ` ${ratioText(m.ratio)}`}
          </b>
        ) : (
          " (same)"
        ))}
    </span>
  );
}

function Flags({ step }: { step: StepDiff }) {
  const flags: [string, string][] = [];
  if (step.newly_failed)
    flags.push([
      "failed",
      step.state_now === "FAILURE" ? "newly failed" : `now ${STATE_STYLES[step.state_now!].label}`,
    ]);
  if (step.newly_not_run) flags.push(["not-run", "now not run"]);
  if (step.newly_retried)
    flags.push(["retried", `retried ${step.retries.then ?? 0} → ${step.retries.now ?? 0}`]);
  if (step.added) flags.push(["added", "new step"]);
  if (step.missing) flags.push(["missing", "missing"]);
  if (!flags.length && step.state_then !== step.state_now && step.state_then && step.state_now)
    flags.push(["state", `${STATE_STYLES[step.state_then].label} → ${STATE_STYLES[step.state_now].label}`]);
  return (
    <>
      {flags.map(([kind, label]) => (
        <span key={kind} className={`compare-flag flag-${kind}`}>
          {label}
        </span>
      ))}
    </>
  );
}

function StepName({
  step,
  diff,
  onSelect,
}: {
  step: StepDiff;
  diff: TraceDiff;
  onSelect: (id: string) => void;
}) {
  const name = <span title={step.key}>{shortName(step.name)}</span>;
  if (step.task_id) {
    const id = step.task_id;
    return (
      <a
        href={`?task=${encodeId(id)}`}
        onClick={(e) => {
          e.preventDefault();
          onSelect(id);
        }}
      >
        {name}
      </a>
    );
  }
  // A missing step is not in this run: its task in the other run, when there is one run.
  const other = diff.against.mode === "median" ? null : diff.against.trace_ids[0];
  if (other && step.other_task_id)
    return (
      <Link
        to={`/traces/${encodeId(other)}?task=${encodeId(step.other_task_id)}`}
        title="open it in the other run"
      >
        {name}
      </Link>
    );
  return name;
}

/** A step key with each task name shortened as the cards show it (`app.add > chain:app.mul` → `add > chain:mul`). */
function shortKey(key: string): string {
  return key.replace(/[^\s:>[\]#]+/g, (name) => (/[A-Z]/.test(name[0] ?? "") ? name : shortName(name)));
}

export function CompareBar({
  snapshot,
  onSelect,
}: {
  snapshot: TraceSnapshot;
  onSelect: (id: string) => void;
}) {
  const { against, metric } = useCompare();
  const q = useTraceDiff(snapshot, against);
  const [traceInput, setTraceInput] = useState("");
  if (!against) return null;
  const mode = against === "previous" || against === "median" ? against : "trace";
  const diff = q.data?.trace_id === snapshot.trace_id ? q.data : undefined;
  const s = diff?.summary;
  const counts: [number, string][] = s
    ? [
        [s.newly_failed, "newly failed"],
        [s.newly_not_run, "now not run"],
        [s.newly_retried, "retried more"],
        [s.added, s.added === 1 ? "new step" : "new steps"],
        [s.missing, s.missing === 1 ? "missing step" : "missing steps"],
      ]
    : [];
  return (
    <section className="compare-bar" aria-label="Compare runs" data-compare-mode={mode}>
      <div className="compare-controls">
        <div className="tabs small" role="group" aria-label="Compare with">
          <button
            className={mode === "previous" ? "active" : ""}
            onClick={() => setParam("compare", "previous")}
          >
            previous run
          </button>
          <button className={mode === "median" ? "active" : ""} onClick={() => setParam("compare", "median")}>
            median of last 20
          </button>
        </div>
        <form
          className="compare-trace-form"
          onSubmit={(e) => {
            e.preventDefault();
            const id = traceInput.trim();
            if (id) setParam("compare", id);
          }}
        >
          <input
            aria-label="Trace id to compare with"
            placeholder="or a trace id…"
            value={traceInput || (mode === "trace" ? against : "")}
            onChange={(e) => setTraceInput(e.target.value)}
          />
          <button type="submit">Compare</button>
        </form>
        <label className="compare-metric">
          colour by{" "}
          <select
            value={metric}
            onChange={(e) => setParam("compare_by", e.target.value === "runtime" ? null : e.target.value)}
          >
            <option value="runtime">runtime</option>
            <option value="queue_wait">queue wait</option>
          </select>
        </label>
        <button className="close" onClick={() => setParam("compare", null)} title="Stop comparing">
          ×
        </button>
      </div>
      {q.isPending && <div className="muted">Comparing…</div>}
      {q.isError && (
        <div className="compare-error" role="alert">
          Cannot compare: {q.error.message}
          {mode !== "median" && ". Try the median of the last runs, or another trace id."}
        </div>
      )}
      {diff && s && (
        <div className="compare-body">
          <div className="compare-about">
            <p className="compare-against">
              Compared with <Against diff={diff} />.
            </p>
            <p>
              <Measure m={diff.duration} what="Whole trace" />
            </p>
            <p className="compare-counts">
              <b>{s.changed}</b> of {s.steps} steps changed
              {counts
                .filter(([n]) => n > 0)
                .map(([n, label]) => (
                  <span key={label} className="compare-count">
                    · <b>{n}</b> {label}
                  </span>
                ))}
            </p>
            {diff.truncated && (
              <p className="warn-line">A compared trace is very large: only its first tasks were compared.</p>
            )}
            <div className="compare-legend" aria-label="Compare legend">
              {LEGEND.map(([tone, label]) => (
                <span key={tone}>
                  <span className={`compare-swatch compare-${tone}`} /> {label}
                </span>
              ))}
              {s.missing > 0 && <span className="muted">missing steps are only in the list</span>}
            </div>
          </div>
          <div className="compare-changes">
            <h3>Biggest changes</h3>
            {s.biggest.length === 0 ? (
              <p className="muted">No step changed by more than a millisecond.</p>
            ) : (
              <ol>
                {s.biggest.map((step) => (
                  <li key={step.key} data-step-key={step.key} data-task-id={step.task_id ?? undefined}>
                    <StepName step={step} diff={diff} onSelect={onSelect} />
                    <span className="compare-key mono" title={step.key}>
                      {shortKey(step.key)}
                    </span>
                    <Flags step={step} />
                    <Measure m={step.runtime} what="run" />
                    <Measure m={step.queue_wait} what="wait" />
                  </li>
                ))}
              </ol>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
