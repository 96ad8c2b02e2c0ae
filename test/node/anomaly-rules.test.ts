/**
 * The pure anomaly rules (shared/anomalies.ts) and worker outages in the fold (shared/task-fold.ts):
 * which watch a task needs, the running timeout and its basis, what holds, and that outages keep
 * the fold order-independent.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  anomalyConfigFrom,
  anomalyHolds,
  DEFAULT_ANOMALY_CONFIG,
  explainAnomaly,
  startedTimeout,
  stateAnomalyKind,
  watchFor,
  type Outage,
} from "../../shared/anomalies";
import { foldTask } from "../../shared/task-fold";
import type { TaskEvent } from "../../shared/wire";

let n = 0;
function ev(type: TaskEvent["type"], extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `e${n}`,
    kind: "task",
    type,
    ts: 1000 + n,
    seq: n,
    host: type === "published" ? null : "w@h",
    pid: 1,
    task_id: "T",
    name: "app.t",
    ...extra,
  };
}

const config = DEFAULT_ANOMALY_CONFIG;

describe("watchFor", () => {
  it("a published task gets the registry check first, then the stuck-pending deadline", () => {
    const r = foldTask("T", [ev("published", { ts: 1000 })]);
    expect(watchFor(r, config, 1001)).toEqual({ kind: "check_registered", due_at: 1003 });
    expect(watchFor(r, { ...config, registeredGraceS: 400 }, 1001)).toEqual({
      kind: "stuck_pending",
      due_at: 1300,
    });
  });

  it("received waits from max(received, eta); started from the current attempt's start", () => {
    const received = foldTask("T", [ev("received", { ts: 2000 })]);
    expect(watchFor(received, config, 2000)).toEqual({ kind: "stuck_received", due_at: 2300 });
    const scheduled = foldTask("T", [ev("received", { ts: 2000, eta: new Date(2100 * 1000).toISOString() })]);
    expect(scheduled.state).toBe("SCHEDULED");
    expect(watchFor(scheduled, config, 2000)).toEqual({ kind: "stuck_received", due_at: 2400 });
    const retried = foldTask("T", [
      ev("started", { ts: 3000, retries: 0 }),
      ev("retried", { ts: 3001, retries: 0 }),
      ev("started", { ts: 3500, retries: 1 }),
    ]);
    expect(retried.last_started_at).toBe(3500);
    expect(watchFor(retried, config, 3500)).toEqual({ kind: "stuck_started", due_at: 3560 }); // floor 60 < 3600
    expect(watchFor(retried, { ...config, startedByName: { "app.t": 10 } }, 3500)).toEqual({
      kind: "stuck_started",
      due_at: 3510,
    });
  });

  it("finished, eager and announced-only tasks need no watch", () => {
    expect(watchFor(foldTask("T", [ev("started"), ev("succeeded")]), config, 0)).toBeNull();
    expect(watchFor(foldTask("T", [ev("started", { eager: true })]), config, 0)).toBeNull();
  });
});

describe("startedTimeout", () => {
  it("prefers the per-name override, then its own p99 × factor (with the floor), then the global timeout", () => {
    const cfg = { ...config, startedByName: { "app.slow": 900 } };
    expect(startedTimeout("app.slow", cfg, { runs: 500, p99_ms: 1 }).seconds).toBe(900);
    expect(startedTimeout("app.t", cfg, { runs: 50, p99_ms: 40_000 })).toMatchObject({ seconds: 120 });
    expect(startedTimeout("app.t", cfg, { runs: 50, p99_ms: 100 })).toMatchObject({ seconds: 60 });
    expect(startedTimeout("app.t", cfg, { runs: 5, p99_ms: 100 })).toMatchObject({ seconds: 3600 });
    expect(startedTimeout("app.t", cfg, null).basis).toContain("STUCK_STARTED_S");
  });

  it("reads its config from Worker vars and ignores malformed values", () => {
    const cfg = anomalyConfigFrom({
      STUCK_PENDING_S: "5",
      STUCK_STARTED_BY_NAME: '{"a": 3, "b": "x"}',
      STUCK_STARTED_FACTOR: "nope",
    });
    expect(cfg.pendingS).toBe(5);
    expect(cfg.startedByName).toEqual({ a: 3 });
    expect(cfg.startedFactor).toBe(3);
    expect(anomalyConfigFrom({ STUCK_STARTED_BY_NAME: "{not json" }).startedByName).toEqual({});
  });
});

describe("state anomalies", () => {
  it("maps derived states to kinds and tells when they stop holding", () => {
    expect(stateAnomalyKind({ state: "UNREGISTERED", state_reason: null })).toBe("unregistered");
    expect(stateAnomalyKind({ state: "NOT_RUN", state_reason: "chord header task 1 ended FAILURE" })).toBe(
      "chord_never_fired",
    );
    expect(stateAnomalyKind({ state: "NOT_RUN", state_reason: "upstream step 1 ended FAILURE" })).toBe(
      "chain_stopped",
    );
    expect(stateAnomalyKind({ state: "SUCCESS", state_reason: null })).toBeNull();
    expect(anomalyHolds("stuck_pending", { state: "RECEIVED", state_reason: null })).toBe(false);
    expect(anomalyHolds("unregistered", { state: "PENDING", state_reason: null })).toBe(true);
    expect(anomalyHolds("lost", { state: "SUCCESS", state_reason: null })).toBe(false);
  });

  it("explains a stuck pending task with its queue and whether anyone consumes it", () => {
    const r = foldTask("T", [ev("published", { ts: 1000, queue: "reports" })]);
    const nobody = explainAnomaly("stuck_pending", r, {
      now: 1400,
      online: [{ hostname: "w@h", queues: ["celery"] }],
    });
    expect(nobody.explanation).toBe(
      "Published to queue 'reports' 7 min ago and no worker has received it: no online worker consumes 'reports'.",
    );
    expect(nobody.fix).toContain("-Q reports");
    const consumed = explainAnomaly("stuck_pending", r, {
      now: 1400,
      online: [{ hostname: "w@h", queues: ["reports"] }],
    });
    expect(consumed.fix).toContain("inspect active_queues");
  });
});

describe("worker outages in the fold", () => {
  const running = [ev("received", { ts: 100 }), ev("started", { ts: 101 })];

  it("a cold shutdown after the start interrupts, a loss or restart loses; an earlier outage does nothing", () => {
    const cold: Outage = { host: "w@h", kind: "cold", ts: 150 };
    expect(foldTask("T", running, [cold])).toMatchObject({ state: "INTERRUPTED", finished_at: 150 });
    expect(foldTask("T", running, [{ host: "w@h", kind: "lost", ts: 150 }]).state).toBe("LOST");
    expect(foldTask("T", running, [{ host: "w@h", kind: "restart", ts: 150 }]).state_reason).toContain(
      "restarted",
    );
    expect(foldTask("T", running, [{ host: "w@h", kind: "cold", ts: 50 }]).state).toBe("STARTED");
    expect(foldTask("T", running, [{ host: "other@h", kind: "cold", ts: 150 }]).state).toBe("STARTED");
  });

  it("a later result wins over the outage, and a redelivered run after it is not touched", () => {
    const outage: Outage[] = [{ host: "w@h", kind: "lost", ts: 150 }];
    expect(foldTask("T", [...running, ev("succeeded", { ts: 160 })], outage).state).toBe("SUCCESS");
    const redelivered = [
      ...running,
      ev("received", { ts: 200, redelivered: true }),
      ev("started", { ts: 201, redelivered: true }),
    ];
    expect(foldTask("T", redelivered, outage).state).toBe("STARTED");
  });

  it("stays order-independent with outages (any permutation and duplication)", () => {
    const events = [ev("published", { ts: 99 }), ...running, ev("postrun", { ts: 151, state: null })];
    const outages: Outage[] = [
      { host: "w@h", kind: "cold", ts: 150 },
      { host: "w@h", kind: "lost", ts: 140 },
    ];
    const expected = foldTask("T", events, outages);
    fc.assert(
      fc.property(
        fc.shuffledSubarray([...events, ...events], { minLength: events.length * 2 }),
        fc.shuffledSubarray(outages, { minLength: 2 }),
        (evs, outs) => {
          expect(foldTask("T", evs, outs)).toEqual(expected);
        },
      ),
    );
  });
});
