/**
 * `GET /api/traces/:id/diff?against=<trace id>|previous|median` (issue 17, run diff): finds the
 * run(s) to compare with through the index, loads their snapshots from their TraceGraph objects,
 * and hands them to shared/diff.ts.
 *
 * - `previous`: the most recent trace that started before this one and whose root task has the
 *   same name;
 * - `median`: the per-step median over the last MEDIAN_RUNS finished runs of that root name
 *   (excluding this one);
 * - a trace id: that trace, which must have the same root task name.
 * Candidates come from the index's list (newest first, MAX_SCAN pages of LIST_PAGE at most).
 */
import type { Context } from "hono";
import type { TraceSnapshot, TraceSummary } from "../shared/api";
import { diffTraces } from "../shared/diff";
import { isTerminal } from "../shared/states";
import type { Env } from "../durable-objects/env";
import { indexBackend } from "../durable-objects/index-backend";
import { readTrace } from "./trace-objects";
import { HttpError } from "./errors";

/** How many runs the median is over. */
export const MEDIAN_RUNS = 20;
/** Index pages read at most to find them, of this many traces each: the search stays bounded. */
const MAX_SCAN = 5;
const LIST_PAGE = 200;
const TRACE_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

const index = indexBackend;

/** A trace's snapshot from the object that holds it, or null (an unknown id never creates an object). */
async function snapshotOf(env: Env, traceId: string): Promise<TraceSnapshot | null> {
  const json = await readTrace(env, traceId, (o) => o.snapshotJson(traceId));
  return json === null ? null : (JSON.parse(json) as TraceSnapshot);
}

const startOf = (s: TraceSummary) => s.started_at ?? s.updated_at;

/**
 * Runs of `rootName` other than `exclude`, newest first, that pass `keep`, until `want` are found
 * or MAX_SCAN pages were read. The list's name filter matches any task name containing the text,
 * so the root name is checked here.
 */
async function findRuns(
  env: Env,
  rootName: string,
  exclude: string,
  want: number,
  keep: (s: TraceSummary) => boolean,
  to?: number,
): Promise<TraceSummary[]> {
  const found: TraceSummary[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_SCAN && found.length < want; page++) {
    const list = await index(env).listTraces({ name: rootName, to, cursor, limit: LIST_PAGE });
    for (const s of list.traces)
      if (s.trace_id !== exclude && s.root_name === rootName && keep(s)) found.push(s);
    if (!list.next_cursor) break;
    cursor = list.next_cursor;
  }
  return found;
}

export async function traceDiff(c: Context<{ Bindings: Env }>): Promise<Response> {
  const traceId = c.req.param("traceId")!;
  const against = c.req.query("against") ?? "previous";
  if (against !== "previous" && against !== "median" && !TRACE_ID.test(against))
    throw new HttpError(
      400,
      "invalid_against",
      "against must be previous, median, or a trace id (letters, digits, _ . : - only)",
    );
  if (against === traceId)
    throw new HttpError(400, "invalid_against", "a trace cannot be compared with itself");

  const current = await snapshotOf(c.env, traceId);
  if (!current)
    throw new HttpError(
      404,
      "not_found",
      `no trace with id ${traceId} has been seen (it may not have been ingested yet, or was deleted by retention)`,
    );
  const rootName = current.summary.root_name;
  if (!rootName)
    throw new HttpError(
      422,
      "no_root_name",
      `the root task of trace ${traceId} has no name yet (none of its events named it): runs are matched by root task name`,
    );

  let others: TraceSnapshot[];
  if (against === "previous" || against === "median") {
    const start = startOf(current.summary);
    const runs =
      against === "previous"
        ? (await findRuns(c.env, rootName, traceId, 1, (s) => startOf(s) < start, start))
            // The list is newest first by when each trace was first seen; the start decides.
            .sort((a, b) => startOf(b) - startOf(a))
            .slice(0, 1)
        : (await findRuns(c.env, rootName, traceId, MEDIAN_RUNS, (s) => isTerminal(s.state))).slice(
            0,
            MEDIAN_RUNS,
          );
    // A run the index still lists may have just been deleted by retention: it is left out.
    others = (await Promise.all(runs.map((s) => snapshotOf(c.env, s.trace_id)))).filter(
      (s): s is TraceSnapshot => s !== null,
    );
    if (others.length === 0)
      throw new HttpError(
        404,
        "no_other_run",
        against === "previous"
          ? `no earlier run of ${rootName} than trace ${traceId} has been seen (among the latest ${MAX_SCAN * LIST_PAGE} traces with that name)`
          : `no other finished run of ${rootName} has been seen (among the latest ${MAX_SCAN * LIST_PAGE} traces with that name)`,
      );
  } else {
    const other = await snapshotOf(c.env, against);
    if (!other)
      throw new HttpError(
        404,
        "not_found",
        `no trace with id ${against} (the one to compare with) has been seen (it may not have been ingested yet, or was deleted by retention)`,
      );
    if (other.summary.root_name !== rootName)
      throw new HttpError(
        422,
        "different_root",
        `trace ${against} is a run of ${other.summary.root_name ?? "an unnamed task"}, not of ${rootName}: only runs of the same root task can be compared`,
      );
    others = [other];
  }
  return c.json(
    diffTraces(current, others, against === "previous" || against === "median" ? against : "trace"),
    200,
  );
}
