/**
 * One contract, two backends: the same reports go to a fresh TraceIndex object and to a fresh
 * Upstash index (its own key prefix on the real redis-server behind the local REST endpoint), and
 * every list filter, cursor page, search, lookup, registry statistic and anomaly query must give
 * the same answer from both — and the answer the contract says (explicit expectations beside the
 * comparisons, so that both backends being wrong the same way fails too).
 */
import { env } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import type { Anomaly, AnomalyKind, TaskState, TraceSummary } from "../../shared/api";
import type { IndexReport } from "../../durable-objects/protocol";
import type { IndexBackend, TraceQuery } from "../../durable-objects/trace-index";
import { UpstashIndex } from "../../durable-objects/upstash-index";

let n = 0;
/** A fresh pair of backends (a new object name, a new key prefix). */
function backends(): { name: string; index: IndexBackend }[] {
  const id = `contract-${Date.now()}-${++n}`;
  const { url, token } = inject("upstash");
  return [
    { name: "durable-object", index: env.INDEX.getByName(id) as unknown as IndexBackend },
    { name: "upstash", index: new UpstashIndex({ url, token, prefix: `${id}:` }) },
  ];
}

const NOW = Math.floor(Date.now() / 1000);
const TODAY = Math.floor(NOW / 86_400);
const YESTERDAY = TODAY - 1;
const NAMES = ["app.add", "app.mul_x", "app.mulAx", "App.MixedCase", "other.task%pct", "app.add"];
const WORKERS = ["celery@alpha", "celery@b_1", "celery@bx1"];
const STATES: TaskState[] = ["SUCCESS", "FAILURE", "STARTED", "PENDING", "RETRY"];

function summary(i: number, over: Partial<TraceSummary> = {}): TraceSummary {
  const id = `${i % 3 === 0 ? "Ab" : "cd"}${String(i).padStart(3, "0")}-trace`;
  return {
    trace_id: id,
    state: STATES[i % STATES.length]!,
    root_task_id: i % 4 === 3 ? null : id,
    root_name: i % 7 === 6 ? null : NAMES[i % NAMES.length]!,
    task_count: 1 + (i % 4),
    failure_count: i % 5 === 1 ? 1 : 0,
    started_at: i % 6 === 5 ? null : NOW - 5000 + i * 10,
    updated_at: NOW - 4000 + i * 10,
    finished_at: null,
    duration_ms: null,
    workers: i % 5 === 4 ? [] : [WORKERS[i % 3]!, ...(i % 2 ? [WORKERS[(i + 1) % 3]!] : [])],
    task_names: [NAMES[i % NAMES.length]!, ...(i % 3 === 1 ? [NAMES[(i + 2) % NAMES.length]!] : [])],
    anomaly_count: 0,
    ...over,
  };
}

/** 40 traces over two days; pairs share a sort_at (ties ordered by trace id). */
function traces(): IndexReport["traces"] {
  return Array.from({ length: 40 }, (_, i) => ({
    day: i < 12 ? YESTERDAY : TODAY,
    sort_at: (i < 12 ? YESTERDAY * 86_400 + 3600 : NOW - 6000) + Math.floor(i / 2) * 7.25,
    summary: summary(i),
  }));
}

function task(i: number, over: Partial<IndexReport["tasks"][number]> = {}): IndexReport["tasks"][number] {
  const t = traces()[i % 40]!;
  return {
    day: t.day,
    trace_id: t.summary.trace_id,
    task_id: `${i % 2 ? "KID" : "kid"}-${String(i).padStart(3, "0")}`,
    name: i % 9 === 8 ? null : NAMES[(i + 1) % NAMES.length]!,
    state: STATES[(i + 2) % STATES.length]!,
    worker: i % 4 === 0 ? null : WORKERS[i % 3]!,
    ...over,
  };
}

function anomaly(i: number, over: Partial<Anomaly> = {}): Anomaly {
  const kinds: AnomalyKind[] = ["stuck_pending", "stuck_started", "unregistered", "interrupted"];
  const t = traces()[(i * 3) % 40]!;
  return {
    id: `an-${String(i).padStart(2, "0")}`,
    kind: kinds[i % kinds.length]!,
    trace_id: t.summary.trace_id,
    task_id: `${t.summary.trace_id}-task`,
    task_name: i % 5 === 4 ? null : NAMES[i % NAMES.length]!,
    since: NOW - 900,
    // pairs detected at the same time: ordered by id
    detected_at: NOW - 800 + Math.floor(i / 2) * 5,
    resolved_at: null,
    explanation: `anomaly ${i}`,
    fix: "look",
    ...over,
  };
}

function runs(): IndexReport["runs"] {
  return Array.from({ length: 90 }, (_, i) => ({
    name: i % 11 === 10 ? null : NAMES[i % 5]!,
    state: i % 6 === 0 ? "FAILURE" : i % 13 === 0 ? "REVOKED" : "SUCCESS",
    runtime_ms: i % 8 === 7 ? null : 10 + ((i * 37) % 400),
    queue_wait_ms: i % 5 === 3 ? null : i % 9 === 0 ? undefined : (i * 13) % 250,
    finished_at: NOW - 60 * 60 * ((i * 7) % 30) - (i % 60),
  }));
}

/** The whole fixture, sent as several reports (as shards would): the later reports update earlier traces. */
function reports(): IndexReport[] {
  const all = traces();
  const tasks = Array.from({ length: 30 }, (_, i) => task(i));
  return [
    { traces: all.slice(0, 25), tasks: tasks.slice(0, 15), runs: runs().slice(0, 40), anomalies: [] },
    {
      traces: all.slice(25),
      tasks: tasks.slice(15),
      runs: runs().slice(40),
      anomalies: Array.from({ length: 12 }, (_, i) => anomaly(i)),
    },
    {
      // Updates: a trace changes state, workers and root name; one anomaly resolves.
      traces: [
        {
          ...all[20]!,
          summary: { ...all[20]!.summary, state: "FAILURE", workers: ["celery@bx1"], task_count: 9 },
        },
        { ...all[21]!, summary: { ...all[21]!.summary, root_name: "renamed.root" } },
      ],
      tasks: [task(3, { state: "SUCCESS", name: "app.renamed", worker: "celery@alpha" })],
      runs: [],
      anomalies: [anomaly(2, { resolved_at: NOW - 10, explanation: "resolved" })],
    },
  ];
}

async function fill(index: IndexBackend): Promise<void> {
  for (const r of reports()) await index.report(r);
}

/** Every page of a query, following the cursors. */
async function allPages(index: IndexBackend, query: TraceQuery): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const page = await index.listTraces({ ...query, cursor });
    pages.push(page.traces.map((t) => t.trace_id));
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return pages;
}

/**
 * Search hits without `updated_at`: a task's is when its index took the report (each backend's
 * clock); the order, which it decides, is compared.
 */
async function search(index: IndexBackend, q: string, limit: number) {
  return (await index.searchTasks(q, limit)).tasks.map(({ updated_at: _, ...hit }) => hit);
}

/** Runs `query` on both backends and expects the same answer; returns it. */
async function same<T>(
  pair: { name: string; index: IndexBackend }[],
  query: (i: IndexBackend) => Promise<T>,
) {
  const [a, b] = await Promise.all(pair.map((p) => query(p.index)));
  expect(b, "the Upstash index answers as the Durable Object index").toEqual(a);
  return a as T;
}

describe("index contract: Durable Object and Upstash answer alike", () => {
  it("lists traces newest first, every filter, and pages with cursors", async () => {
    const pair = backends();
    await Promise.all(pair.map((p) => fill(p.index)));
    const everything = await same(pair, (i) => allPages(i, { limit: 200 }));
    expect(everything).toHaveLength(1);
    expect(everything[0]).toHaveLength(40);
    const paged = await same(pair, (i) => allPages(i, { limit: 7 }));
    expect(paged.flat()).toEqual(everything[0]);
    expect(paged).toHaveLength(6);

    const queries: TraceQuery[] = [
      ...STATES.map((state) => ({ state })),
      ...WORKERS.map((worker) => ({ worker })),
      { worker: "celery@b%1" },
      { worker: "CELERY@ALPHA" },
      { name: "mul_x" },
      { name: "MUL" },
      { name: "mixedcase" },
      { name: "task%pct" },
      { name: "%" },
      { name: "add|app" },
      { q: "ab0" },
      { q: "AB0" },
      { q: "cd01" },
      { q: "add" },
      { q: "_" },
      { from: NOW - 4900 },
      { to: NOW - 4800 },
      { from: NOW - 4900, to: NOW - 4700 },
      { state: "STARTED", worker: "celery@b_1" },
      { state: "SUCCESS", name: "app" },
      { worker: "celery@alpha", q: "cd" },
    ];
    for (const q of queries) await same(pair, (i) => allPages(i, { ...q, limit: 3 }));

    const byName = (await pair[1]!.index.listTraces({ name: "mul_x", limit: 200 })).traces;
    // An underscore is a literal: "app.mulAx" does not match "mul_x".
    expect(byName.every((t) => t.task_names.some((name) => name.includes("mul_x")))).toBe(true);
    expect(byName.length).toBeGreaterThan(0);
    const worker = (await pair[1]!.index.listTraces({ worker: "celery@b_1", limit: 200 })).traces;
    expect(worker.every((t) => t.workers.includes("celery@b_1"))).toBe(true);
    // The update moved trace 20 out of its old state and workers.
    const moved = summary(20).trace_id;
    const started = await pair[1]!.index.listTraces({ state: summary(20).state, limit: 200 });
    expect(started.traces.map((t) => t.trace_id)).not.toContain(moved);
    expect(
      (await pair[1]!.index.listTraces({ worker: "celery@bx1", limit: 200 })).traces.map((t) => t.trace_id),
    ).toContain(moved);
  });

  it("searches tasks by id prefix or name, and looks up traces and tasks", async () => {
    const pair = backends();
    await Promise.all(pair.map((p) => fill(p.index)));
    for (const q of [
      "kid-00",
      "KID-01",
      "kid",
      "ab0",
      "add",
      "MUL_X",
      "mul_x",
      "renamed",
      "nothing",
      "%",
      "_",
      "x",
    ])
      for (const limit of [3, 50]) await same(pair, (i) => search(i, q, limit));
    const hits = (await pair[1]!.index.searchTasks("kid-00", 50)).tasks.map((t) => t.task_id).sort();
    // Case-insensitive, as SQLite's LIKE: "KID-001" starts with "kid-00".
    expect(hits).toEqual([
      "KID-001",
      "KID-003",
      "KID-005",
      "KID-007",
      "KID-009",
      "kid-000",
      "kid-002",
      "kid-004",
      "kid-006",
      "kid-008",
    ]);
    const roots = (await pair[1]!.index.searchTasks("renamed.root", 50)).tasks;
    expect(roots.map((t) => t.task_id)).toEqual([summary(21).trace_id]);

    for (const id of ["KID-003", "kid-004", "kid-999", summary(5).trace_id])
      await same(pair, (i) => i.traceOfTask(id));
    expect(await pair[1]!.index.traceOfTask("kid-004")).toBe(summary(4).trace_id);
    for (const id of [summary(1).trace_id, summary(39).trace_id, "unknown-trace", "cd001"])
      await same(pair, (i) => i.knowsTrace(id));
    expect(await pair[1]!.index.knowsTrace(summary(39).trace_id)).toBe(true);
    expect(await pair[1]!.index.knowsTrace("cd001")).toBe(false);
  });

  it("never lets an announced task overwrite what its own events said", async () => {
    const pair = backends();
    const seen = task(40, { task_id: "seen-1", state: "STARTED", worker: "celery@alpha", name: "app.add" });
    const announced = { ...seen, state: "PENDING", worker: null, name: "app.add", announced: true };
    const stillPending = task(41, { task_id: "pending-1", state: "PENDING", worker: null });
    for (const p of pair) {
      await p.index.report({ traces: [], tasks: [seen, stillPending], runs: [], anomalies: [] });
      await p.index.report({
        traces: [],
        tasks: [announced, { ...stillPending, name: "app.named" }],
        runs: [],
        anomalies: [],
      });
    }
    const found = await Promise.all(pair.map(async (p) => (await p.index.searchTasks("seen-1", 5)).tasks));
    for (const [i, tasks] of found.entries())
      expect(
        tasks.map((t) => t.state),
        pair[i]!.name,
      ).toEqual(["STARTED"]);
    const named = await Promise.all(pair.map(async (p) => (await p.index.searchTasks("pending-1", 5)).tasks));
    for (const tasks of named) expect(tasks.map((t) => t.name)).toEqual(["app.named"]);
    const onWorker = await same(pair, async (i) => (await i.tracesRunningOn("celery@alpha", [])).sort());
    expect(onWorker).toContain(seen.trace_id);
  });

  it("gives the same registry statistics, throughput, top names and runtime profiles", async () => {
    const pair = backends();
    await Promise.all(pair.map((p) => fill(p.index)));
    const stats = await same(pair, async (i) =>
      (await i.runStats()).sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
    expect(stats.map((s) => s.name)).toEqual([...new Set(NAMES.slice(0, 5))].sort());
    expect(stats.reduce((sum, s) => sum + s.runs, 0)).toBe(runs().filter((r) => r.name !== null).length);
    for (const since of [NOW - 3600, NOW - 86_400, NOW - 7 * 3600 + 17])
      expect(await same(pair, (i) => i.finishedSince(since))).toBeDefined();
    expect((await pair[1]!.index.finishedSince(NOW - 86_400 * 2)).finished).toBe(runs().length);
    await same(pair, (i) => i.throughput(300, 12));
    const hourly = await same(pair, (i) => i.throughput(3600, 24));
    expect(hourly.reduce((s, b) => s + b.finished, 0)).toBeGreaterThan(0);
    await same(pair, (i) => i.topNames(NOW - 86_400, 3));
    await same(pair, (i) => i.topNames(NOW - 5 * 3600, 8));
    for (const name of ["app.add", "app.mul_x", "none.such"]) await same(pair, (i) => i.runtimeProfile(name));
    const counts = await same(pair, (i) => i.counts());
    expect(counts.traces).toBe(40);
    expect(counts.tasks).toBe(
      traces().reduce((s, t) => s + t.summary.task_count, 0) + 9 - summary(20).task_count,
    );
  });

  it("lists and counts anomalies (open, resolved, by kind, trace and name)", async () => {
    const pair = backends();
    await Promise.all(pair.map((p) => fill(p.index)));
    const all = await same(pair, (i) => i.listAnomalies({}));
    expect(all.anomalies).toHaveLength(12);
    // Open first, newest first; the resolved one last.
    expect(all.anomalies.at(-1)!.id).toBe("an-02");
    expect(all.anomalies.at(-1)!.explanation).toBe("resolved");
    for (const status of ["open", "resolved", "all"] as const)
      for (const kind of [undefined, "stuck_started", "unregistered"] as const)
        await same(pair, (i) => i.listAnomalies({ status, kind, limit: 4 }));
    await same(pair, (i) => i.listAnomalies({ trace_id: anomaly(1).trace_id }));
    await same(pair, (i) => i.listAnomalies({ name: "app.mul_x", status: "open" }));
    await same(pair, (i) => i.listAnomalies({ name: "app.mul_x", status: "resolved" }));
    const counts = await same(pair, (i) => i.anomalyCounts());
    expect(counts.open).toBe(11);
  });

  it("finds the traces running on a worker", async () => {
    const pair = backends();
    await Promise.all(pair.map((p) => fill(p.index)));
    for (const host of WORKERS)
      await same(pair, async (i) =>
        (await i.tracesRunningOn(host, ["kid-005", "KID-007", "root-task"])).sort(),
      );
  });

  it("forgets a day: its traces, lookups, counts and anomalies", async () => {
    const pair = backends();
    await Promise.all(pair.map((p) => fill(p.index)));
    await Promise.all(pair.map((p) => p.index.forgetDay(YESTERDAY)));
    const left = await same(pair, (i) => allPages(i, { limit: 200 }));
    expect(left[0]).toHaveLength(28);
    const counts = await same(pair, (i) => i.counts());
    expect(counts.traces).toBe(28);
    await same(pair, (i) => i.traceOfTask("kid-004"));
    expect(await pair[1]!.index.traceOfTask("kid-004")).toBeNull();
    expect(await pair[1]!.index.knowsTrace(summary(3).trace_id)).toBe(false);
    await same(pair, (i) => i.listAnomalies({}));
    await same(pair, (i) => i.anomalyCounts());
    await same(pair, (i) => search(i, "kid", 50));
    // Idempotent (every shard of that day asks).
    await Promise.all(pair.map((p) => p.index.forgetDay(YESTERDAY)));
    expect(await same(pair, (i) => i.counts())).toEqual(counts);
  });
});
