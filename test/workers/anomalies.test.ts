/**
 * Anomaly detection inside workerd, deterministic: events are stamped in the past so deadlines are
 * already due, and alarms are run with runDurableObjectAlarm (no sleeps). One test per kind, plus
 * resolution (history keeps both), Fleet transitions and the API around them.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  AnomalyList,
  Registry,
  Stats,
  TaskDetail,
  TraceList,
  TraceSnapshot,
  type Anomaly,
} from "../../shared/api";
import type { TaskEvent, WorkerEvent } from "../../shared/wire";
import type { TraceGraph } from "../../durable-objects/trace-graph";
import type { Fleet } from "../../durable-objects/fleet";
import { graphOf, settle } from "./objects";
import { scenario, taskEvents } from "./scenarios";

let n = 0;
const now = () => Date.now() / 1000;

function ev(task_id: string, type: TaskEvent["type"], extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `an-${n}`,
    kind: "task",
    type,
    ts: now(),
    seq: n,
    host: "w1@h",
    pid: 1,
    task_id,
    name: "app.work",
    trace_id: task_id,
    ...extra,
  };
}

function wev(host: string, type: WorkerEvent["type"], extra: Partial<WorkerEvent> = {}): WorkerEvent {
  n++;
  return { v: 1, id: `anw-${n}`, kind: "worker", type, ts: now(), seq: n, host, pid: 100, ...extra };
}

async function post(events: unknown[]) {
  const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(202);
  const body = (await res.json()) as { rejected: unknown[] };
  expect(body.rejected).toEqual([]);
  await settle();
}

async function get<T>(path: string, schema: { parse(v: unknown): T }): Promise<T> {
  const res = await exports.default.fetch(`http://127.0.0.1${path}`);
  expect(res.status, path).toBe(200);
  return schema.parse(await res.json());
}

const graph = graphOf;
const fleet = () => env.FLEET.getByName("global");

/** Runs the trace's alarm (its due deadlines). */
async function runAlarm(traceId: string) {
  expect(await runDurableObjectAlarm(graph(traceId))).toBe(true);
}

/** Makes a trace's deadlines due now (`watch:%`: its tasks' watches; `graph_check`; `none`) and runs its object's alarm. */
async function forceDue(traceId: string, which: "watch:%" | "graph_check" | "none") {
  await graph(traceId).flush();
  await runInDurableObject(graph(traceId), async (_obj: TraceGraph, state) => {
    if (which === "watch:%") {
      // Rows live in the trace's day partition (`tasks` is a view over them).
      const { part } = state.storage.sql
        .exec<{ part: number }>("SELECT part FROM tasks WHERE trace_id = ? LIMIT 1", traceId)
        .one();
      state.storage.sql.exec(
        `UPDATE tasks_${part} SET due_at = 0 WHERE trace_id = ? AND due_at IS NOT NULL`,
        traceId,
      );
    }
    if (which === "graph_check")
      state.storage.sql.exec("UPDATE deadlines SET due_at = 0 WHERE key = ?", `graph_check:${traceId}`);
    await state.storage.setAlarm(Date.now());
  });
  await runAlarm(traceId);
}

/**
 * The trace's earliest deadline (ms, as the alarm would be set for it), after checking that its
 * object's one alarm is set no later than the earliest deadline of all the traces it holds.
 */
async function alarmOf(traceId: string): Promise<number | null> {
  await graph(traceId).flush();
  return runInDurableObject(graph(traceId), async (_o: TraceGraph, state) => {
    const earliest = (where: string, ...args: string[]) =>
      state.storage.sql
        .exec<{ due: number | null }>(
          `SELECT MIN(due) AS due FROM (SELECT MIN(due_at) AS due FROM tasks WHERE due_at IS NOT NULL ${where} UNION ALL SELECT MIN(due_at) FROM deadlines WHERE true ${where})`,
          ...args,
          ...args,
        )
        .one().due;
    // Never late: the alarm is at the earliest deadline or before it (it only moves earlier, and
    // one that fires early finds nothing due and re-arms).
    const all = earliest("");
    if (all !== null) expect(await state.storage.getAlarm()).toBeLessThanOrEqual(Math.ceil(all * 1000));
    const own = earliest("AND trace_id = ?", traceId);
    return own === null ? null : Math.ceil(own * 1000);
  });
}

async function anomaliesOf(
  traceId: string,
  status: "open" | "resolved" | "all" = "open",
): Promise<Anomaly[]> {
  return (await get(`/api/anomalies?trace_id=${traceId}&status=${status}`, AnomalyList)).anomalies;
}

async function nodeOf(traceId: string, taskId: string) {
  const snap = await get(`/api/traces/${traceId}`, TraceSnapshot);
  return snap.nodes.find((x) => x.id === taskId)!;
}

describe("stuck pending", () => {
  it("flags a task nobody received within STUCK_PENDING_S, names the queue, and resolves once it is received", async () => {
    const id = "stuck-pending-1";
    await post([ev(id, "published", { queue: "reports", ts: now() - 400, host: null })]);
    await runAlarm(id);
    const [a] = await anomaliesOf(id);
    expect(a).toMatchObject({ kind: "stuck_pending", task_id: id, task_name: "app.work", resolved_at: null });
    expect(a!.explanation).toContain("queue 'reports'");
    expect(a!.fix).toMatch(/worker/);
    expect((await nodeOf(id, id)).anomaly).toBe("stuck_pending");
    expect((await get(`/api/traces?q=${id}`, TraceList)).traces[0]!.anomaly_count).toBe(1);

    await post([ev(id, "received")]);
    expect(await anomaliesOf(id, "open")).toEqual([]);
    const [resolved] = await anomaliesOf(id, "resolved");
    expect(resolved!.id).toBe(a!.id);
    expect(resolved!.resolved_at).not.toBeNull();
    expect((await nodeOf(id, id)).anomaly).toBeNull();
  });

  it("sets the deadline exactly (publish + grace for the registry check, then publish + STUCK_PENDING_S), the alarm never later", async () => {
    const id = "stuck-pending-alarm";
    const published = now() - 10;
    await post([ev(id, "published", { ts: published + 9, host: null })]); // 1 s old: the registry check comes first
    expect(await alarmOf(id)).toBe(Math.ceil((published + 9 + 3) * 1000));
    await forceDue(id, "watch:%"); // the check runs (nothing unregistered), then the stuck watch is armed
    expect(await alarmOf(id)).toBe(Math.ceil((published + 9 + 300) * 1000));
    expect(await anomaliesOf(id)).toEqual([]);
  });

  it("does not flag announced chain steps that wait for their upstream, nor eager runs", async () => {
    const id = "stuck-pending-chain";
    await post([
      ev(id, "published", { ts: now() - 1000, host: null, chain: [{ task_id: `${id}-b`, name: "app.b" }] }),
      ev(id, "received", { ts: now() - 999 }),
      ev(id, "started", { ts: now() - 999 }),
      ev("eager-1", "started", { trace_id: id, eager: true, ts: now() - 5000 }),
    ]);
    await forceDue(id, "watch:%");
    expect((await anomaliesOf(id)).map((a) => [a.kind, a.task_id])).toEqual([]);
  });
});

describe("stuck received and scheduled", () => {
  it("flags a task received and not started within STUCK_RECEIVED_S", async () => {
    const id = "stuck-received-1";
    await post([
      ev(id, "published", { ts: now() - 500, host: null }),
      ev(id, "received", { ts: now() - 400 }),
    ]);
    await runAlarm(id);
    const [a] = await anomaliesOf(id);
    expect(a).toMatchObject({ kind: "stuck_received", task_id: id });
    expect(a!.explanation).toContain("Received by w1@h");
    await post([ev(id, "started")]);
    expect(await anomaliesOf(id)).toEqual([]);
  });

  it("counts a scheduled task's wait from its ETA", async () => {
    const id = "stuck-scheduled-1";
    const received = now() - 1000;
    const eta = new Date((received + 800) * 1000).toISOString(); // due 200 s ago: not stuck yet
    await post([ev(id, "received", { ts: received, eta })]);
    expect((await nodeOf(id, id)).state).toBe("SCHEDULED");
    await forceDue(id, "none");
    expect(await anomaliesOf(id)).toEqual([]);
    expect(await alarmOf(id)).toBe(Math.ceil((received + 800 + 300) * 1000));

    const late = "stuck-scheduled-2";
    await post([
      ev(late, "received", { ts: now() - 2000, eta: new Date((now() - 1500) * 1000).toISOString() }),
    ]);
    await runAlarm(late);
    const [a] = await anomaliesOf(late);
    expect(a!.kind).toBe("stuck_received");
    expect(a!.explanation).toContain("Scheduled on w1@h");
  });
});

describe("stuck started", () => {
  it("uses the global STUCK_STARTED_S when the task has too little history", async () => {
    const id = "stuck-started-global";
    await post([ev(id, "started", { name: "app.rare", ts: now() - 4000 })]);
    await runAlarm(id);
    const [a] = await anomaliesOf(id);
    expect(a!.kind).toBe("stuck_started");
    expect(a!.explanation).toContain("STUCK_STARTED_S");
    await post([ev(id, "succeeded", { name: "app.rare" })]);
    expect(await anomaliesOf(id)).toEqual([]);
    expect((await anomaliesOf(id, "all")).map((x) => x.kind)).toEqual(["stuck_started"]);
  });

  it("uses a per-name timeout from STUCK_STARTED_BY_NAME", async () => {
    const id = "stuck-started-by-name";
    await post([ev(id, "started", { name: "app.quick-limit", ts: now() - 10 })]); // its limit: 5 s
    await runAlarm(id);
    const [a] = await anomaliesOf(id);
    expect(a!.kind).toBe("stuck_started");
    expect(a!.explanation).toContain("configured for this task");
  });

  it("derives the timeout from the task's own runtimes (p99 × factor, with a floor)", async () => {
    // 25 finished runs of 40 s: p99 × 3 = 120 s, above the 60 s floor.
    const hist = "history-runs";
    const runs: TaskEvent[] = [];
    for (let i = 0; i < 25; i++)
      runs.push(
        ev(`${hist}-${i}`, "succeeded", {
          trace_id: hist,
          name: "app.hist",
          ts: now() - 5000,
          runtime_ms: 40_000,
          state: "SUCCESS",
        }),
      );
    await post(runs);

    const early = "stuck-started-hist-early";
    const started = now() - 90; // past the floor, within 120 s
    await post([ev(early, "started", { name: "app.hist", ts: started })]);
    await runAlarm(early);
    expect(await anomaliesOf(early)).toEqual([]);
    expect(await alarmOf(early)).toBe(Math.ceil((started + 120) * 1000));

    const late = "stuck-started-hist-late";
    await post([ev(late, "started", { name: "app.hist", ts: now() - 130 })]);
    await runAlarm(late);
    const [a] = await anomaliesOf(late);
    expect(a!.kind).toBe("stuck_started");
    expect(a!.explanation).toContain("3 × the p99 of its last 25 runs");
  });
});

describe("unregistered", () => {
  it("flags task_unknown at once, on the node, the trace and the registry row", async () => {
    const id = "unreg-unknown";
    await post([
      ev(id, "published", { name: "app.nowhere", host: null }),
      ev(id, "unknown", { name: "app.nowhere" }),
    ]);
    const [a] = await anomaliesOf(id);
    expect(a).toMatchObject({ kind: "unregistered", task_name: "app.nowhere" });
    expect(a!.explanation).toContain("task_unknown");
    expect((await nodeOf(id, id)).anomaly).toBe("unregistered");
    const registry = await get("/api/registry?q=app.nowhere", Registry);
    expect(registry.tasks[0]).toMatchObject({
      name: "app.nowhere",
      status: "NOT_REGISTERED",
      open_anomalies: 1,
    });
  });

  it("flags a published name that no online worker registers (and not a registered one)", async () => {
    await post([
      wev("reg-worker@h", "online", {
        registered: [{ name: "app.known", module: "app", signature: "()", doc: null }],
        queues: ["celery"],
        freq: 3600,
      }),
    ]);
    const missing = "unreg-published";
    const known = "reg-published";
    await post([ev(missing, "published", { name: "app.not-deployed", host: null, ts: now() - 5 })]);
    await post([ev(known, "published", { name: "app.known", host: null, ts: now() - 5 })]);
    await runAlarm(missing);
    await runAlarm(known);
    const [a] = await anomaliesOf(missing);
    expect(a!.kind).toBe("unregistered");
    expect(a!.explanation).toMatch(/none of the \d+ online workers? .*reg-worker@h/);
    expect(await anomaliesOf(known)).toEqual([]);
  });
});

describe("interrupted and lost", () => {
  it("flags a postrun without a state as interrupted", async () => {
    const id = "interrupted-postrun";
    await post([ev(id, "started", { ts: now() - 2 }), ev(id, "postrun", { state: null })]);
    const [a] = await anomaliesOf(id);
    expect(a!.kind).toBe("interrupted");
  });

  it("a cold shutdown interrupts the tasks running on that worker; a warm one flags nothing", async () => {
    await post([
      wev("cold@h", "online", { pid: 10, freq: 3600 }),
      wev("warm@h", "online", { pid: 11, freq: 3600 }),
    ]);
    const cold = "cold-running";
    const warm = "warm-running";
    await post([ev(cold, "started", { host: "cold@h", pid: 12, ts: now() - 5 })]);
    await post([ev(warm, "started", { host: "warm@h", pid: 13, ts: now() - 5 })]);
    await post([
      wev("cold@h", "shutting_down", { pid: 10, how: "cold" }),
      wev("warm@h", "shutting_down", { pid: 11, how: "warm" }),
    ]);
    const node = await nodeOf(cold, cold);
    expect(node.state).toBe("INTERRUPTED");
    expect(node.state_reason).toContain("shut down cold");
    expect((await get(`/api/tasks/${cold}`, TaskDetail)).attempts.map((a) => a.state)).toEqual([
      "INTERRUPTED",
    ]);
    expect((await anomaliesOf(cold)).map((a) => a.kind)).toEqual(["interrupted"]);
    expect((await nodeOf(warm, warm)).state).toBe("STARTED");
    expect(await anomaliesOf(warm)).toEqual([]);
  });

  it("a worker whose heartbeats stop loses its running task; heartbeats resuming take it back", async () => {
    await post([wev("silent@h", "online", { pid: 20, freq: 2 })]);
    const id = "lost-running";
    await post([ev(id, "started", { host: "silent@h", pid: 21, ts: now() - 1 })]);
    await runInDurableObject(fleet(), async (_f: Fleet, state) => {
      state.storage.sql.exec("UPDATE workers SET lost_due_at = 0 WHERE hostname = 'silent@h'");
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(fleet())).toBe(true);
    expect((await fleet().worker("silent@h"))!.status).toBe("LOST");
    const node = await nodeOf(id, id);
    expect(node.state).toBe("LOST");
    expect(node.state_reason).toContain("went silent");
    const [a] = await anomaliesOf(id);
    expect(a!.kind).toBe("lost");
    expect(a!.fix).toContain("acks_late");

    await post([wev("silent@h", "heartbeat", { pid: 20, active: [id] })]);
    expect((await fleet().worker("silent@h"))!.status).toBe("ONLINE");
    expect((await nodeOf(id, id)).state).toBe("STARTED");
    expect(await anomaliesOf(id)).toEqual([]);
    expect((await anomaliesOf(id, "resolved")).map((x) => x.kind)).toEqual(["lost"]);
  });

  it("a worker that restarts without finishing its task loses it", async () => {
    await post([wev("restart@h", "online", { pid: 30, freq: 3600 })]);
    const id = "lost-restart";
    await post([ev(id, "started", { host: "restart@h", pid: 31, ts: now() - 3 })]);
    await post([wev("restart@h", "online", { pid: 40, freq: 3600 })]);
    const node = await nodeOf(id, id);
    expect(node.state).toBe("LOST");
    expect(node.state_reason).toContain("restarted without finishing");
    expect((await anomaliesOf(id)).map((a) => a.kind)).toEqual(["lost"]);
    expect((await fleet().worker("restart@h"))!.sessions).toBe(2);
  });
});

describe("chord never fired, chain stopped", () => {
  it("flags the callback of a chord whose header failed (recorded 10a)", async () => {
    const events = taskEvents(scenario("10a_chord_header_fails")).map((e) => ({
      ...e,
      id: `10a-an-${e.id}`,
    }));
    await post(events);
    const traceId = events[0]!.trace_id!;
    await forceDue(traceId, "graph_check");
    const [a] = await anomaliesOf(traceId);
    expect(a).toMatchObject({ kind: "chord_never_fired", task_id: "d6bbf20c-b8eb-426a-a60a-79b6a0eb50f3" });
    expect(a!.explanation).toContain("will never run");
  });

  it("flags a chain whose step failed once, at the first step that will not run", async () => {
    const id = "chain-stops";
    await post([
      ev(id, "published", {
        host: null,
        chain: [
          { task_id: `${id}-c`, name: "app.c" },
          { task_id: `${id}-b`, name: "app.b" },
        ],
      }),
      ev(id, "failed", { exception: { type: "ValueError", message: "no" } }),
    ]);
    await forceDue(id, "graph_check");
    const open = await anomaliesOf(id);
    // `-b` after `-c` is NOT_RUN too, but says so on its node ("not run: the step before it ..."): one stop, one anomaly.
    expect(open.map((a) => [a.kind, a.task_id])).toEqual([["chain_stopped", `${id}-c`]]);
  });
});

describe("GET /api/anomalies and /api/stats", () => {
  it("counts open anomalies by kind and filters the list", async () => {
    const id = "stats-unknown";
    await post([ev(id, "unknown", { name: "app.stats-missing" })]);
    const stats = await get("/api/stats", Stats);
    expect(stats.open_anomalies).toBeGreaterThan(0);
    expect(stats.anomalies_by_kind.unregistered).toBeGreaterThan(0);
    const byName = await get("/api/anomalies?name=app.stats-missing", AnomalyList);
    expect(byName.anomalies.map((a) => a.task_id)).toEqual([id]);
    const res = await exports.default.fetch("http://127.0.0.1/api/anomalies?kind=bogus");
    expect(res.status).toBe(400);
  });

  it("announces anomalies on /api/live", async () => {
    const res = await exports.default.fetch("http://127.0.0.1/api/live", {
      headers: { Upgrade: "websocket" },
    });
    const ws = res.webSocket!;
    const frames: { type: string; anomaly?: Anomaly }[] = [];
    ws.accept();
    ws.addEventListener("message", (m) => frames.push(JSON.parse(m.data as string)));
    await post([ev("live-unknown", "unknown", { name: "app.live-missing" })]);
    await new Promise((r) => setTimeout(r, 50)); // frames are delivered on the next turn
    expect(frames.some((f) => f.type === "anomaly" && f.anomaly?.task_id === "live-unknown")).toBe(true);
    ws.close();
  });
});
