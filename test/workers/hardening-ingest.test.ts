/**
 * Issue 15, server input: one event never breaks ingestion. Deep nesting, out-of-range times and
 * numbers, lone surrogates and oversized tasks are refused per event (by index, with a reason),
 * the rest of the batch and of its traces is stored, a resend is exact, and the Fleet's alarm
 * survives any stored row. Runs in both layouts.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TaskDetail, TraceSnapshot, WorkerInfo } from "../../shared/api";
import { IngestResponse, MAX_PAYLOAD_DEPTH } from "../../shared/wire";
import type { Fleet } from "../../durable-objects/fleet";
import { graphOf, settle, shards } from "./objects";
import { traceObjectName } from "../../durable-objects/shards";
import type { TraceGraph } from "../../durable-objects/trace-graph";

let n = 0;
const now = () => Date.now() / 1000;

function task(traceId: string, taskId: string, extra: Record<string, unknown> = {}) {
  n++;
  return {
    v: 1,
    id: `hi-${n}-${Math.random()}`,
    kind: "task",
    type: "published",
    ts: now() - 5,
    seq: n,
    host: null,
    task_id: taskId,
    name: "app.hardening",
    trace_id: traceId,
    ...extra,
  };
}

function worker(host: string, type: string, extra: Record<string, unknown> = {}) {
  n++;
  return {
    v: 1,
    id: `hw-${n}-${Math.random()}`,
    kind: "worker",
    type,
    ts: now() - 1,
    seq: n,
    host,
    pid: 7,
    freq: 2,
    ...extra,
  };
}

async function post(events: unknown[]): Promise<{ status: number; body: IngestResponse }> {
  const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  return { status: res.status, body: IngestResponse.parse(await res.json()) };
}

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v];
  return v;
}

async function snapshot(traceId: string): Promise<TraceSnapshot> {
  await settle();
  const res = await exports.default.fetch(`http://127.0.0.1/api/traces/${encodeURIComponent(traceId)}`);
  expect(res.status).toBe(200);
  return TraceSnapshot.parse(await res.json());
}

describe("one bad event costs only itself", () => {
  it("refuses args nested 1000 deep by index; the trace's other events and other traces are stored; a resend is exact", async () => {
    const batch = [
      task("deep-a", "deep-a"),
      task("deep-a", "deep-a-bad", { args: [nested(1000)] }),
      task("deep-a", "deep-a-2", { parent_id: "deep-a" }),
      task("deep-b", "deep-b", { result: nested(MAX_PAYLOAD_DEPTH - 1) }),
      task("deep-b", "deep-b-bad", { kwargs: { x: nested(MAX_PAYLOAD_DEPTH) } }),
    ];
    const first = await post(batch);
    expect(first.status).toBe(202);
    expect(first.body.accepted).toBe(3);
    expect(first.body.rejected.map((r) => r.index)).toEqual([1, 4]);
    expect(first.body.rejected[0]!.error).toMatch(/args: nested deeper than 64 levels/);
    expect(first.body.rejected[1]!.error).toMatch(/kwargs: nested deeper than 64 levels/);
    expect((await snapshot("deep-a")).nodes.map((x) => x.id).sort()).toEqual(["deep-a", "deep-a-2"]);
    expect((await snapshot("deep-b")).nodes.map((x) => x.id)).toEqual(["deep-b"]);
    // The producer resends the same batch (it cannot know what was stored): nothing twice, same refusals.
    const again = await post(batch);
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ accepted: 0, duplicates: 3 });
    expect(again.body.rejected.map((r) => r.index)).toEqual([1, 4]);
  });

  it("refuses times in milliseconds, far-future and pre-2000 times, and absurd numbers, each with its reason", async () => {
    const nowMs = Date.now();
    const batch = [
      worker("range@h", "heartbeat", { ts: nowMs }), // milliseconds
      worker("range@h", "heartbeat", { freq: 1e300 }),
      task("range-t", "range-1", { ts: 8.64e12 + 1 }),
      task("range-t", "range-2", { ts: 3 }),
      task("range-t", "range-3", { ts: now() + 3 * 86_400 }),
      task("range-t", "range-4", { type: "succeeded", host: "range@h", runtime_ms: 1e15 }),
      task("range-t", "range-5", { ts: -0 }),
      task("range-t", "range-ok"),
      worker("range@h", "online"),
    ];
    const res = await post(batch);
    expect(res.status).toBe(202);
    expect(res.body.accepted).toBe(2);
    const reasons = Object.fromEntries(res.body.rejected.map((r) => [r.index, r.error]));
    expect(Object.keys(reasons).map(Number)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(reasons[0]).toMatch(/^ts: .*milliseconds instead of seconds\?/);
    expect(reasons[1]).toMatch(/^freq: .*not a heartbeat interval/);
    expect(reasons[2]).toMatch(/^ts: .*far future/);
    expect(reasons[3]).toMatch(/^ts: .*before 2000-01-01/);
    expect(reasons[4]).toMatch(/^ts: .*3 days ahead of the server's clock/);
    expect(reasons[5]).toMatch(/^runtime_ms: /);
    expect(reasons[6]).toMatch(/^ts: /);
    const w = WorkerInfo.parse(
      await (await exports.default.fetch("http://127.0.0.1/api/workers/range@h")).json(),
    );
    expect(w.last_seen).toBeLessThan(now() + 1);
    expect(w.heartbeat_interval_s).toBe(2);
  });

  it("refuses lone surrogates in ids and names; replaces them in args and results", async () => {
    const batch = [
      task("sur\ud800rogate", "sur-1"),
      task("sur-t", "sur-\udc00-2"),
      task("sur-t", "sur-3", { name: "app.\ud83d" }),
      worker("sur\udfff@h", "heartbeat"),
      task("sur-t", "sur-ok", { args: ["a\ud800b", { "k\udc01": "\ud83d\ude00 ok" }], result: "\udfff" }),
    ];
    const res = await post(batch);
    expect(res.status).toBe(202);
    expect(res.body.accepted).toBe(1);
    expect(res.body.rejected.map((r) => r.index)).toEqual([0, 1, 2, 3]);
    expect(res.body.rejected[0]!.error).toMatch(/^trace_id: holds a lone UTF-16 surrogate/);
    expect(res.body.rejected[3]!.error).toMatch(/^host: /);
    await settle();
    const detail = TaskDetail.parse(
      await (await exports.default.fetch("http://127.0.0.1/api/tasks/sur-ok")).json(),
    );
    expect(detail.args).toEqual(["a\ufffdb", { "k\ufffd": "\ud83d\ude00 ok" }]);
  });

  it("keeps a task's row under the row size limit: the event that would pass it is refused, the task stays readable", async () => {
    const big = "x".repeat(280_000);
    const events = [0, 1, 2, 3].map((i) =>
      task("big-t", "big-1", {
        type: i === 0 ? "published" : "retried",
        host: "w@h",
        retries: i,
        args: [big],
      }),
    );
    const results = [];
    for (const e of events) results.push(await post([task("big-t", `big-other-${e.seq}`), e]));
    expect(results.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    // Each event is ~280 KB: three fit under 900 KB of events, the fourth does not.
    expect(results.map((r) => r.body.accepted)).toEqual([2, 2, 2, 1]);
    expect(results[3]!.body.rejected).toEqual([
      { index: 1, error: expect.stringMatching(/task big-1 would hold over 900000 bytes/) },
    ]);
    const snap = await snapshot("big-t");
    expect(snap.nodes.map((x) => x.id)).toContain("big-1");
    expect(snap.nodes).toHaveLength(5);
  });
});

describe("task names that are Object's own keys", () => {
  it("'constructor' and '__proto__' are names like any other: the registry, the list and the shard's alarm work", async () => {
    const names = ["constructor", "__proto__", "toString"];
    const res = await post([
      worker("protokeys@h", "online", { registered: [{ name: "hasOwnProperty" }, { name: "constructor" }] }),
      ...names.flatMap((name, i) => [
        task(`proto-${i}`, `proto-${i}`, { name, type: "published" }),
        task(`proto-${i}`, `proto-${i}`, { name, type: "started", host: "protokeys@h" }),
      ]),
    ]);
    expect(res.status).toBe(202);
    expect(res.body.accepted).toBe(7);
    await settle();
    const registry = await exports.default.fetch("http://127.0.0.1/api/registry");
    expect(registry.status).toBe(200);
    const entries = ((await registry.json()) as { tasks: { name: string; status: string }[] }).tasks;
    expect(entries.find((e) => e.name === "constructor")?.status).toBe("NEVER_RUN"); // registered, running, none finished
    expect(entries.find((e) => e.name === "hasOwnProperty")?.status).toBe("NEVER_RUN");
    // The running tasks' deadlines are times: the shard's alarm can be set and runs.
    for (let i = 0; i < names.length; i++) {
      const due = await runInDurableObject(graphOf(`proto-${i}`), async (g: TraceGraph, state) => {
        await g.alarm();
        return state.storage.getAlarm();
      });
      expect(typeof due).toBe("number");
    }
  });
});

describe("an object that fails", () => {
  it("costs only its own events: 503 with them under `failed`, the rest stored; the resend completes exactly", async () => {
    // Two traces in different objects (shards or one object per trace).
    const a = "fail-a";
    let b = "fail-b-0";
    for (let i = 1; traceObjectName(b, shards) === traceObjectName(a, shards); i++) b = `fail-b-${i}`;
    const batch = [
      task(a, a),
      task(b, b),
      task(a, `${a}-2`, { parent_id: a }),
      task(b, "fail-bad", { ts: -1 }),
    ];
    const broken = graphOf(a);
    await runInDurableObject(broken, (g: TraceGraph) => {
      (g as unknown as { absorb: () => never }).absorb = () => {
        throw new Error("disk on fire");
      };
    });
    const first = await post(batch);
    expect(first.status).toBe(503);
    expect(first.body.accepted).toBe(1);
    expect(first.body.rejected.map((r) => r.index)).toEqual([3]);
    expect(first.body.failed!.map((r) => r.index)).toEqual([0, 2]);
    expect(first.body.failed![0]!.error).toMatch(/^not stored: .*disk on fire.*send the batch again/);
    await runInDurableObject(broken, (g: TraceGraph) => {
      delete (g as unknown as { absorb?: unknown }).absorb; // the prototype's again
    });
    const again = await post(batch);
    expect(again.status).toBe(202);
    expect(again.body).toEqual({
      accepted: 2,
      duplicates: 1,
      rejected: [{ index: 3, error: expect.stringMatching(/^ts: /) }],
    });
    expect((await snapshot(a)).nodes.map((x) => x.id).sort()).toEqual([a, `${a}-2`]);
  });
});

describe("the Fleet", () => {
  const fleet = () => env.FLEET.getByName("global");

  it("dedupes a worker event resent long after it happened: no second session", async () => {
    const host = "old-resend@h";
    const online = worker(host, "online", { ts: now() - 7200, pid: 50 });
    const offline = worker(host, "offline", { ts: now() - 7100, pid: 50 });
    expect((await post([online, offline])).body).toMatchObject({ accepted: 2 });
    // Time passes: the Fleet prunes its dedupe window (forced here; it runs at most once a minute).
    await runInDurableObject(fleet(), async (f: Fleet) => {
      (f as unknown as { prunedAt: number }).prunedAt = 0;
    });
    expect((await post([worker("someone-else@h", "heartbeat")])).status).toBe(202);
    const again = await post([online]);
    expect(again.body).toMatchObject({ accepted: 0, duplicates: 1 });
    const info = WorkerInfo.parse(
      await (await exports.default.fetch(`http://127.0.0.1/api/workers/${host}`)).json(),
    );
    expect(info).toMatchObject({ status: "OFFLINE", sessions: 1 });
  });

  it("its alarm survives any stored row: a bad one is skipped, silent workers still go LOST, the alarm re-arms", async () => {
    expect(
      (await post([worker("quiet@h", "online"), worker("absurd@h", "online"), worker("garbled@h", "online")]))
        .status,
    ).toBe(202);
    await runInDurableObject(fleet(), async (_f: Fleet, state) => {
      // Rows as an older version could store them: a deadline no alarm can be set to, unreadable JSON.
      state.storage.sql.exec("UPDATE workers SET lost_due_at = 1e300 WHERE hostname = 'absurd@h'");
      state.storage.sql.exec(
        "UPDATE workers SET lost_due_at = 0, queues = '[not json', active = '{' WHERE hostname IN ('quiet@h', 'garbled@h')",
      );
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(fleet())).toBe(true);
    expect((await fleet().worker("quiet@h"))!.status).toBe("LOST");
    expect((await fleet().worker("garbled@h"))!).toMatchObject({ status: "LOST", queues: [], active: [] });
    expect((await fleet().worker("absurd@h"))!.status).toBe("ONLINE");
    const next = await runInDurableObject(fleet(), (_f: Fleet, state) => state.storage.getAlarm());
    expect(next).not.toBeNull();
    expect(next!).toBeLessThanOrEqual(Date.now() + 86_400_000);
    // And a second alarm runs too (it used to throw from here on).
    expect(await runDurableObjectAlarm(fleet())).toBe(true);
    expect((await exports.default.fetch("http://127.0.0.1/api/workers")).status).toBe(200);
  });
});
