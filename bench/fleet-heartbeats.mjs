/**
 * The Fleet under a large fleet's heartbeats, through `wrangler dev`: N workers come online (with
 * 20 registered task definitions each), then each sends one heartbeat every 2 s as its own POST,
 * as a real producer does (≈ N / 2 events/s). Measures the offered and achieved rate, request
 * latency per 10 s window (a Fleet falling behind shows as latency growing window after window),
 * and at the end whether every worker is still ONLINE (none falsely LOST).
 * Writes bench/results/fleet.json and fleet.md.
 *   node_modules/.bin/node bench/fleet-heartbeats.mjs [--workers 1000] [--seconds 40]
 */
import { execSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { ROOT, startWranglerDev } from "./wrangler-dev.mjs";

const args = process.argv.slice(2);
const arg = (name, fallback) => Number(args[args.indexOf(name) + 1] || fallback);
const WORKERS = arg("--workers", 1000);
const SECONDS = arg("--seconds", 40);
const FREQ = 2;

let seq = 0;
const event = (host, type, extra) => ({
  v: 1,
  id: `${host}-${type}-${++seq}`,
  kind: "worker",
  type,
  ts: Date.now() / 1000,
  seq,
  host,
  pid: 1000,
  freq: FREQ,
  ...extra,
});
const registered = Array.from({ length: 20 }, (_, i) => ({
  name: `app.tasks.task_${i}`,
  module: "app.tasks",
  signature: "(x, y=None)",
  doc: "A task.",
}));

// Keep-alive connections, at most 64 at a time (as a load balancer in front of the Worker would
// hold): a request waits for a free connection, so a server falling behind shows as latency.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(base, events) {
  const t0 = performance.now();
  const body = JSON.stringify({ events });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}/v1/events`,
      {
        method: "POST",
        agent,
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          if (res.statusCode !== 202)
            reject(new Error(`POST answered ${res.statusCode}: ${Buffer.concat(chunks)}`));
          else resolve(performance.now() - t0);
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const pct = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null;
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

const load = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
const loadBefore = load();
const server = await startWranglerDev();
const results = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model}`,
  node: process.version,
  load_before: loadBefore,
  workers: WORKERS,
  heartbeat_s: FREQ,
};
try {
  // 0. The local dev server's own ceiling for tiny requests (GET /api/health, 64 connections, 5 s).
  {
    let count = 0;
    const t = performance.now();
    const end = t + 5000;
    const getHealth = () =>
      new Promise((resolve, reject) => {
        const req = http.request(`${server.base}/api/health`, { agent }, (res) => {
          res.resume();
          res.on("end", resolve);
        });
        req.on("error", reject);
        req.end();
      });
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < end) {
          await getHealth();
          count++;
        }
      }),
    );
    results.dev_server_ceiling_req_per_s = Math.round(count / ((performance.now() - t) / 1000));
    console.log(`wrangler dev answers ${results.dev_server_ceiling_req_per_s} GET /api/health per second`);
  }
  const hosts = Array.from({ length: WORKERS }, (_, i) => `worker-${String(i).padStart(4, "0")}@bench`);
  // 1. Online, 50 at a time.
  const t0 = performance.now();
  for (let i = 0; i < hosts.length; i += 50)
    await Promise.all(
      hosts
        .slice(i, i + 50)
        .map((h) =>
          post(server.base, [
            event(h, "online", { registered, queues: ["celery"], pool: "prefork", concurrency: 4 }),
          ]),
        ),
    );
  results.online_s = round((performance.now() - t0) / 1000);
  console.log(`${WORKERS} workers online in ${results.online_s} s`);

  // 2. Heartbeats: worker i beats at i/N × 2 s, then every 2 s.
  const windows = [];
  let sent = 0;
  let failed = 0;
  const start = performance.now();
  const inflight = new Set();
  const latencies = [];
  let window = { from: 0, latencies: [] };
  for (let k = 0; ; k++) {
    const at = (k / WORKERS) * FREQ * 1000;
    if (at > SECONDS * 1000) break;
    const wait = start + at - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const elapsed = performance.now() - start;
    if (elapsed - window.from >= 10_000) {
      windows.push(window);
      window = { from: window.from + 10_000, latencies: [] };
    }
    const host = hosts[k % WORKERS];
    const active = Array.from({ length: k % 4 }, (_, j) => `${host}-task-${j}`);
    const w = window;
    const p = post(server.base, [event(host, "heartbeat", { active })])
      .then((ms) => {
        w.latencies.push(ms);
        latencies.push(ms);
      })
      .catch(() => failed++)
      .finally(() => inflight.delete(p));
    inflight.add(p);
    sent++;
  }
  await Promise.all(inflight);
  windows.push(window);
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  results.heartbeats = {
    sent,
    failed,
    seconds: round(seconds),
    offered_per_s: Math.round((WORKERS / FREQ) * 10) / 10,
    achieved_per_s: Math.round(sent / seconds),
    latency_ms: {
      p50: round(pct(latencies, 50)),
      p95: round(pct(latencies, 95)),
      p99: round(pct(latencies, 99)),
      max: round(latencies[latencies.length - 1] ?? null),
    },
    windows: windows.map((w) => {
      const s = w.latencies.sort((a, b) => a - b);
      return {
        from_s: w.from / 1000,
        requests: s.length,
        p50_ms: round(pct(s, 50)),
        p95_ms: round(pct(s, 95)),
      };
    }),
  };
  console.log("heartbeats", results.heartbeats);

  // 3. Nobody falsely lost; the Fleet still answers promptly.
  const t1 = performance.now();
  const list = await (await fetch(`${server.base}/api/workers`)).json();
  results.after = {
    list_ms: Math.round(performance.now() - t1),
    online: list.workers.filter((w) => w.status === "ONLINE").length,
    lost: list.workers.filter((w) => w.status === "LOST").length,
  };
  try {
    results.workerd_rss_mib = Math.round(
      execSync("ps -eo rss,comm | grep -i workerd", { encoding: "utf8" })
        .trim()
        .split("\n")
        .reduce((s, l) => s + Number(l.trim().split(/\s+/)[0] || 0), 0) / 1024,
    );
  } catch {
    results.workerd_rss_mib = null;
  }
  console.log("after", results.after);
} finally {
  await server.stop();
}
results.load_after = load();
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/fleet.json"), JSON.stringify(results, null, 2) + "\n");
const h = results.heartbeats;
const md = `# Fleet under heartbeats (bench/fleet-heartbeats.mjs)

Target: the Fleet handles ${WORKERS.toLocaleString("en")} workers heartbeating every ${FREQ} s (≈ ${h.offered_per_s} events/s) without falling behind.

- date: ${results.date}
- machine: ${results.machine}; ${results.node}; load average before ${results.load_before}, after ${results.load_after}
- through \`wrangler dev\` (local workerd): every heartbeat is its own POST /v1/events with one event (as each worker's producer sends it), over at most 64 keep-alive connections; 20 registered task definitions per worker

| | value |
|---|---|
| workers online (one POST each, 50 at a time) | ${WORKERS} in ${results.online_s} s |
| heartbeats sent / failed | ${h.sent} / ${h.failed} over ${h.seconds} s |
| offered → achieved rate | ${h.offered_per_s} → ${h.achieved_per_s} events/s |
| latency p50 / p95 / p99 / max | ${h.latency_ms.p50} / ${h.latency_ms.p95} / ${h.latency_ms.p99} / ${h.latency_ms.max} ms |
| wrangler dev's own ceiling (GET /api/health, 64 connections) | ${results.dev_server_ceiling_req_per_s} req/s |
| workers ONLINE / LOST afterwards | ${results.after.online} / ${results.after.lost} |
| GET /api/workers (all ${WORKERS}) | ${results.after.list_ms} ms |
| workerd RSS at the end | ${results.workerd_rss_mib} MiB |

Latency per 10 s window (growing latency would mean the Fleet falls behind):

| from | requests | p50 ms | p95 ms |
|---:|---:|---:|---:|
${h.windows.map((w) => `| ${w.from_s} s | ${w.requests} | ${w.p50_ms} | ${w.p95_ms} |`).join("\n")}

Run: \`node_modules/.bin/node bench/fleet-heartbeats.mjs [--workers 1000] [--seconds 40]\`.
`;
writeFileSync(join(ROOT, "bench/results/fleet.md"), md);
console.log(md);
