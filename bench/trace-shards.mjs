/**
 * Trace placement on `TRACE_SHARDS` Durable Objects, measured over HTTP through `wrangler dev`: one
 * fresh `wrangler dev` per shard count (`--var TRACE_SHARDS:k`; 0 = one TraceGraph per trace), 4
 * concurrent clients, 1,000-event batches, every event a valid wire v1 task event:
 *   1. independent vs packed, exactly as the fanout benchmark (kept outside this repository): 40 batches of independent
 *      tasks (one trace each, 5 events per task) against the same events packed into one trace per
 *      batch; one packed warm-up run first; `--rounds` rounds, medians, and their ratio;
 *   2. a realistic mix: 80% standalone tasks and 20% of the tasks in chains, groups and chords of
 *      3–50 tasks (seeded PRNG, `--seed`), their events interleaved as concurrent work would be and
 *      cut into 40 batches of 1,000; events/s (median of `--rounds`) and its ratio to the packed
 *      rate of the same configuration;
 *   3. one very large trace: `--big-tasks` tasks (5 events each) in one trace, timed by tenths;
 *   4. a snapshot among neighbours: a 10,000-task trace ingested interleaved with 10,000 one-task
 *      traces placed on the same shard, then `GET /api/traces/<id>` 5 times (median and max ms; the
 *      answer must hold exactly the 10,000 tasks).
 * Every POST must answer 202 with an empty `rejected`; the ones that do not are counted and reported.
 * Writes bench/results/<prefix>.json (machine, date, load average around each configuration, every
 * run's raw numbers) and bench/results/<prefix>.md (one row per shard count); progress on stderr.
 *
 *   node_modules/.bin/node bench/trace-shards.mjs [--shards 0,8,16,32] [--rounds 3] [--big-tasks 100000]
 *       [--snapshot-tasks 10000] [--neighbours 10000] [--seed 1] [--out-prefix shards] [--base URL]
 *
 * --base URL runs the phases once against a server that is already running (labelled 'external');
 * then --shards may give that server's TRACE_SHARDS (one value), used only to put the snapshot's
 * neighbours on its shard (default 0: no placement). Ids then carry a per-run tag so that a second
 * run against the same server is not deduplicated away.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { ROOT, startWranglerDev } from "./wrangler-dev.mjs";

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
function option(name) {
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  if (eq) return eq.slice(name.length + 1);
  const at = argv.indexOf(name);
  if (at === -1) return undefined;
  const value = argv[at + 1];
  if (value === undefined || value.startsWith("--")) throw new Error(`${name} needs a value`);
  return value;
}
function intOption(name, fallback, min) {
  const raw = option(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${name} must be an integer ≥ ${min}, not ${JSON.stringify(raw)}`);
  return n;
}
const known = [
  "--shards",
  "--rounds",
  "--big-tasks",
  "--snapshot-tasks",
  "--neighbours",
  "--seed",
  "--out-prefix",
  "--base",
];
for (const a of argv)
  if (a.startsWith("--") && !known.includes(a.split("=")[0]))
    throw new Error(`unknown option ${a}; options: ${known.join(" ")}`);

const base = option("--base")?.replace(/\/+$/, "");
const shardsGiven = option("--shards");
const shardList = (shardsGiven ?? (base ? "0" : "0,8,16,32")).split(",").map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--shards takes integers ≥ 0, comma-separated, not ${JSON.stringify(shardsGiven)}`);
  return n;
});
if (base && shardList.length !== 1)
  throw new Error("with --base, --shards gives the running server's TRACE_SHARDS: one value");
const opts = {
  shards: shardList,
  rounds: intOption("--rounds", 3, 1),
  big_tasks: intOption("--big-tasks", 100_000, 1),
  snapshot_tasks: intOption("--snapshot-tasks", 10_000, 1),
  neighbours: intOption("--neighbours", 10_000, 0),
  seed: intOption("--seed", 1, 0),
  out_prefix: option("--out-prefix") ?? "shards",
  base: base ?? null,
};
if (!/^[\w.-]+$/.test(opts.out_prefix))
  throw new Error(`--out-prefix must be a plain file name prefix, not ${JSON.stringify(opts.out_prefix)}`);

const CLIENTS = 4; // concurrent clients, every phase
const PER_BATCH = 1000; // events per POST
const BATCHES_PER_RUN = 40; // phases 1 and 2, as fanout.mjs
const SNAPSHOT_RUNS = 5;
const MIX_WINDOW = 64; // units (standalone tasks or workflows) in flight at once in the mix
const WORKFLOW_SHARE = 0.2; // of the mix's tasks
/** Ids carry this tag: fixed on a fresh server (reproducible placement), unique against --base. */
const TAG = base ? Date.now().toString(36) : "0";

// ---------------------------------------------------------------------------------------------
// Trace placement: the contract of durable-objects/shards.ts (`traceObjectName(traceKey, shards)`),
// re-implemented here because plain Node cannot import TypeScript; the rewrite follows it exactly:
//   shardIndex = fnv1a32(utf8 bytes of traceKey) % shards, FNV-1a 32-bit (offset 2166136261,
//   prime 16777619, Math.imul, >>> 0), object name `shard-${shardIndex}-of-${shards}`.
//   With shards 0 every trace is its own object (named by its trace key), today's layout.

export function fnv1a32(text) {
  let hash = 2166136261;
  for (const byte of Buffer.from(text, "utf8")) hash = Math.imul(hash ^ byte, 16777619);
  return hash >>> 0;
}
export const shardIndex = (traceKey, shards) => fnv1a32(traceKey) % shards;
export const traceObjectName = (traceKey, shards) =>
  shards > 0 ? `shard-${shardIndex(traceKey, shards)}-of-${shards}` : traceKey;
// Published FNV-1a 32 test vectors, so a slip in the hash cannot go unnoticed.
for (const [text, want] of [
  ["", 0x811c9dc5],
  ["a", 0xe40c292c],
  ["foobar", 0xbf9cf968],
])
  if (fnv1a32(text) !== want)
    throw new Error(`fnv1a32(${JSON.stringify(text)}) = ${fnv1a32(text)}, expected ${want}`);

// ---------------------------------------------------------------------------------------------
// Helpers

const T0 = performance.now();
const log = (...parts) =>
  console.error(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(6)}s]`, ...parts);
const loadavg = () => os.loadavg().map((n) => +n.toFixed(2));
const median = (a) => (a.length ? [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] : null);
const fmt = (x) => (typeof x === "number" ? Math.round(x).toLocaleString("en-US") : "–");
const ratio = (a, b) => (a && b ? +(a / b).toFixed(3) : null);

/** Seeded PRNG (mulberry32): the same seed gives the same mix. */
function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randInt = (rnd, lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

/** A fresh tally of POSTs; every answer that is not 202 with an empty `rejected` counts as bad. */
const newTally = () => ({
  posts: 0,
  bad: 0,
  accepted: 0,
  duplicates: 0,
  rejected_events: 0,
  bad_samples: [],
});
function addTally(into, t) {
  for (const k of ["posts", "bad", "accepted", "duplicates", "rejected_events"]) into[k] += t[k];
  for (const s of t.bad_samples) if (into.bad_samples.length < 5) into.bad_samples.push(s);
}

/** POSTs `bodies` ({body, events}) with CLIENTS concurrent clients; returns the tally and the wall time. */
async function postAll(url, bodies, clients = CLIENTS) {
  const tally = newTally();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < bodies.length) {
        const { body } = bodies[next++];
        const res = await fetch(`${url}/v1/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        const text = await res.text();
        let answer = null;
        try {
          answer = JSON.parse(text);
        } catch {
          // counted below
        }
        tally.posts++;
        tally.accepted += answer?.accepted ?? 0;
        tally.duplicates += answer?.duplicates ?? 0;
        const rejected = Array.isArray(answer?.rejected) ? answer.rejected.length : 0;
        tally.rejected_events += rejected;
        if (res.status !== 202 || !Array.isArray(answer?.rejected) || rejected > 0) {
          tally.bad++;
          if (tally.bad_samples.length < 5)
            tally.bad_samples.push({ status: res.status, body: text.slice(0, 400) });
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const events = bodies.reduce((n, b) => n + b.events, 0);
  return { events, seconds: +seconds.toFixed(3), events_per_s: Math.round(events / seconds), ...tally };
}

const toBodies = (events) => {
  const out = [];
  for (let i = 0; i < events.length; i += PER_BATCH) {
    const slice = events.slice(i, i + PER_BATCH);
    out.push({ body: JSON.stringify({ events: slice }), events: slice.length });
  }
  return out;
};

/** The five events of one task that runs and succeeds, as fanout.mjs and http-ingest.mjs send them. */
function plainTask(taskId, traceId, rootId, parentId, t, ts0) {
  return ["published", "received", "started", "succeeded", "postrun"].map((type, k) => ({
    v: 1,
    id: `${taskId}-e${k}`,
    kind: "task",
    type,
    ts: ts0 + t * 0.001 + k * 0.0001,
    seq: t * 5 + k,
    host: type === "published" ? null : "bench@host",
    pid: 100,
    task_id: taskId,
    name: `app.job${t % 5}`,
    trace_id: traceId,
    root_id: rootId,
    parent_id: parentId,
    retries: 0,
    queue: "celery",
    args: [t],
    kwargs: {},
    ...(type === "succeeded" ? { result: t } : {}),
    ...(type === "postrun" ? { state: "SUCCESS", runtime_ms: 1 } : {}),
  }));
}

// ---------------------------------------------------------------------------------------------
// 1. Independent vs packed (the fanout benchmark (kept outside this repository): same events, batches, clients, order)

let fanoutBatchNo = 0;
function fanoutBatch(oneTrace) {
  const evs = [];
  const tb = `b${TAG}-${fanoutBatchNo++}`;
  const ts0 = Date.now() / 1000;
  for (let t = 0; evs.length < PER_BATCH; t++) {
    const id = `${tb}-t${t}`;
    evs.push(...plainTask(id, oneTrace ? tb : id, oneTrace ? tb : id, null, t, ts0));
  }
  const events = evs.slice(0, PER_BATCH);
  return { body: JSON.stringify({ events }), events: events.length };
}

async function fanoutRun(url, oneTrace) {
  const bodies = Array.from({ length: BATCHES_PER_RUN }, () => fanoutBatch(oneTrace));
  const load = loadavg();
  return { load_average: load, ...(await postAll(url, bodies)) };
}

async function phaseFanout(url, label, tally) {
  const warmup = await fanoutRun(url, true);
  addTally(tally, warmup);
  log(`${label} independent/packed: warm-up (packed) ${fmt(warmup.events_per_s)} ev/s`);
  const independent = [];
  const packed = [];
  for (let r = 0; r < opts.rounds; r++) {
    const many = await fanoutRun(url, false);
    addTally(tally, many);
    independent.push(many);
    const one = await fanoutRun(url, true);
    addTally(tally, one);
    packed.push(one);
    log(
      `${label} independent/packed: round ${r + 1}/${opts.rounds}: independent ${fmt(many.events_per_s)} ev/s, packed ${fmt(one.events_per_s)} ev/s${many.bad + one.bad ? `, ${many.bad + one.bad} bad POSTs` : ""}`,
    );
  }
  const out = {
    warmup,
    independent,
    packed,
    independent_median_events_per_s: median(independent.map((r) => r.events_per_s)),
    packed_median_events_per_s: median(packed.map((r) => r.events_per_s)),
  };
  out.ratio = ratio(out.independent_median_events_per_s, out.packed_median_events_per_s);
  log(
    `${label} independent/packed: medians ${fmt(out.independent_median_events_per_s)} / ${fmt(out.packed_median_events_per_s)} ev/s, ratio ${out.ratio}`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// 2. Realistic mix: standalone tasks, chains, groups, chords (fields as test/fixtures/wire/05–07)

/** Interleaves sequences, keeping each one's order: `window` of them in flight, a random one moves. */
function interleave(seqs, window, rnd) {
  const out = [];
  const active = [];
  let next = 0;
  while (active.length < window && next < seqs.length) active.push({ seq: seqs[next++], at: 0 });
  while (active.length) {
    const k = Math.floor(rnd() * active.length);
    const a = active[k];
    out.push(a.seq[a.at++]);
    if (a.at === a.seq.length) {
      if (next < seqs.length) active[k] = { seq: seqs[next++], at: 0 };
      else {
        active[k] = active[active.length - 1];
        active.pop();
      }
    }
  }
  return out;
}

/**
 * One task's events for the mix (ts and seq are set once the stream is interleaved): the message's
 * fields (`msg`: root, parent, group, chain, chord callback) on `published` and `received` only,
 * as the producer sends them; `publisher` is the task that published it (from a worker) or null (a client).
 */
function mixTask(taskId, name, traceId, msg, publisher, arg) {
  const common = {
    v: 1,
    kind: "task",
    task_id: taskId,
    name,
    trace_id: traceId,
    pid: 100,
    retries: 0,
    queue: "celery",
  };
  const ev = (type, extra) => ({
    ...common,
    id: `${taskId}-${type}`,
    type,
    ts: 0,
    seq: 0,
    host: "bench@host",
    ...extra,
  });
  return {
    published: ev("published", {
      host: publisher ? "bench@host" : null,
      ...msg,
      ...(publisher ? { publisher_task_id: publisher } : {}),
      args: [arg],
      kwargs: {},
    }),
    received: ev("received", msg),
    started: ev("started", {}),
    succeeded: ev("succeeded", { result: arg, runtime_ms: 1.5, state: "SUCCESS" }),
    postrun: ev("postrun", { state: "SUCCESS", runtime_ms: 1.5 }),
  };
}
const lifecycle = (t) => [t.received, t.started, t.succeeded, t.postrun];

function standalone(id) {
  const t = mixTask(id, "app.job", id, { root_id: id }, null, 1);
  return [t.published, ...lifecycle(t)];
}

/** Chain of n: the first step is published by the client with every later step announced (in
 *  execution order); each step publishes the next while it runs, announcing the rest. Trace = first step. */
function chain(prefix, n) {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-t${i}`);
  const names = ids.map((_, i) => `app.chain_step${i % 4}`);
  const announce = (from) => ids.slice(from).map((task_id, j) => ({ name: names[from + j], task_id }));
  const tasks = ids.map((id, i) =>
    mixTask(
      id,
      names[i],
      ids[0],
      {
        root_id: ids[0],
        ...(i ? { parent_id: ids[i - 1] } : {}),
        ...(i < n - 1 ? { chain: announce(i + 1) } : {}),
      },
      i ? ids[i - 1] : null,
      i,
    ),
  );
  const out = [tasks[0].published];
  tasks.forEach((t, i) => {
    out.push(t.received, t.started);
    if (i < n - 1) out.push(tasks[i + 1].published);
    out.push(t.succeeded, t.postrun);
  });
  return out;
}

/** Group of n: every member published by the client with the group id (its own root id, as Celery
 *  5.2 does), then run by 4 worker processes. Trace = group id. */
function group(prefix, n, rnd) {
  const gid = prefix;
  const tasks = Array.from({ length: n }, (_, i) =>
    mixTask(
      `${prefix}-t${i}`,
      "app.group_member",
      gid,
      { root_id: `${prefix}-t${i}`, group_id: gid },
      null,
      i,
    ),
  );
  return [...tasks.map((t) => t.published), ...interleave(tasks.map(lifecycle), 4, rnd)];
}

/** Chord of n tasks: n - 1 header tasks (group id, index, the callback's id and name), then the
 *  callback, published by the last header task to finish while it ends. Trace = group id. */
function chord(prefix, n, rnd) {
  const gid = prefix;
  const cbId = `${prefix}-cb`;
  const header = Array.from({ length: n - 1 }, (_, i) =>
    mixTask(
      `${prefix}-t${i}`,
      "app.chord_part",
      gid,
      {
        root_id: `${prefix}-t${i}`,
        group_id: gid,
        group_index: i,
        chord_callback_id: cbId,
        chord_callback_name: "app.chord_sum",
      },
      null,
      i,
    ),
  );
  const run = interleave(header.map(lifecycle), 4, rnd);
  const lastSucceeded = run.findLastIndex((e) => e.type === "succeeded");
  const last = run[lastSucceeded].task_id;
  const cb = mixTask(cbId, "app.chord_sum", gid, { root_id: last, parent_id: last }, last, n);
  run.splice(lastSucceeded, 0, cb.published);
  return [...header.map((t) => t.published), ...run, ...lifecycle(cb)];
}

/** One mix run's batches: `BATCHES_PER_RUN × PER_BATCH` events, 5 per task. */
function buildMix(seed, prefix, shards) {
  const rnd = mulberry32(seed);
  const totalTasks = (BATCHES_PER_RUN * PER_BATCH) / 5;
  const workflowTarget = Math.round(totalTasks * WORKFLOW_SHARE);
  const units = [];
  const stats = {
    seed,
    tasks: totalTasks,
    standalone_tasks: 0,
    workflows: { chain: 0, group: 0, chord: 0 },
    workflow_tasks: { chain: 0, group: 0, chord: 0 },
    workflow_sizes: [],
  };
  let inWorkflows = 0;
  for (let w = 0; workflowTarget - inWorkflows >= 3; w++) {
    const kind = ["chain", "group", "chord"][Math.floor(rnd() * 3)];
    const n = Math.min(randInt(rnd, 3, 50), workflowTarget - inWorkflows);
    if (workflowTarget - inWorkflows - n > 0 && workflowTarget - inWorkflows - n < 3) continue; // keep the remainder usable
    const id = `${prefix}-${{ chain: "c", group: "g", chord: "h" }[kind]}${w}`;
    units.push(kind === "chain" ? chain(id, n) : kind === "group" ? group(id, n, rnd) : chord(id, n, rnd));
    stats.workflows[kind]++;
    stats.workflow_tasks[kind] += n;
    stats.workflow_sizes.push(n);
    inWorkflows += n;
  }
  stats.standalone_tasks = totalTasks - inWorkflows;
  for (let i = 0; i < stats.standalone_tasks; i++) units.push(standalone(`${prefix}-s${i}`));
  for (let i = units.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [units[i], units[j]] = [units[j], units[i]];
  }
  const stream = interleave(units, MIX_WINDOW, rnd);
  const ts0 = Date.now() / 1000;
  stream.forEach((e, i) => {
    e.ts = +(ts0 + i * 0.0005).toFixed(6);
    e.seq = i;
  });
  if (stream.length !== BATCHES_PER_RUN * PER_BATCH) throw new Error(`the mix has ${stream.length} events`);
  const bodies = toBodies(stream);
  // What the batches look like to the Worker: distinct traces (and shards) per batch, body size.
  const traces = [];
  const objects = [];
  for (let i = 0; i < stream.length; i += PER_BATCH) {
    const keys = new Set(stream.slice(i, i + PER_BATCH).map((e) => e.trace_id ?? e.root_id ?? e.task_id));
    traces.push(keys.size);
    objects.push(new Set([...keys].map((k) => traceObjectName(k, shards))).size);
  }
  stats.workflow_share = +(inWorkflows / totalTasks).toFixed(3);
  stats.traces_per_batch = {
    mean: +(traces.reduce((a, b) => a + b, 0) / traces.length).toFixed(1),
    max: Math.max(...traces),
  };
  stats.trace_objects_per_batch = {
    mean: +(objects.reduce((a, b) => a + b, 0) / objects.length).toFixed(1),
    max: Math.max(...objects),
  };
  stats.max_body_bytes = Math.max(...bodies.map((b) => Buffer.byteLength(b.body)));
  if (stats.max_body_bytes > 1024 * 1024)
    throw new Error(`a mix batch is ${stats.max_body_bytes} bytes, over the 1 MiB limit`);
  return { bodies, stats };
}

async function phaseMix(url, label, shards, tally, packedMedian) {
  const runs = [];
  for (let r = 0; r < opts.rounds; r++) {
    const { bodies, stats } = buildMix(opts.seed * 1000 + r, `m${TAG}r${r}`, shards);
    const load = loadavg();
    const res = await postAll(url, bodies);
    addTally(tally, res);
    runs.push({ load_average: load, ...res, mix: stats });
    log(
      `${label} mix: round ${r + 1}/${opts.rounds}: ${fmt(res.events_per_s)} ev/s (${stats.traces_per_batch.mean} traces, ${stats.trace_objects_per_batch.mean} objects per batch)${res.bad ? `, ${res.bad} bad POSTs` : ""}`,
    );
  }
  const med = median(runs.map((r) => r.events_per_s));
  const out = { runs, median_events_per_s: med, ratio_to_packed: ratio(med, packedMedian) };
  log(`${label} mix: median ${fmt(med)} ev/s, ${out.ratio_to_packed} of packed`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// 3. One very large trace

async function phaseBig(url, label, tally) {
  const traceId = `big-${TAG}`;
  const ts0 = Date.now() / 1000;
  const batches = Math.ceil((opts.big_tasks * 5) / PER_BATCH);
  const perTenth = Math.ceil(batches / 10);
  const tasksPerBatch = PER_BATCH / 5;
  const tenths = [];
  let postSeconds = 0;
  let events = 0;
  const t0 = performance.now();
  for (let b = 0; b < batches; b += perTenth) {
    // Built before the clock starts for this tenth; only the POSTs are timed.
    const evs = [];
    for (let t = b * tasksPerBatch; t < Math.min(opts.big_tasks, (b + perTenth) * tasksPerBatch); t++)
      evs.push(
        ...plainTask(
          t === 0 ? traceId : `${traceId}-t${t}`,
          traceId,
          traceId,
          t === 0 ? null : traceId,
          t,
          ts0,
        ),
      );
    const load = loadavg();
    const res = await postAll(url, toBodies(evs));
    addTally(tally, res);
    postSeconds += res.seconds;
    events += res.events;
    const tasksSoFar = Math.min(opts.big_tasks, (b + perTenth) * tasksPerBatch);
    tenths.push({ tasks: tasksSoFar, load_average: load, ...res });
    log(
      `${label} big trace: ${fmt(tasksSoFar)}/${fmt(opts.big_tasks)} tasks, ${fmt(res.events_per_s)} ev/s in this part${res.bad ? `, ${res.bad} bad POSTs` : ""}`,
    );
  }
  const out = {
    trace_id: traceId,
    tasks: opts.big_tasks,
    events,
    post_seconds: +postSeconds.toFixed(2),
    wall_seconds: +((performance.now() - t0) / 1000).toFixed(2),
    events_per_s: Math.round(events / postSeconds),
    tenths,
  };
  log(`${label} big trace: ${fmt(out.events_per_s)} ev/s over ${fmt(events)} events`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// 4. Snapshot of a 10,000-task trace that shares its object with 10,000 one-task traces

async function phaseSnapshot(url, label, shards, tally) {
  const traceId = `snap-${TAG}`;
  const ts0 = Date.now() / 1000;
  const home = shards > 0 ? shardIndex(traceId, shards) : null;
  const neighbourIds = [];
  let candidates = 0;
  while (neighbourIds.length < opts.neighbours) {
    const id = `nb-${TAG}-${candidates++}`;
    if (home === null || shardIndex(id, shards) === home) neighbourIds.push(id);
  }
  // Interleaved task by task, so the object's rows of both kinds are mixed as in real traffic.
  const evs = [];
  for (let i = 0; i < Math.max(opts.snapshot_tasks, neighbourIds.length); i++) {
    if (i < opts.snapshot_tasks)
      evs.push(
        ...plainTask(
          i === 0 ? traceId : `${traceId}-t${i}`,
          traceId,
          traceId,
          i === 0 ? null : traceId,
          i,
          ts0,
        ),
      );
    if (i < neighbourIds.length)
      evs.push(...plainTask(neighbourIds[i], neighbourIds[i], neighbourIds[i], null, i, ts0));
  }
  const load = loadavg();
  const ingest = await postAll(url, toBodies(evs));
  addTally(tally, ingest);
  log(
    `${label} snapshot: ingested ${fmt(opts.snapshot_tasks)}-task trace + ${fmt(neighbourIds.length)} neighbours${home === null ? "" : ` on shard ${home} of ${shards}`} at ${fmt(ingest.events_per_s)} ev/s${ingest.bad ? `, ${ingest.bad} bad POSTs` : ""}`,
  );
  const runs = [];
  for (let r = 0; r < SNAPSHOT_RUNS; r++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/api/traces/${encodeURIComponent(traceId)}`);
    const text = await res.text();
    const ms = performance.now() - t0; // until the whole body is in; parsing it here is not counted
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // reported below
    }
    const nodes = Array.isArray(body?.nodes) ? body.nodes.length : null;
    const run = {
      ms: +ms.toFixed(1),
      status: res.status,
      bytes: Buffer.byteLength(text),
      nodes,
      task_count: body?.summary?.task_count ?? null,
      truncated: body?.truncated ?? null,
    };
    run.ok = res.status === 200 && nodes === opts.snapshot_tasks && !body?.truncated;
    if (!run.ok) run.error = body?.error?.message ?? text.slice(0, 300);
    runs.push(run);
    log(
      `${label} snapshot: GET ${r + 1}/${SNAPSHOT_RUNS}: ${run.ms} ms, ${run.status}, ${nodes} nodes${run.ok ? "" : " — NOT OK"}`,
    );
  }
  const out = {
    trace_id: traceId,
    tasks: opts.snapshot_tasks,
    neighbours: neighbourIds.length,
    object: traceObjectName(traceId, shards),
    neighbour_candidates_tried: candidates,
    ingest: { load_average: load, ...ingest },
    runs,
    median_ms: median(runs.map((r) => r.ms)),
    max_ms: Math.max(...runs.map((r) => r.ms)),
    failed_gets: runs.filter((r) => !r.ok).length,
  };
  log(
    `${label} snapshot: median ${out.median_ms} ms, max ${out.max_ms} ms${out.failed_gets ? `, ${out.failed_gets} GETs NOT OK` : ""}`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Configurations, results

function gitState() {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: ROOT,
      encoding: "utf8",
    }).trim();
    const dirty = execFileSync(
      "git",
      ["status", "--porcelain", "--", "durable-objects", "worker", "shared", "wrangler.toml"],
      { cwd: ROOT, encoding: "utf8" },
    ).trim();
    return { head, changed_files: dirty ? dirty.split("\n").map((l) => l.trim()) : [] };
  } catch {
    return null;
  }
}

const cpus = os.cpus();
const results = {
  benchmark: "trace-shards",
  date: new Date().toISOString(),
  command: `node_modules/.bin/node bench/trace-shards.mjs ${argv.join(" ")}`.trim(),
  options: opts,
  machine: {
    nproc: os.availableParallelism?.() ?? cpus.length,
    cpu: cpus[0]?.model ?? null,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  },
  git: gitState(),
  setup: {
    clients: CLIENTS,
    events_per_batch: PER_BATCH,
    batches_per_run: BATCHES_PER_RUN,
    snapshot_gets: SNAPSHOT_RUNS,
    mix_window: MIX_WINDOW,
    workflow_share: WORKFLOW_SHARE,
  },
  configs: [],
};

const RESULTS_DIR = join(ROOT, "bench/results");
const jsonPath = join(RESULTS_DIR, `${opts.out_prefix}.json`);
const mdPath = join(RESULTS_DIR, `${opts.out_prefix}.md`);

function markdown() {
  const m = results.machine;
  const lines = [
    `# Trace placement on TRACE_SHARDS Durable Objects (\`bench/trace-shards.mjs\`)`,
    "",
    `Written by \`${results.command}\` from \`${opts.out_prefix}.json\` (every run's raw numbers are there).`,
    "",
    `- date: ${results.date}; machine: ${m.nproc} cores (${m.cpu}), ${m.memory_gib} GiB, ${m.os}; Node ${m.node}${results.git ? `; code: ${results.git.head}${results.git.changed_files.length ? ` with ${results.git.changed_files.length} uncommitted change(s) in durable-objects/ worker/ shared/ wrangler.toml` : " (clean)"}` : ""}`,
    `- ${opts.base ? `against ${opts.base} (already running)` : "a fresh `wrangler dev` per row, `--var TRACE_SHARDS:k`"}; ${CLIENTS} concurrent clients, ${PER_BATCH}-event batches, ${opts.rounds} round(s), medians`,
    `- independent / packed: ${BATCHES_PER_RUN} batches of independent tasks (one trace each, 5 events per task) vs the same events packed into one trace per batch, as the fanout benchmark (kept outside this repository) (packed warm-up first); ratio = independent / packed`,
    `- mix: ${BATCHES_PER_RUN} batches, ${Math.round((1 - WORKFLOW_SHARE) * 100)}% standalone tasks, ${Math.round(WORKFLOW_SHARE * 100)}% in chains, groups and chords of 3–50 tasks (seed ${opts.seed}), ${MIX_WINDOW} units in flight; ratio = mix / packed`,
    `- big trace: ${fmt(opts.big_tasks)} tasks (${fmt(opts.big_tasks * 5)} events) in one trace; snapshot: \`GET /api/traces/<id>\` of a ${fmt(opts.snapshot_tasks)}-task trace whose object also holds ${fmt(opts.neighbours)} one-task traces, ${SNAPSHOT_RUNS} GETs (time until the whole body is in)`,
    "",
    "| TRACE_SHARDS | independent ev/s | packed ev/s | ratio | mix ev/s | mix / packed | big trace ev/s | snapshot median / max ms | bad POSTs | load average before → after |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const c of results.configs) {
    const p = c.phases;
    const snap = p.snapshot
      ? `${p.snapshot.median_ms} / ${p.snapshot.max_ms}${p.snapshot.failed_gets ? ` (${p.snapshot.failed_gets} GETs not OK)` : ""}`
      : "–";
    lines.push(
      `| ${c.label}${c.error ? " (failed)" : ""} | ${fmt(p.fanout?.independent_median_events_per_s)} | ${fmt(p.fanout?.packed_median_events_per_s)} | ${p.fanout?.ratio ?? "–"} | ${fmt(p.mix?.median_events_per_s)} | ${p.mix?.ratio_to_packed ?? "–"} | ${fmt(p.big?.events_per_s)} | ${snap} | ${c.tally.bad} of ${fmt(c.tally.posts)} | ${c.load_before.join(" / ")} → ${c.load_after?.join(" / ") ?? "–"} |`,
    );
  }
  const failures = results.configs.filter((c) => c.error || c.tally.bad);
  if (failures.length) {
    lines.push("", "## Problems", "");
    for (const c of failures) {
      if (c.error) lines.push(`- ${c.label}: stopped by an error: \`${c.error.split("\n")[0]}\``);
      if (c.tally.bad)
        lines.push(
          `- ${c.label}: ${c.tally.bad} POSTs not answered 202 with an empty \`rejected\` (${c.tally.rejected_events} events rejected); first: \`${JSON.stringify(c.tally.bad_samples[0]).slice(0, 300)}\``,
        );
    }
  }
  return lines.join("\n") + "\n";
}

function save() {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(results, null, 2) + "\n");
  writeFileSync(mdPath, markdown());
}

let current = null; // the running wrangler dev, stopped on the way out whatever happens
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    log(`${signal}: stopping`);
    await current?.stop().catch(() => {});
    process.exit(130);
  });
}

let failed = false;
for (const shards of opts.shards) {
  const label = base ? "external" : String(shards);
  const config = {
    label,
    shards,
    vars: base ? null : { TRACE_SHARDS: String(shards) },
    load_before: loadavg(),
    started: new Date().toISOString(),
    tally: newTally(),
    phases: {},
  };
  results.configs.push(config);
  const t0 = performance.now();
  try {
    let url = base;
    if (!base) {
      log(`TRACE_SHARDS=${shards}: starting wrangler dev`);
      current = await startWranglerDev({ vars: config.vars });
      url = current.base;
      log(`TRACE_SHARDS=${shards}: wrangler dev at ${url}`);
    } else log(`external server ${url} (neighbour placement for TRACE_SHARDS=${shards})`);
    const tag = base ? "external" : `TRACE_SHARDS=${shards}`;
    config.phases.fanout = await phaseFanout(url, tag, config.tally);
    config.phases.mix = await phaseMix(
      url,
      tag,
      shards,
      config.tally,
      config.phases.fanout.packed_median_events_per_s,
    );
    config.phases.big = await phaseBig(url, tag, config.tally);
    config.phases.snapshot = await phaseSnapshot(url, tag, shards, config.tally);
  } catch (err) {
    failed = true;
    config.error = String(err?.stack ?? err);
    log(`${label}: FAILED: ${err?.stack ?? err}`);
  } finally {
    // wrangler dev's own output, when something went wrong, to tell a crash from a bad answer.
    if (current && (config.error || config.tally.bad))
      config.server_output_tail = current.output().slice(-6000);
    if (current) {
      await current.stop().catch((e) => log(`stopping wrangler dev: ${e}`));
      current = null;
    }
    config.load_after = loadavg();
    config.seconds = +((performance.now() - t0) / 1000).toFixed(1);
    if (config.tally.bad)
      log(
        `${label}: ${config.tally.bad} of ${config.tally.posts} POSTs not answered 202 with an empty rejected`,
      );
    log(
      `${label}: done in ${config.seconds} s; load average ${config.load_before.join(" / ")} → ${config.load_after.join(" / ")}`,
    );
    save();
  }
}
results.seconds = +((performance.now() - T0) / 1000).toFixed(1);
save();
process.stdout.write(markdown());
console.error(`wrote ${jsonPath} and ${mdPath}`);
process.exit(failed || results.configs.some((c) => c.tally.bad) ? 1 : 0);
