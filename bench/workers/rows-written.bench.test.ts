/**
 * SQLite rows written per Celery task, all objects included (trace objects, the index, the fleet):
 * what Cloudflare bills (every index entry and every setAlarm() counts, see durable-objects/sql.ts).
 *
 * Run (no npm needed), from the repository root:
 *
 *   node_modules/.bin/node node_modules/vitest/vitest.mjs run --config bench/workers/rows.vitest.config.ts
 *
 * Environment (all optional):
 *   ROWS_OUT=bench/results/rows-written.json   where the reporter (rows-reporter.ts, in Node) writes the results
 *   ROWS_RATES=200,20          standalone-task rates (tasks/s), one workload each
 *   ROWS_SECONDS=10            how long each standalone workload publishes
 *   ROWS_WORKFLOWS=40          50-task workflows (root → group of 48 with a chord callback; 0: none) ...
 *   ROWS_WORKFLOW_SECONDS=10   ... spread over this many seconds
 *   ROWS_SETTLE_S=5            real seconds waited after each workload (coalesced reports, alarms)
 *   TRACE_SHARDS=16            passed to the Worker as a binding when set (sharded trace objects)
 *   FLUSH_INTERVAL_S=1         likewise (how often a shard writes task rows and reports)
 *
 * Prints one `BENCH {json}` line per workload. Each workload runs in REAL time, posted through the
 * Worker (`POST /v1/events`), so the objects' own ~1 s coalescing timers and alarms fire as in
 * production. A Celery prefork worker's events come from three processes, each flushing a batch
 * every 0.5 s: the client (`published`), the worker's main process (`received`) and the pool child
 * (`started`, `succeeded`, `postrun`, and what a running task publishes). A task published in window
 * k is received in window k+1 and runs in window k+2; each producer flushes a window's batch at
 * its end (the three with different phases). Event timestamps are those wall-clock times.
 * A producer that falls behind (the Worker answers slower than 0.5 s) sends everything queued in
 * its next post, as the Python sender does: then the timing, and so the row counts, are not those
 * of the nominal rate. `post_late_ms` says how late batches went out; trust a run whose p90 is
 * well under a second.
 *
 * Every workload uses fresh ids and is measured as the difference of storageStats() summed over
 * every object that may hold its traces, the index and the fleet, before and after (after waiting
 * ROWS_SETTLE_S). The counters live in memory since the object started, so rows.vitest.config.ts
 * keeps every object from being evicted (workerd evicts after 10 s idle, production after 70-140 s);
 * `objects_restarted` counts objects whose counters still went down (their counts are lost).
 * Not counted: schema migrations of a new object (migrate() runs outside the metered helper;
 * 5 rows for a TraceGraph at 51e1ab4).
 */
import { env, exports } from "cloudflare:workers";
import { shardCount, traceObjectName } from "../../durable-objects/shards";
import { expect, it } from "vitest";
import type { TaskEvent } from "../../shared/wire";

/** The trace objects that hold these trace keys in the configured layout (shards, or one per trace). */
function traceObjectNames(traceKeys: string[]): string[] {
  const shards = shardCount(env);
  return [...new Set(traceKeys.map((k) => traceObjectName(k, shards)))];
}

const INDEX_NAME = "global";
const FLEET_NAME = "global";
const WINDOW_S = 0.5;
const HOST = "bench@host";
const PID = { client: 4100, worker: 4200, child: 4300 } as const;
type Producer = keyof typeof PID;
/** Each process flushes on its own 0.5 s timer: this much after a window's end. */
const PHASE_S: Record<Producer, number> = { client: 0.0, worker: 0.15, child: 0.3 };

const vars = env as unknown as Record<string, string | undefined>;
const params = JSON.parse(vars.ROWS_BENCH_PARAMS ?? "{}") as {
  rates?: number[];
  seconds?: number;
  workflows?: number;
  workflow_seconds?: number;
  settle_s?: number;
};
const RATES = params.rates ?? [200, 20];
const SECONDS = params.seconds ?? 10;
const WORKFLOWS = params.workflows ?? 40;
const WORKFLOW_SECONDS = params.workflow_seconds ?? 10;
const SETTLE_S = params.settle_s ?? 5;
const SHARDS = vars.TRACE_SHARDS ?? null;

function report(values: Record<string, unknown>) {
  console.log(`BENCH ${JSON.stringify(values)}`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
const nowS = () => Date.now() / 1000;

// ---- the events, as each producer process sends them ----

/** One planned batch: a producer's events of one 0.5 s window. */
interface Plan {
  batches: Map<string, { producer: Producer; window: number; events: TaskEvent[] }>;
  traceKeys: Set<string>;
  tasks: number;
}

const seqs: Record<Producer, number> = { client: 0, worker: 0, child: 0 };

function newPlan(): Plan {
  return { batches: new Map(), traceKeys: new Set(), tasks: 0 };
}

function emit(
  plan: Plan,
  producer: Producer,
  window: number,
  event: Omit<TaskEvent, "v" | "kind" | "seq" | "host" | "pid">,
) {
  const key = `${producer}:${window}`;
  let batch = plan.batches.get(key);
  if (!batch) plan.batches.set(key, (batch = { producer, window, events: [] }));
  batch.events.push({
    v: 1,
    kind: "task",
    seq: ++seqs[producer],
    host: producer === "client" ? null : HOST,
    pid: PID[producer],
    ...event,
  } as TaskEvent);
  plan.traceKeys.add(event.trace_id ?? event.root_id ?? event.task_id);
}

interface TaskSpec {
  task_id: string;
  name: string;
  trace_id: string;
  root_id: string;
  /** the message's links (published and received carry them) */
  links?: Partial<
    Pick<
      TaskEvent,
      | "parent_id"
      | "group_id"
      | "group_index"
      | "chord_callback_id"
      | "chord_callback_name"
      | "publisher_task_id"
    >
  >;
  args: unknown[];
}

function published(plan: Plan, producer: Producer, window: number, t: TaskSpec, ts: number) {
  plan.tasks++;
  const { publisher_task_id, ...links } = t.links ?? {};
  emit(plan, producer, window, {
    id: `${t.task_id}-pub`,
    type: "published",
    ts,
    task_id: t.task_id,
    name: t.name,
    trace_id: t.trace_id,
    root_id: t.root_id,
    parent_id: null,
    retries: 0,
    queue: "celery",
    args: t.args,
    kwargs: {},
    ...links,
    ...(publisher_task_id ? { publisher_task_id } : {}),
  });
}

function received(plan: Plan, window: number, t: TaskSpec, ts: number) {
  const { publisher_task_id: _p, ...links } = t.links ?? {};
  emit(plan, "worker", window, {
    id: `${t.task_id}-rcv`,
    type: "received",
    ts,
    task_id: t.task_id,
    name: t.name,
    trace_id: t.trace_id,
    root_id: t.root_id,
    retries: 0,
    queue: "celery",
    ...links,
  });
}

const base = (t: TaskSpec) => ({
  task_id: t.task_id,
  name: t.name,
  trace_id: t.trace_id,
  retries: 0,
  queue: "celery",
});

function started(plan: Plan, window: number, t: TaskSpec, ts: number) {
  emit(plan, "child", window, { id: `${t.task_id}-sta`, type: "started", ts, ...base(t) });
}

function finished(plan: Plan, window: number, t: TaskSpec, ts: number, runtimeMs: number) {
  emit(plan, "child", window, {
    id: `${t.task_id}-suc`,
    type: "succeeded",
    ts,
    ...base(t),
    result: 1,
    state: "SUCCESS",
    runtime_ms: runtimeMs,
  });
  emit(plan, "child", window, {
    id: `${t.task_id}-pst`,
    type: "postrun",
    ts: ts + 0.0002,
    ...base(t),
    state: "SUCCESS",
    runtime_ms: runtimeMs,
  });
}

/** Independent `.delay()` tasks at `rate`/s for `seconds`: one trace each (trace = root = task id). */
function standalonePlan(prefix: string, t0: number, rate: number, seconds: number): Plan {
  const plan = newPlan();
  const perWindow = Math.round(rate * WINDOW_S);
  const windows = Math.round(seconds / WINDOW_S);
  for (let w = 0; w < windows; w++)
    for (let j = 0; j < perWindow; j++) {
      const id = `${prefix}-t${w}-${j}`;
      const t: TaskSpec = {
        task_id: id,
        name: `app.job${(w * perWindow + j) % 5}`,
        trace_id: id,
        root_id: id,
        args: [j],
      };
      const tp = t0 + w * WINDOW_S + ((j + 0.5) / perWindow) * 0.8 * WINDOW_S; // published within window w
      published(plan, "client", w, t, tp);
      received(plan, w + 1, t, tp + WINDOW_S);
      started(plan, w + 2, t, tp + 2 * WINDOW_S);
      finished(plan, w + 2, t, tp + 2 * WINDOW_S + 0.002, 2);
    }
  return plan;
}

const GROUP_SIZE = 48;

/**
 * Workflows of 50 tasks, one trace each (trace key = the group id, as for 07_chord): a root task
 * (sent by the client) that, running in the pool child, publishes a group of 48 members with a
 * chord callback; the last member to finish publishes the callback. Windows: root published w,
 * received w+1, runs w+2 (publishing the members); members received w+3, run w+4 (the last
 * publishing the callback); callback received w+5, runs w+6.
 */
function workflowPlan(prefix: string, t0: number, workflows: number, seconds: number): Plan {
  const plan = newPlan();
  const windows = Math.max(1, Math.round(seconds / WINDOW_S));
  const perWindow = Math.ceil(workflows / windows);
  for (let n = 0; n < workflows; n++) {
    const w = Math.floor(n / perWindow);
    const f = (((n % perWindow) + 0.5) / perWindow) * 0.7 * WINDOW_S; // offset within each window
    const at = (stage: number, dt = 0) => t0 + (w + stage) * WINDOW_S + f + dt;
    const wf = `${prefix}-w${n}`;
    const group = `${wf}-group`;
    const rootId = `${wf}-root`;
    const callbackId = `${wf}-callback`;
    const root: TaskSpec = {
      task_id: rootId,
      name: "app.fanout",
      trace_id: group,
      root_id: rootId,
      args: [n],
    };
    const members: TaskSpec[] = Array.from({ length: GROUP_SIZE }, (_, k) => ({
      task_id: `${wf}-m${k}`,
      name: "app.part",
      trace_id: group,
      root_id: rootId,
      args: [k],
      links: {
        parent_id: rootId,
        publisher_task_id: rootId,
        group_id: group,
        group_index: k,
        chord_callback_id: callbackId,
        chord_callback_name: "app.collect",
      },
    }));
    const last = members[GROUP_SIZE - 1]!;
    const callback: TaskSpec = {
      task_id: callbackId,
      name: "app.collect",
      trace_id: group,
      root_id: rootId,
      args: [[]],
      links: { parent_id: last.task_id, publisher_task_id: last.task_id },
    };
    published(plan, "client", w, root, at(0));
    received(plan, w + 1, root, at(1));
    started(plan, w + 2, root, at(2));
    members.forEach((m, k) => published(plan, "child", w + 2, m, at(2, 0.001 * (k + 1))));
    finished(plan, w + 2, root, at(2, 0.06), 60);
    members.forEach((m, k) => received(plan, w + 3, m, at(3, 0.0005 * k)));
    members.forEach((m, k) => {
      started(plan, w + 4, m, at(4, 0.001 * k));
      if (m === last) published(plan, "child", w + 4, callback, at(4, 0.001 * k + 0.0004));
      finished(plan, w + 4, m, at(4, 0.001 * k + 0.0005), 0.5);
    });
    received(plan, w + 5, callback, at(5));
    started(plan, w + 6, callback, at(6));
    finished(plan, w + 6, callback, at(6, 0.002), 2);
  }
  return plan;
}

// ---- posting in real time ----

async function post(events: TaskEvent[]): Promise<number> {
  let accepted = 0;
  for (let i = 0; i < events.length; i += 1000) {
    const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: events.slice(i, i + 1000) }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { accepted: number; duplicates: number; rejected: unknown[] };
    expect(body.rejected).toEqual([]);
    accepted += body.accepted;
  }
  return accepted;
}

const quantile = (xs: number[], q: number) =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]! : 0;

/**
 * Each producer is one sender thread: at each flush it posts everything that is due (on time that
 * is its window's batch; when behind, as the Python sender does, all that queued up meanwhile).
 */
async function play(plan: Plan, t0: number) {
  const late: number[] = [];
  const took: number[] = [];
  let accepted = 0;
  let posts = 0;
  const sender = async (producer: Producer) => {
    const queue = [...plan.batches.values()]
      .filter((b) => b.producer === producer)
      .map((b) => ({ at: t0 + (b.window + 1) * WINDOW_S + PHASE_S[producer], events: b.events }))
      .sort((a, b) => a.at - b.at);
    for (let i = 0; i < queue.length;) {
      await sleep((queue[i]!.at - nowS()) * 1000);
      const start = nowS();
      const due: TaskEvent[] = [];
      for (; i < queue.length && queue[i]!.at <= start + 0.001; i++) {
        late.push((start - queue[i]!.at) * 1000);
        due.push(...queue[i]!.events);
      }
      accepted += await post(due);
      took.push((nowS() - start) * 1000);
      posts += Math.ceil(due.length / 1000);
    }
  };
  await Promise.all((Object.keys(PID) as Producer[]).map(sender));
  return {
    accepted,
    posts,
    post_late_ms: {
      p50: Math.round(quantile(late, 0.5)),
      p90: Math.round(quantile(late, 0.9)),
      max: Math.round(Math.max(0, ...late)),
    },
    post_ms: {
      p50: Math.round(quantile(took, 0.5)),
      p90: Math.round(quantile(took, 0.9)),
      max: Math.round(Math.max(0, ...took)),
    },
  };
}

// ---- the meter ----

interface Meter {
  rows_written: number;
  rows_read: number;
  statements: number;
  /** SQLite file size (storageStats' db_bytes): its growth over a workload is what the tasks store. */
  db_bytes?: number;
  /**
   * Optional, from an instrumented sql.ts only (never in the product): the same counts per
   * statement text, to attribute rows to statements. Summed and reported per object kind when present.
   */
  by_statement?: Record<string, { rows_written: number; rows_read: number; statements: number }>;
}
const ZERO: Meter = { rows_written: 0, rows_read: 0, statements: 0 };
const add = (a: Meter, b: Meter): Meter => ({
  rows_written: a.rows_written + b.rows_written,
  rows_read: a.rows_read + b.rows_read,
  statements: a.statements + b.statements,
  db_bytes: (a.db_bytes ?? 0) + (b.db_bytes ?? 0),
});
const sub = (a: Meter, b: Meter): Meter => ({
  rows_written: a.rows_written - b.rows_written,
  rows_read: a.rows_read - b.rows_read,
  statements: a.statements - b.statements,
  db_bytes: (a.db_bytes ?? 0) - (b.db_bytes ?? 0),
});

/** Per-statement counts of `after` minus `before`, summed over objects (instrumented builds only). */
function statementDelta(after: Meter[], before: Meter[]): Map<string, Meter> {
  const out = new Map<string, Meter>();
  const fold = (m: Meter | undefined, sign: number) => {
    for (const [text, c] of Object.entries(m?.by_statement ?? {})) {
      const prev = out.get(text) ?? ZERO;
      out.set(
        text,
        add(prev, {
          rows_written: sign * c.rows_written,
          rows_read: sign * c.rows_read,
          statements: sign * c.statements,
        }),
      );
    }
  };
  after.forEach((m) => fold(m, 1));
  before.forEach((m) => fold(m, -1));
  return out;
}

/** The statements that wrote the most rows, per task. */
function topStatements(delta: Map<string, Meter>, tasks: number, limit = 12) {
  return [...delta]
    .filter(([, m]) => m.rows_written || m.rows_read)
    .sort(([, a], [, b]) => b.rows_written - a.rows_written || b.rows_read - a.rows_read)
    .slice(0, limit)
    .map(([statement, m]) => ({
      statement,
      rows_written_per_task: per(m.rows_written, tasks),
      rows_read_per_task: per(m.rows_read, tasks),
      statements_per_task: per(m.statements, tasks),
    }));
}

async function traceObjectStats(names: string[]): Promise<Meter[]> {
  const out: Meter[] = [];
  for (let i = 0; i < names.length; i += 100)
    out.push(
      ...(await Promise.all(names.slice(i, i + 100).map((n) => env.TRACE_GRAPH.getByName(n).storageStats()))),
    );
  return out;
}

/** Every object's counters: the trace objects (one entry each), the index and the fleet. */
async function meterAll(traceObjects: string[]): Promise<{ trace: Meter[]; index: Meter; fleet: Meter }> {
  const [trace, index, fleet] = await Promise.all([
    traceObjectStats(traceObjects),
    env.INDEX.getByName(INDEX_NAME).storageStats(),
    env.FLEET.getByName(FLEET_NAME).storageStats(),
  ]);
  return { trace, index, fleet };
}

/** A counter that went down means the object started again meanwhile (its counts are lost). */
const restarted = (d: Meter) => d.rows_written < 0 || d.rows_read < 0 || d.statements < 0;

/** After metering (its reads would count): the last trace's graph is what Celery did, every task SUCCESS. */
async function checkGraph(plan: Plan) {
  const key = [...plan.traceKeys].at(-1)!;
  const res = await exports.default.fetch(`http://127.0.0.1/api/traces/${encodeURIComponent(key)}`);
  expect(res.status).toBe(200);
  const graph = (await res.json()) as {
    nodes: { state: string }[];
    containers: { kind: string; members: string[]; callback_id: string | null }[];
  };
  expect(graph.nodes.length).toBe(plan.tasks / plan.traceKeys.size);
  expect(graph.nodes.every((n) => n.state === "SUCCESS")).toBe(true);
  if (graph.nodes.length > 1)
    expect(
      graph.containers.some((c) => c.kind === "CHORD" && c.members.length === GROUP_SIZE && c.callback_id),
    ).toBe(true);
}

const per = (n: number, d: number) => +(n / d).toFixed(3);

async function measure(workload: Record<string, unknown>, build: (t0: number) => Plan) {
  // Fresh ids (they do not depend on t0): every object that may hold the traces is known first.
  const traceObjects = traceObjectNames([...build(0).traceKeys]);
  const before = await meterAll(traceObjects);
  const t0 = nowS() + 0.5;
  const plan = build(t0);
  const events = [...plan.batches.values()].reduce((n, b) => n + b.events.length, 0);
  const played = await play(plan, t0);
  const elapsed = nowS() - t0;
  expect(played.accepted).toBe(events);
  await sleep(SETTLE_S * 1000);
  const after = await meterAll(traceObjects);
  await checkGraph(plan);
  const traceDeltas = after.trace.map((m, i) => sub(m, before.trace[i]!));
  const delta = {
    trace: traceDeltas.reduce(add, ZERO),
    index: sub(after.index, before.index),
    fleet: sub(after.fleet, before.fleet),
  };
  // Events were accepted, so some trace object wrote them: none did means the names are wrong.
  if (delta.trace.rows_written <= 0)
    throw new Error(
      "no trace object wrote a row: traceObjectNames() does not name the objects that hold the traces (shards?)",
    );
  const objectsRestarted = [...traceDeltas, delta.index, delta.fleet].filter(restarted).length;
  if (objectsRestarted)
    console.warn(
      `${objectsRestarted} objects started again during the workload: their counts are incomplete`,
    );
  const total = add(add(delta.trace, delta.index), delta.fleet);
  const perTask = (key: "rows_written" | "rows_read" | "statements") => ({
    trace: per(delta.trace[key], plan.tasks),
    index: per(delta.index[key], plan.tasks),
    fleet: per(delta.fleet[key], plan.tasks),
    total: per(total[key], plan.tasks),
  });
  report({
    name: "rows_written",
    ...workload,
    trace_shards: SHARDS,
    tasks: plan.tasks,
    events,
    traces: plan.traceKeys.size,
    trace_objects: traceObjects.length,
    trace_objects_written: traceDeltas.filter((d) => d.rows_written > 0).length,
    objects_restarted: objectsRestarted,
    rows_written_per_task: perTask("rows_written"),
    rows_read_per_task: perTask("rows_read"),
    statements_per_task: perTask("statements"),
    rows_written_per_event: per(total.rows_written, events),
    // SQLite grows in pages and reuses freed ones: a coarse figure, all objects together.
    storage_bytes_per_task: Math.round((total.db_bytes ?? 0) / plan.tasks),
    totals: {
      ...delta,
      total: { rows_written: total.rows_written, rows_read: total.rows_read, statements: total.statements },
    },
    ...(after.index.by_statement
      ? {
          by_statement: {
            trace: topStatements(statementDelta(after.trace, before.trace), plan.tasks),
            index: topStatements(statementDelta([after.index], [before.index]), plan.tasks),
            fleet: topStatements(statementDelta([after.fleet], [before.fleet]), plan.tasks),
          },
        }
      : {}),
    posts: played.posts,
    post_late_ms: played.post_late_ms,
    post_ms: played.post_ms,
    workload_s: +elapsed.toFixed(1),
    settle_s: SETTLE_S,
  });
}

const runId = `rw${Date.now().toString(36)}`;

for (const rate of RATES)
  it(`standalone tasks at ${rate}/s for ${SECONDS} s`, async () => {
    await measure({ workload: "standalone", rate_per_s: rate, seconds: SECONDS }, (t0) =>
      standalonePlan(`${runId}-r${rate}`, t0, rate, SECONDS),
    );
  });

it.skipIf(WORKFLOWS <= 0)(
  `${WORKFLOWS} workflows of ${GROUP_SIZE + 2} tasks over ${WORKFLOW_SECONDS} s`,
  async () => {
    await measure(
      {
        workload: "workflow",
        tasks_per_workflow: GROUP_SIZE + 2,
        workflows: WORKFLOWS,
        seconds: WORKFLOW_SECONDS,
      },
      (t0) => workflowPlan(`${runId}-wf`, t0, WORKFLOWS, WORKFLOW_SECONDS),
    );
  },
);
