import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Health, WorkerList } from "../../shared/api";
import { IngestResponse } from "../../shared/wire";

let counter = 0;
function event(overrides: Record<string, unknown> = {}) {
  counter++;
  return {
    v: 1,
    id: `drops-${counter}`,
    kind: "task",
    type: "published",
    ts: 1795334409 + counter / 1000,
    seq: counter,
    host: null,
    pid: 1,
    task_id: `drops-task-${counter}`,
    name: "app.add",
    ...overrides,
  };
}

async function post(body: Record<string, unknown>) {
  const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(202);
  return IngestResponse.parse(await res.json());
}

async function health() {
  return Health.parse(await (await exports.default.fetch("http://127.0.0.1/api/health")).json());
}

describe("producer drop reports (the batch envelope's `producer`)", () => {
  it("reach /api/health and the Workers list, per process, keeping the largest count per reason", async () => {
    const host = "drops@w1";
    await post({
      events: [event({ kind: "worker", type: "online", host, pid: 10, freq: 2 })],
      producer: { host, pid: 10, process: "main", dropped: { buffer_full: 5 } },
    });
    // A pool child of the same worker, and a client (no node name).
    await post({
      events: [event()],
      producer: { host, pid: 11, process: "child", dropped: { queue_full: 2, exit: 1 } },
    });
    await post({
      events: [event()],
      producer: { host: null, pid: 99, process: "script", dropped: { exit: 4 } },
    });
    // A batch replayed from a spool carries older counts; they never lower what is known.
    await post({
      events: [event()],
      producer: { host, pid: 10, process: "main", dropped: { buffer_full: 3 } },
    });
    await post({
      events: [event()],
      producer: { host, pid: 10, process: "main", dropped: { buffer_full: 7, rejected: 1 } },
    });

    const drops = (await health()).producer_drops!;
    expect(drops.total).toBe(8 + 3 + 4);
    expect(drops.by_host).toEqual([
      { host: null, dropped: 4, processes: 1, by_reason: { exit: 4 } },
      { host, dropped: 11, processes: 2, by_reason: { buffer_full: 7, rejected: 1, queue_full: 2, exit: 1 } },
    ]);
    const workers = WorkerList.parse(
      await (await exports.default.fetch("http://127.0.0.1/api/workers")).json(),
    );
    expect(workers.workers.find((w) => w.hostname === host)?.dropped).toBe(11);
  });

  it("a report the server cannot read costs nothing of the batch", async () => {
    const before = (await health()).producer_drops!.total;
    const result = await post({ events: [event(), event()], producer: { host: "x", dropped: "lots" } });
    expect(result).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect((await health()).producer_drops!.total).toBe(before);
  });

  it("a worker whose producers lost nothing shows 0", async () => {
    const host = "drops@clean";
    await post({ events: [event({ kind: "worker", type: "online", host, pid: 20, freq: 2 })] });
    const workers = WorkerList.parse(
      await (await exports.default.fetch("http://127.0.0.1/api/workers")).json(),
    );
    expect(workers.workers.find((w) => w.hostname === host)?.dropped).toBe(0);
  });

  it("forgets a process that reported nothing new for the retention period", async () => {
    const host = "drops@gone";
    await post({
      events: [event()],
      producer: { host, pid: 30, process: "old", dropped: { buffer_full: 9 } },
    });
    await post({
      events: [event()],
      producer: { host, pid: 31, process: "recent", dropped: { exit: 2 } },
    });
    const fleet = env.FLEET.getByName("global");
    // The "old" process last changed its counts 8 days ago (RETENTION_DAYS is 7), and the minute
    // between prunes has passed.
    await runInDurableObject(fleet, async (obj, state) => {
      state.storage.sql.exec(
        "UPDATE producer_drops SET updated_at = ? WHERE host = ? AND process = 'old'",
        Date.now() / 1000 - 8 * 86_400,
        host,
      );
      (obj as unknown as { prunedAt: number }).prunedAt = 0;
    });
    await post({ events: [event()], producer: { host, pid: 31, process: "recent", dropped: { exit: 2 } } });
    const entry = (await health()).producer_drops!.by_host.find((h) => h.host === host);
    expect(entry).toEqual({ host, dropped: 2, processes: 1, by_reason: { exit: 2 } });
  });
});
