/**
 * The Fleet inside the Workers runtime, without HTTP: 1,000 workers online, then heartbeats one
 * per call (as each worker's POST delivers them). Prints the cost per heartbeat and the rate one
 * Fleet object sustains; the HTTP view of the same load is bench/fleet-heartbeats.mjs.
 * Run: npm run bench:graph (prints BENCH lines).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import type { Fleet } from "../../durable-objects/fleet";
import type { WorkerEvent } from "../../shared/wire";

let seq = 0;
const registered = Array.from({ length: 20 }, (_, i) => ({
  name: `app.tasks.task_${i}`,
  module: "app.tasks",
  signature: "(x, y=None)",
  doc: "A task.",
}));
const ev = (host: string, type: WorkerEvent["type"], extra: Partial<WorkerEvent> = {}): WorkerEvent => ({
  v: 1,
  id: `${host}-${++seq}`,
  kind: "worker",
  type,
  ts: Date.now() / 1000,
  seq,
  host,
  pid: 1000,
  freq: 2,
  ...extra,
});

it("1,000 workers heartbeating", async () => {
  const hosts = Array.from({ length: 1000 }, (_, i) => `w${i}@bench`);
  const stub = env.FLEET.getByName("bench-fleet");
  const result = await runInDurableObject(stub, async (fleet: Fleet) => {
    for (const h of hosts) await fleet.ingest([ev(h, "online", { registered, queues: ["celery"] })]);
    const beats = 5000;
    const t0 = performance.now();
    for (let i = 0; i < beats; i++)
      await fleet.ingest([ev(hosts[i % hosts.length]!, "heartbeat", { active: [`t-${i}`] })]);
    const ms = performance.now() - t0;
    return { beats, ms };
  });
  console.log(
    `BENCH ${JSON.stringify({ name: "fleet_heartbeats", workers: 1000, heartbeats: result.beats, us_per_heartbeat: Math.round((result.ms / result.beats) * 1000), heartbeats_per_s: Math.round((result.beats / result.ms) * 1000) })}`,
  );
});

it("1,000 workers heartbeating through the Worker (POST /v1/events in workerd, no sockets)", async () => {
  const { exports } = await import("cloudflare:workers");
  const hosts = Array.from({ length: 1000 }, (_, i) => `hw${i}@bench`);
  const post = async (events: WorkerEvent[]) => {
    const res = await exports.default.fetch("http://127.0.0.1/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events }),
    });
    if (res.status !== 202) throw new Error(`POST answered ${res.status}`);
    await res.arrayBuffer();
  };
  for (const h of hosts) await post([ev(h, "online", { registered, queues: ["celery"] })]);
  const beats = 10_000;
  const concurrency = 16;
  let next = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < beats) {
        const i = next++;
        const t = performance.now();
        await post([ev(hosts[i % hosts.length]!, "heartbeat", { active: [`t-${i}`] })]);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const ms = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const lost = (await env.FLEET.getByName("global").list()).filter(
    (w) => w.hostname.startsWith("hw") && w.status !== "ONLINE",
  ).length;
  console.log(
    `BENCH ${JSON.stringify({ name: "fleet_heartbeats_via_worker", workers: 1000, heartbeats: beats, concurrency, heartbeats_per_s: Math.round((beats / ms) * 1000), p50_ms: Math.round(latencies[beats / 2]! * 10) / 10, p95_ms: Math.round(latencies[Math.floor(beats * 0.95)]! * 10) / 10, not_online: lost })}`,
  );
});
