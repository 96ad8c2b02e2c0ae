/**
 * HTTP ingestion through `wrangler dev`, end to end: 100-event batches POSTed by concurrent clients
 * over many traces (events/s), then one 100,000-task trace while sampling workerd's RSS (memory
 * must stay bounded: no whole-trace copies per event). Writes bench/results/ingest-http.json.
 *   node_modules/.bin/node bench/http-ingest.mjs [--tasks-big 100000]
 */
import { execSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { ROOT, startWranglerDev } from "./wrangler-dev.mjs";

const args = process.argv.slice(2);
const bigTasks = Number(args[args.indexOf("--tasks-big") + 1] || 100_000);

function syntheticTrace(traceId, tasks, startTs = Date.now() / 1000) {
  const types = ["published", "received", "started", "succeeded", "postrun"];
  const events = [];
  for (let i = 0; i < tasks; i++) {
    const taskId = i === 0 ? traceId : `${traceId}-t${i}`;
    types.forEach((type, k) =>
      events.push({
        v: 1, id: `${taskId}-e${k}`, kind: "task", type, ts: startTs + i * 0.001 + k * 0.0001, seq: i * 5 + k,
        host: type === "published" ? null : "bench@host", pid: 100, task_id: taskId, name: `app.step${i % 7}`,
        trace_id: traceId, root_id: traceId, parent_id: i === 0 ? null : traceId, retries: 0, queue: "celery",
        args: [i], kwargs: {}, ...(type === "postrun" ? { state: "SUCCESS", runtime_ms: 2.5 } : {}),
      }),
    );
  }
  return events;
}

function workerdRss() {
  try {
    const out = execSync("ps -eo rss,comm | grep -i workerd", { encoding: "utf8" });
    return out.trim().split("\n").reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[0] || 0), 0) * 1024;
  } catch {
    return 0;
  }
}

async function postAll(base, batches, concurrency) {
  let next = 0;
  let accepted = 0;
  const worker = async () => {
    while (next < batches.length) {
      const body = batches[next++];
      const res = await fetch(`${base}/v1/events`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
      if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
      const answer = await res.json(); // read before adding: `accepted += await …` would lose concurrent updates
      accepted += answer.accepted;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return accepted;
}

const server = await startWranglerDev();
const results = { date: new Date().toISOString(), machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model}`, node: process.version };
try {
  // 1. Throughput: 200 traces × 100 tasks × 5 events = 100,000 events, 100 per batch.
  const batches = [];
  for (let t = 0; t < 200; t++) {
    const events = syntheticTrace(`tp-${t}`, 100);
    for (let i = 0; i < events.length; i += 100) batches.push(JSON.stringify({ events: events.slice(i, i + 100) }));
  }
  await postAll(server.base, batches.slice(0, 20), 4); // warm-up
  const t0 = performance.now();
  const accepted = await postAll(server.base, batches.slice(20), 8);
  const secs = (performance.now() - t0) / 1000;
  results.throughput = { events: accepted, seconds: +secs.toFixed(2), events_per_s: Math.round(accepted / secs), batch: 100, concurrency: 8 };
  console.log("throughput", results.throughput);

  // 2. One 100,000-task trace (500,000 events): RSS sampled every 10% of the way.
  const rss = [];
  const big = syntheticTrace("big-trace", bigTasks);
  const bigBatches = [];
  for (let i = 0; i < big.length; i += 100) bigBatches.push(JSON.stringify({ events: big.slice(i, i + 100) }));
  const step = Math.ceil(bigBatches.length / 10);
  const t1 = performance.now();
  for (let i = 0; i < bigBatches.length; i += step) {
    await postAll(server.base, bigBatches.slice(i, i + step), 4);
    rss.push({ tasks: Math.min(bigTasks, Math.round(((i + step) * 100) / 5)), rss_mib: Math.round(workerdRss() / 2 ** 20) });
    console.log("big trace", rss[rss.length - 1]);
  }
  results.big_trace = { tasks: bigTasks, events: big.length, seconds: +((performance.now() - t1) / 1000).toFixed(1), rss_samples: rss };
  const t2 = performance.now();
  const snap = await fetch(`${server.base}/api/traces/big-trace`);
  const body = await snap.json();
  results.big_trace.snapshot = { ms: Math.round(performance.now() - t2), status: snap.status, nodes: body.nodes?.length ?? null, error: body.error?.message };
  console.log("big snapshot", results.big_trace.snapshot);
} finally {
  await server.stop();
}
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/ingest-http.json"), JSON.stringify(results, null, 2) + "\n");
console.log(JSON.stringify(results, null, 2));
