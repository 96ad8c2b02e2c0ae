/**
 * Queue wait (shared/queue-wait.ts) over folded task records: which times it measures between,
 * the worker-clock floor and the clamp against a publisher clock ahead of the worker's, ETAs, and
 * retries (the first attempt's wait; a retry's countdown is not queue time).
 */
import { describe, expect, it } from "vitest";
import { queueWaitMs } from "../../shared/queue-wait";
import { foldTask } from "../../shared/task-fold";
import type { TaskEvent } from "../../shared/wire";

const T0 = 1_796_000_000;
let n = 0;
function ev(type: TaskEvent["type"], at: number, extra: Partial<TaskEvent> = {}): TaskEvent {
  n++;
  return {
    v: 1,
    id: `qwn-${n}`,
    kind: "task",
    type,
    ts: T0 + at,
    seq: n,
    host: "w1@h",
    pid: 1,
    task_id: "t",
    name: "app.t",
    trace_id: "t",
    ...extra,
  };
}
const iso = (at: number) => new Date((T0 + at) * 1000).toISOString();
const waitOf = (events: TaskEvent[]) => queueWaitMs(foldTask("t", events));

describe("queueWaitMs", () => {
  it("is published → started when the clocks agree", () => {
    expect(
      waitOf([
        ev("published", 0, { host: null }),
        ev("received", 0.5),
        ev("started", 1.25),
        ev("succeeded", 2),
      ]),
    ).toBe(1250);
  });

  it("never goes below the worker's own received → started, nor below 0", () => {
    // The client's clock is 3 s ahead: published "after" received.
    expect(
      waitOf([
        ev("published", 3, { host: null }),
        ev("received", 0),
        ev("started", 0.08),
        ev("succeeded", 1),
      ]),
    ).toBe(80);
    expect(waitOf([ev("published", 3, { host: null }), ev("started", 0), ev("succeeded", 1)])).toBe(0);
  });

  it("is received → started without a published event, and null when the task never started", () => {
    expect(waitOf([ev("received", 0), ev("started", 0.02), ev("succeeded", 1)])).toBe(20);
    expect(waitOf([ev("published", 0, { host: null }), ev("revoked", 1)])).toBeNull();
    expect(waitOf([ev("started", 0), ev("succeeded", 1)])).toBeNull();
  });

  it("counts from when an ETA task was due, and ignores an unparsable ETA", () => {
    const eta = { eta: iso(30) };
    expect(
      waitOf([
        ev("published", 0, { host: null, ...eta }),
        ev("received", 0.1, eta),
        ev("started", 30.4),
        ev("succeeded", 31),
      ]),
    ).toBe(400);
    const bad = { eta: "soon" };
    expect(
      waitOf([
        ev("published", 0, { host: null, ...bad }),
        ev("received", 0.1, bad),
        ev("started", 30.4),
        ev("succeeded", 31),
      ]),
    ).toBe(30400);
  });

  it("measures a retried task's first attempt, not the retry's countdown", () => {
    const retry = { retries: 1, eta: iso(60) };
    const events = [
      ev("published", 0, { host: null }),
      ev("received", 0.1),
      ev("started", 0.2),
      ev("retried", 0.3, { next_eta: iso(60) }),
      ev("published", 0.3, retry),
      ev("received", 0.35, retry),
      ev("started", 60.5, { retries: 1 }),
      ev("succeeded", 61, { retries: 1 }),
    ];
    expect(foldTask("t", events).attempt_count).toBe(2);
    expect(waitOf(events)).toBe(200);
  });
});
