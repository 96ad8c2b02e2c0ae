/**
 * The two index backends side by side (results: bench/results/upstash-index.json and .md):
 *
 * 1. index reports per second each sustains: shard-shaped reports (N changed traces, a non-root
 *    task and a finished run each), sent one at a time and 16 at once (16 shards), for a while;
 * 2. trace-list query time at 100,000 indexed traces: first page, a deep cursor page, the exact
 *    filters (state, worker), a substring filter (name) and `q` by id prefix — median of repeats;
 * 3. Upstash commands per Celery task: tasks posted through the Worker (`POST /v1/events`) in real
 *    time with the Upstash backend on, counting what the local REST endpoint served (the billed
 *    unit) — beside the DO index's rows written per task (bench/results/rows-written.json).
 *
 * Upstash is reached through test/upstash/rest-endpoint.mjs in front of a local redis-server: no
 * network between them, so its latency is a floor; a real Upstash adds the round trip to its
 * region (one per report, a few per query).
 *
 * Run: node_modules/.bin/node node_modules/vitest/vitest.mjs run --config bench/workers/upstash.vitest.config.ts
 * Environment: UPSTASH_BENCH_TRACES=100000 (list size), UPSTASH_BENCH_SECONDS=5 (per report-rate
 * run), UPSTASH_BENCH_TASKS_PER_S=200 and UPSTASH_BENCH_WORKLOAD_S=10 (the posted workload).
 */
import { env, exports } from "cloudflare:workers";
import { expect, inject, it } from "vitest";
import type { TraceSummary } from "../../shared/api";
import { encodeCursor } from "../../shared/cursor";
import { shardCount, shardNames } from "../../durable-objects/shards";
import type { IndexReport } from "../../durable-objects/protocol";
import type { IndexBackend } from "../../durable-objects/trace-index";
import { UpstashIndex } from "../../durable-objects/upstash-index";

const vars = env as unknown as Record<string, string | undefined>;
const TRACES = Number(vars.UPSTASH_BENCH_TRACES ?? 100_000);
const SECONDS = Number(vars.UPSTASH_BENCH_SECONDS ?? 5);
const TASKS_PER_S = Number(vars.UPSTASH_BENCH_TASKS_PER_S ?? 200);
const WORKLOAD_S = Number(vars.UPSTASH_BENCH_WORKLOAD_S ?? 10);

const bench = (values: Record<string, unknown>) => console.log(`BENCH ${JSON.stringify(values)}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const NAMES = ["app.add", "app.mul", "reports.build", "mail.send", "billing.charge_card", "etl.load"];
const WORKERS = ["celery@w1", "celery@w2", "celery@w3", "celery@w4"];
const STATES = ["SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "STARTED"] as const;

let run = 0;
function backends(): { backend: string; index: IndexBackend }[] {
  const id = `bench-${Date.now()}-${++run}`;
  const { url, token } = inject("upstash");
  return [
    { backend: "durable-object", index: env.INDEX.getByName(id) as unknown as IndexBackend },
    { backend: "upstash", index: new UpstashIndex({ url, token, prefix: `${id}:` }) },
  ];
}

/** A shard's report of `n` traces (ids from `from`), each with one non-root task and one finished run. */
function shardReport(from: number, n: number, now: number): IndexReport {
  const day = Math.floor(now / 86_400);
  const traces: IndexReport["traces"] = [];
  const tasks: IndexReport["tasks"] = [];
  const runs: IndexReport["runs"] = [];
  for (let i = from; i < from + n; i++) {
    const id = `${i.toString(16).padStart(8, "0")}-4bd6-4c1e-9a57-${(i * 7919).toString(16).padStart(12, "0")}`;
    const name = NAMES[i % NAMES.length]!;
    const worker = WORKERS[i % WORKERS.length]!;
    const summary: TraceSummary = {
      trace_id: id,
      state: STATES[i % STATES.length]!,
      root_task_id: id,
      root_name: name,
      task_count: 2,
      failure_count: i % 5 === 3 ? 1 : 0,
      started_at: now - 1 + i / 1e6,
      updated_at: now,
      finished_at: null,
      duration_ms: null,
      workers: [worker],
      task_names: [name, "app.child"],
      anomaly_count: 0,
    };
    traces.push({ day, sort_at: now - 86_000 + i / 10, summary });
    tasks.push({ day, trace_id: id, task_id: `${id}-c`, name: "app.child", state: "SUCCESS", worker });
    runs.push({
      name,
      state: summary.state,
      runtime_ms: 5 + (i % 400),
      queue_wait_ms: i % 90,
      finished_at: now,
    });
  }
  return { traces, tasks, runs, anomalies: [] };
}

it("sustains index reports per second (each backend, 1 and 16 concurrent reporters)", async () => {
  for (const tracesPerReport of [10, 100])
    for (const concurrency of [1, 16])
      for (const { backend, index } of backends()) {
        // Warm: the object's first call migrates its schema, the script's first call loads it.
        await index.report(shardReport(9_000_000_000, 1, Date.now() / 1000));
        let sent = 0;
        const started = Date.now();
        const deadline = started + SECONDS * 1000;
        await Promise.all(
          Array.from({ length: concurrency }, async (_, lane) => {
            for (let k = 0; Date.now() < deadline; k++) {
              const from = (lane * 1_000_000 + k) * tracesPerReport;
              await index.report(shardReport(from, tracesPerReport, Date.now() / 1000));
              sent++;
            }
          }),
        );
        const s = (Date.now() - started) / 1000;
        bench({
          name: "reports_per_s",
          backend,
          traces_per_report: tracesPerReport,
          concurrency,
          reports: sent,
          seconds: +s.toFixed(2),
          reports_per_s: +(sent / s).toFixed(1),
          traces_per_s: Math.round((sent * tracesPerReport) / s),
        });
        expect(sent).toBeGreaterThan(0);
      }
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

it(`lists traces at ${TRACES} indexed traces`, async () => {
  const now = Date.now() / 1000;
  const pair = backends();
  for (const { backend, index } of pair) {
    const started = Date.now();
    for (let from = 0; from < TRACES; from += 500)
      await index.report(shardReport(from, Math.min(500, TRACES - from), now));
    bench({ name: "fill", backend, traces: TRACES, seconds: (Date.now() - started) / 1000 });
  }
  // A cursor half way down the list (sort_at of trace i is now - 86000 + i/10, newest first).
  const mid = Math.floor(TRACES / 2);
  const report = shardReport(mid, 1, now);
  const cursor = encodeCursor(report.traces[0]!.sort_at, report.traces[0]!.summary.trace_id);
  const queries: Record<string, Parameters<IndexBackend["listTraces"]>[0]> = {
    first_page: { limit: 50 },
    deep_cursor_page: { limit: 50, cursor },
    state_failure: { limit: 50, state: "FAILURE" },
    worker: { limit: 50, worker: "celery@w3" },
    name_substring_common: { limit: 50, name: "charge" },
    name_substring_none: { limit: 50, name: "no-such-name" },
    q_id_prefix: { limit: 50, q: "000001" },
  };
  for (const [query, q] of Object.entries(queries)) {
    const answers: string[][] = [];
    for (const { backend, index } of pair) {
      const times: number[] = [];
      const repeats = query === "name_substring_none" ? 3 : 9;
      let page: string[] = [];
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        page = (await index.listTraces(q)).traces.map((t) => t.trace_id);
        times.push(performance.now() - t0);
      }
      answers.push(page);
      bench({
        name: "list_query",
        backend,
        traces: TRACES,
        query,
        rows: page.length,
        median_ms: +median(times).toFixed(1),
      });
    }
    expect(answers[1]).toEqual(answers[0]);
  }
});

it(`counts Upstash commands per Celery task (${TASKS_PER_S} tasks/s for ${WORKLOAD_S} s through the Worker)`, async () => {
  const { url, token } = inject("upstash");
  const stats = async () =>
    (await (
      await fetch(`${url}/__admin/stats`, { method: "POST", headers: { Authorization: `Bearer ${token}` } })
    ).json()) as {
      commands: number;
      requests: number;
      redis_calls: number;
    };
  for (const workload of ["standalone", "workflow"] as const) {
    const before = await stats();
    const start = Date.now() / 1000;
    const windows = WORKLOAD_S * 2;
    const perWindow = TASKS_PER_S / 2;
    let tasks = 0;
    let seq = 0;
    const tag = `${workload}-${Date.now()}`;
    const ev = (
      type: string,
      taskId: string,
      traceId: string,
      ts: number,
      extra: Record<string, unknown> = {},
    ) => ({
      v: 1,
      id: `${taskId}-${type}`,
      kind: "task",
      type,
      ts,
      seq: ++seq,
      host: type === "published" ? null : "bench@host",
      pid: type === "published" ? 1 : 2,
      task_id: taskId,
      trace_id: traceId,
      name: NAMES[seq % NAMES.length],
      ...extra,
    });
    let previous: { taskId: string; traceId: string }[] = [];
    for (let w = 0; w <= windows; w++) {
      const ts = start + w * 0.5;
      const batch: unknown[] = [];
      // Window w: this window's tasks are published; the previous window's run and finish.
      for (const t of previous) {
        batch.push(ev("received", t.taskId, t.traceId, ts));
        batch.push(ev("started", t.taskId, t.traceId, ts + 0.01));
        batch.push(ev("succeeded", t.taskId, t.traceId, ts + 0.2, { state: "SUCCESS", runtime_ms: 190 }));
      }
      previous = [];
      if (w < windows)
        for (let i = 0; i < perWindow; i++) {
          const n = tasks++;
          // standalone: every task its own trace; workflow: 50 tasks per trace (a root and its children)
          const traceId = workload === "standalone" ? `${tag}-${n}` : `${tag}-wf-${Math.floor(n / 50)}`;
          const taskId = workload === "standalone" || n % 50 === 0 ? traceId : `${tag}-${n}`;
          batch.push(ev("published", taskId, traceId, ts, taskId === traceId ? {} : { parent_id: traceId }));
          previous.push({ taskId, traceId });
        }
      const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ events: batch }),
      });
      expect(res.status).toBe(202);
      await sleep((start + (w + 1) * 0.5 - Date.now() / 1000) * 1000);
    }
    // Everything reported: every shard flushes (as its ~1 s timer would).
    const shards = shardCount(env);
    await Promise.all(shardNames(shards).map((name) => env.TRACE_GRAPH.getByName(name).flush()));
    await sleep(1500);
    const after = await stats();
    const commands = after.commands - before.commands;
    const perTask = commands / tasks;
    bench({
      name: "upstash_commands",
      workload,
      tasks,
      tasks_per_s: TASKS_PER_S,
      seconds: WORKLOAD_S,
      trace_shards: shards,
      commands,
      requests: after.requests - before.requests,
      commands_per_task: +perTask.toFixed(4),
      commands_per_million_tasks: Math.round(perTask * 1e6),
      usd_per_million_tasks: +((perTask * 1e6 * 0.2) / 100_000).toFixed(3),
      redis_calls_inside: after.redis_calls - before.redis_calls,
    });
    expect(commands).toBeGreaterThan(0);
  }
  // Reads cost commands too: one view of each page that asks the index, after the workloads.
  for (const path of [
    "/api/traces",
    "/api/traces?name=mail",
    "/api/tasks?q=app",
    "/api/stats",
    "/api/registry",
  ]) {
    const before = await stats();
    const res = await exports.default.fetch(`http://127.0.0.1${path}`);
    expect(res.status).toBe(200);
    const after = await stats();
    bench({
      name: "upstash_read_commands",
      path,
      commands: after.commands - before.commands,
      requests: after.requests - before.requests,
    });
  }
});
