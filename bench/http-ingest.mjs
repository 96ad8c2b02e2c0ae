/**
 * HTTP ingestion through `wrangler dev`, end to end: 100-event batches POSTed by concurrent clients
 * over many traces (events/s, repeated; CPU per batch of every process of this `wrangler dev`), then
 * one 100,000-task trace while sampling this workerd's memory (RSS split into anonymous and
 * file-backed, the isolate's JS heap, the Durable Objects' SQLite files on disk), then the same
 * requests again (all duplicates: nothing stored) and as many requests that validation rejects
 * (no Durable Object called at all), as controls for per-request overhead.
 * Writes bench/results/ingest-http.json.
 *   node_modules/.bin/node bench/http-ingest.mjs [--tasks-big 100000] [--runs 3] [--profile]
 * --profile adds one more throughput run (left out of the median) with a CPU profile of the
 * Worker's isolate, and writes its summary (self and inclusive time per function) to bench/results/ingest-http-profile.json.
 */
import { readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { writeIngestReport } from "./ingest-report.mjs";
import { connectInspector, summarizeProfile } from "./inspector.mjs";
import { ROOT, startWranglerDev } from "./wrangler-dev.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const bigTasks = option("--tasks-big", 100_000);
const runs = option("--runs", 3);
const profile = args.includes("--profile");

function syntheticTrace(traceId, tasks, startTs = Date.now() / 1000) {
  const types = ["published", "received", "started", "succeeded", "postrun"];
  const events = [];
  for (let i = 0; i < tasks; i++) {
    const taskId = i === 0 ? traceId : `${traceId}-t${i}`;
    types.forEach((type, k) =>
      events.push({
        v: 1,
        id: `${taskId}-e${k}`,
        kind: "task",
        type,
        ts: startTs + i * 0.001 + k * 0.0001,
        seq: i * 5 + k,
        host: type === "published" ? null : "bench@host",
        pid: 100,
        task_id: taskId,
        name: `app.step${i % 7}`,
        trace_id: traceId,
        root_id: traceId,
        parent_id: i === 0 ? null : traceId,
        retries: 0,
        queue: "celery",
        args: [i],
        kwargs: {},
        ...(type === "postrun" ? { state: "SUCCESS", runtime_ms: 2.5 } : {}),
      }),
    );
  }
  return events;
}

function batchesOf(events, size = 100) {
  const out = [];
  for (let i = 0; i < events.length; i += size)
    out.push(JSON.stringify({ events: events.slice(i, i + size) }));
  return out;
}

/** The processes of this `wrangler dev` (its process group), never other people's workerd. */
function ownProcesses(pgid) {
  const out = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const role = argv[0].endsWith("/workerd")
        ? argv.some((a) => a.startsWith("--inspector-addr"))
          ? "workerd (Worker + Durable Objects)"
          : "workerd (wrangler's proxy)"
        : argv[0].endsWith("/esbuild")
          ? "esbuild"
          : "node (wrangler)";
      out.push({ pid: Number(entry), role, cpu_s: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** RSS of one process from smaps_rollup, in MiB: anonymous (heaps, caches) vs file-backed (binary). */
function memoryOf(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return {
    rss_mib: Math.round(kib("Rss") / 1024),
    anon_mib: Math.round(kib("Anonymous") / 1024),
    file_mib: Math.round((kib("Rss") - kib("Anonymous")) / 1024),
  };
}

/** Bytes on disk under the wrangler persist directory, split into TraceGraph objects and the rest. */
function storageOf(dir) {
  let traceGraph = 0;
  let other = 0;
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (path.includes("TraceGraph")) traceGraph += st.size;
      else other += st.size;
    }
  };
  walk(dir);
  return { trace_graph_mib: +(traceGraph / 2 ** 20).toFixed(1), other_mib: +(other / 2 ** 20).toFixed(1) };
}

const loadavg = () => os.loadavg().map((n) => +n.toFixed(2));

async function postAll(base, batches, concurrency) {
  let next = 0;
  let accepted = 0;
  const worker = async () => {
    while (next < batches.length) {
      const body = batches[next++];
      const res = await fetch(`${base}/v1/events`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      });
      if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
      const answer = await res.json(); // read before adding: `accepted += await …` would lose concurrent updates
      accepted += answer.accepted;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return accepted;
}

const server = await startWranglerDev();
const cpus = os.cpus();
const results = {
  date: new Date().toISOString(),
  machine: `${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${cpus[0]?.model}`,
  node: process.version,
  load_average_start: loadavg(),
};
let inspector;
try {
  const processes = ownProcesses(server.pid);
  const isolatePid = processes.find((p) => p.role.startsWith("workerd (Worker"))?.pid;
  if (!isolatePid) throw new Error("could not find the Worker's workerd process");

  // 1. Throughput: per run 200 new traces × 100 tasks × 5 events = 100,000 events, 100 per batch,
  //    8 concurrent clients; the first 20 batches of run 0 warm up and are not counted.
  const concurrency = 8;
  const runResults = [];
  const totalRuns = runs + (profile ? 1 : 0); // the profiled run is extra and left out of the median
  for (let run = 0; run < totalRuns; run++) {
    let batches = [];
    for (let t = 0; t < 200; t++) batches.push(...batchesOf(syntheticTrace(`tp${run}-${t}`, 100)));
    if (run === 0) {
      await postAll(server.base, batches.slice(0, 20), 4);
      batches = batches.slice(20);
    }
    if (profile && run === runs) {
      inspector ??= await connectInspector(server.inspector);
      await inspector.startProfile();
    }
    const load = loadavg();
    const before = ownProcesses(server.pid);
    const t0 = performance.now();
    const accepted = await postAll(server.base, batches, concurrency);
    const secs = (performance.now() - t0) / 1000;
    const after = ownProcesses(server.pid);
    const cpu = after.map((p) => {
      const used = p.cpu_s - (before.find((b) => b.pid === p.pid)?.cpu_s ?? 0);
      return {
        role: p.role,
        cpu_pct: Math.round((100 * used) / secs),
        cpu_ms_per_batch: +((1000 * used) / batches.length).toFixed(2),
      };
    });
    const r = {
      events: accepted,
      seconds: +secs.toFixed(2),
      events_per_s: Math.round(accepted / secs),
      load_average: load,
      cpu,
    };
    if (profile && run === runs) {
      const summary = summarizeProfile(await inspector.stopProfile());
      r.profiled = true;
      mkdirSync(join(ROOT, "bench/results"), { recursive: true });
      writeFileSync(
        join(ROOT, "bench/results/ingest-http-profile.json"),
        JSON.stringify({ date: results.date, run: r, ...summary }, null, 2) + "\n",
      );
    }
    runResults.push(r);
    console.log("throughput run", run, JSON.stringify(r));
  }
  const sorted = runResults
    .filter((r) => !r.profiled)
    .map((r) => r.events_per_s)
    .sort((a, b) => a - b);
  results.throughput = {
    batch: 100,
    concurrency,
    median_events_per_s: sorted[Math.floor(sorted.length / 2)],
    runs: runResults,
  };

  // 2. One 100,000-task trace (500,000 events): memory sampled every 10% of the way.
  inspector?.close(); // wrangler's proxy drops idle sessions: one short session per sample
  inspector = undefined;
  const heapUsage = async () => {
    const session = await connectInspector(server.inspector);
    try {
      return await session.heapUsage();
    } finally {
      session.close();
    }
  };
  const samples = [];
  const sample = async (tasks) => {
    const s = {
      tasks,
      ...memoryOf(isolatePid),
      js_heap: await heapUsage(),
      storage: storageOf(server.persist),
      proxy_rss_mib: memoryOf(processes.find((p) => p.role.includes("proxy")).pid).rss_mib,
    };
    samples.push(s);
    console.log("big trace", JSON.stringify(s));
  };
  await sample(0);
  const bigBatches = batchesOf(syntheticTrace("big-trace", bigTasks));
  const step = Math.ceil(bigBatches.length / 10);
  const t1 = performance.now();
  let bigIngestMs = 0;
  for (let i = 0; i < bigBatches.length; i += step) {
    const t = performance.now();
    await postAll(server.base, bigBatches.slice(i, i + step), 4);
    bigIngestMs += performance.now() - t;
    await sample(Math.min(bigTasks, Math.round(((i + step) * 100) / 5)));
  }
  results.big_trace = {
    tasks: bigTasks,
    events: bigTasks * 5,
    seconds: +((performance.now() - t1) / 1000).toFixed(1),
    ingest_events_per_s: Math.round((bigTasks * 5) / (bigIngestMs / 1000)),
    samples,
  };
  // 3. Control: the same 5,000 requests again. Every event is now a duplicate, so the TraceGraph
  //    stores nothing and its SQLite does not grow: memory that still grows is per-request
  //    overhead of wrangler dev's workerd processes, not the Durable Object's.
  const replay = [];
  const replaySample = () => {
    const s = {
      requests: replay.length * step,
      ...memoryOf(isolatePid),
      proxy_rss_mib: memoryOf(processes.find((p) => p.role.includes("proxy")).pid).rss_mib,
      storage: storageOf(server.persist),
    };
    replay.push(s);
    console.log("replay", JSON.stringify(s));
  };
  replaySample();
  for (let i = 0; i < bigBatches.length; i += step) {
    const accepted = await postAll(server.base, bigBatches.slice(i, i + step), 4);
    if (accepted !== 0) throw new Error(`the replay accepted ${accepted} events`);
    replaySample();
  }
  results.big_trace.replay_all_duplicates = replay;

  // 4. Control without any Durable Object: as many requests of 100 events that validation rejects
  //    (wire version 2), so the Worker answers them itself and no TraceGraph or index is called.
  const rejectedBatch = JSON.stringify({
    events: syntheticTrace("never-stored", 20).map((e) => ({ ...e, v: 2 })),
  });
  const noDo = [];
  const noDoSample = () => {
    const s = {
      requests: noDo.length * step,
      ...memoryOf(isolatePid),
      proxy_rss_mib: memoryOf(processes.find((p) => p.role.includes("proxy")).pid).rss_mib,
    };
    noDo.push(s);
    console.log("rejected-only", JSON.stringify(s));
  };
  noDoSample();
  for (let i = 0; i < bigBatches.length; i += step) {
    await postAll(
      server.base,
      Array.from({ length: Math.min(step, bigBatches.length - i) }, () => rejectedBatch),
      4,
    );
    noDoSample();
  }
  results.big_trace.control_rejected_only = noDo;

  const t2 = performance.now();
  const snap = await fetch(`${server.base}/api/traces/big-trace`);
  const body = await snap.json();
  results.big_trace.snapshot = {
    ms: Math.round(performance.now() - t2),
    status: snap.status,
    nodes: body.nodes?.length ?? null,
    truncated: body.truncated ?? null,
    error: body.error?.message,
  };
  console.log("big snapshot", results.big_trace.snapshot);
  results.load_average_end = loadavg();
} finally {
  inspector?.close();
  await server.stop();
}
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/ingest-http.json"), JSON.stringify(results, null, 2) + "\n");
writeIngestReport();
console.log(JSON.stringify(results, null, 2));
