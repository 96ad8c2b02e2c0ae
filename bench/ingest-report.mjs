/**
 * Renders bench/results/ingest.md from the last results of both event-pipeline benchmarks:
 * graph.json (`npm run bench:graph`, inside workerd) and ingest-http.json (`bench/http-ingest.mjs`).
 * Called by each of them after it writes its JSON, so the page always shows the latest of both.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "results");

const read = (name) =>
  existsSync(join(RESULTS_DIR, name)) ? JSON.parse(readFileSync(join(RESULTS_DIR, name), "utf8")) : null;
const n = (x) => (typeof x === "number" ? x.toLocaleString("en-US") : String(x ?? "–"));
const load = (l) => (l ? l.join(" / ") : "–");
const ok = (pass) => (pass ? "**met**" : "**not met**");

function graphSection(g) {
  if (!g) return ["## Inside one TraceGraph (`npm run bench:graph`)", "", "No results yet."];
  const by = (name) => g.results.filter((r) => r.name === name);
  const ingest = by("ingest")[0];
  const snap = by("snapshot10k")[0];
  const tenths = by("big_trace_tenth");
  const start = by("big_trace_start")[0];
  const bigSnap = by("big_trace_snapshot")[0];
  const isolate = (r) =>
    (r?.workerd ?? []).reduce((max, w) => (w.rss_mib > (max?.rss_mib ?? -1) ? w : max), null);
  const lines = [
    "## Inside one TraceGraph (`npm run bench:graph`)",
    "",
    `- date: ${g.date}; machine: ${g.machine}; load average (1/5/15 min) at start ${load(g.load_average_start)}, at end ${load(g.load_average_end)}`,
    "- inside workerd through `@cloudflare/vitest-plugin` (`runInDurableObject`), batches handed over as the Worker sends them (one JSON string)",
    "",
    "| measurement | result | target | |",
    "|---|---:|---:|---|",
  ];
  if (ingest)
    lines.push(
      `| apply 100-event batches, ${n(ingest.trace_tasks)}-task trace (median of ${ingest.runs_events_per_s.length} runs: ${ingest.runs_events_per_s.map(n).join(", ")}) | ${n(ingest.median_events_per_s)} events/s | ≥ 20,000 events/s | ${ok(ingest.median_events_per_s >= 20_000)} |`,
    );
  // The API's path is the JSON one (GET /api/traces/:id); the object RPC is kept for comparison.
  const snapJson = by("snapshot10k_json")[0];
  if (snapJson)
    lines.push(
      `| snapshot of a 10,000-task trace (${snapJson.via}, median of ${snapJson.runs}, max ${snapJson.max_ms} ms) | ${snapJson.median_ms} ms | < 200 ms | ${ok(snapJson.median_ms < 200)} |`,
    );
  if (snap)
    lines.push(
      `| the same as objects (${snap.via}, median of ${snap.runs}, max ${snap.max_ms} ms), for comparison | ${snap.median_ms} ms | | |`,
    );
  if (tenths.length) {
    const rates = tenths.map((t) => t.events_per_s);
    lines.push(
      `| 100,000-task trace: slowest tenth / last tenth | ${n(Math.min(...rates))} / ${n(rates[rates.length - 1])} events/s | flat (no per-batch work that grows with the trace) | |`,
    );
  }
  if (bigSnap)
    lines.push(
      `| snapshot of the 100,000-task trace (cut to the first ${n(bigSnap.truncated?.shown ?? bigSnap.nodes)}) | ${bigSnap.ms} ms | | |`,
    );
  if (tenths.length) {
    lines.push(
      "",
      "100,000-task trace, by tenths (RSS of the workerd process running the tests, sampled from Node):",
      "",
      "| tasks | events/s in that tenth | SQLite size MiB | workerd RSS MiB | of which anonymous MiB |",
      "|---:|---:|---:|---:|---:|",
    );
    if (start) lines.push(`| 0 | | | ${n(isolate(start)?.rss_mib)} | ${n(isolate(start)?.anon_mib)} |`);
    for (const t of tenths)
      lines.push(
        `| ${n(t.tasks)} | ${n(t.events_per_s)} | ${t.db_mib} | ${n(isolate(t)?.rss_mib)} | ${n(isolate(t)?.anon_mib)} |`,
      );
  }
  return lines;
}

function httpSection(h) {
  if (!h?.throughput?.runs)
    return [
      "## HTTP through `wrangler dev` (`node_modules/.bin/node bench/http-ingest.mjs`)",
      "",
      "No results yet.",
    ];
  const t = h.throughput;
  const lines = [
    "## HTTP through `wrangler dev` (`node_modules/.bin/node bench/http-ingest.mjs`)",
    "",
    `- date: ${h.date}; machine: ${h.machine}; load average at start ${load(h.load_average_start)}, at end ${load(h.load_average_end)}`,
    `- ${t.runs.filter((r) => !r.profiled).length} runs${t.runs.some((r) => r.profiled) ? " (and one more under the CPU profiler, left out of the median)" : ""}, each of 200 new traces × 500 events in 100-event batches, ${t.concurrency} concurrent clients`,
    "",
    `Median **${n(t.median_events_per_s)} events/s** (target ≥ 7,000: ${ok(t.median_events_per_s >= 7000)}).`,
    "",
    "| run | events/s | load average before | Worker isolate CPU % | its CPU ms per batch | proxy workerd CPU ms per batch |",
    "|---:|---:|---:|---:|---:|---:|",
  ];
  t.runs.forEach((r, i) => {
    const iso = r.cpu.find((c) => c.role.startsWith("workerd (Worker"));
    const proxy = r.cpu.find((c) => c.role.includes("proxy"));
    lines.push(
      `| ${i + 1}${r.profiled ? " (profiled)" : ""} | ${n(r.events_per_s)} | ${load(r.load_average)} | ${iso?.cpu_pct ?? "–"} | ${iso?.cpu_ms_per_batch ?? "–"} | ${proxy?.cpu_ms_per_batch ?? "–"} |`,
    );
  });
  const b = h.big_trace;
  if (b) {
    lines.push(
      "",
      `One ${n(b.tasks)}-task trace (${n(b.events)} events, 4 clients): ${n(b.ingest_events_per_s)} events/s; snapshot ${b.snapshot.ms} ms (${n(b.snapshot.nodes)} nodes${b.snapshot.truncated ? ` of ${n(b.snapshot.truncated.total)}` : ""}).`,
      "",
      "| tasks | workerd RSS MiB | anonymous | file-backed | JS heap used MiB (isolate: Worker + all DOs) | TraceGraph SQLite on disk MiB |",
      "|---:|---:|---:|---:|---:|---:|",
    );
    for (const s of b.samples)
      lines.push(
        `| ${n(s.tasks)} | ${s.rss_mib} | ${s.anon_mib} | ${s.file_mib} | ${s.js_heap.used_mib} | ${s.storage.trace_graph_mib} |`,
      );
    lines.splice(
      lines.length - b.samples.length - 2,
      0,
      "RSS of the Worker's workerd (and of wrangler's proxy workerd, which holds no Durable Object):",
      "",
    );
    lines[lines.length - b.samples.length - 2] =
      "| tasks | workerd RSS MiB | anonymous | file-backed | JS heap used MiB (isolate: Worker + all DOs) | TraceGraph SQLite on disk MiB | proxy workerd RSS MiB |";
    lines[lines.length - b.samples.length - 1] = "|---:|---:|---:|---:|---:|---:|---:|";
    b.samples.forEach((s, i) => (lines[lines.length - b.samples.length + i] += ` ${s.proxy_rss_mib} |`));
    if (b.replay_all_duplicates) {
      lines.push(
        "",
        "Control: the same requests again, every event a duplicate (nothing stored):",
        "",
        "| requests replayed | workerd RSS MiB | anonymous | proxy workerd RSS MiB | TraceGraph SQLite MiB |",
        "|---:|---:|---:|---:|---:|",
      );
      for (const s of b.replay_all_duplicates)
        lines.push(
          `| ${n(s.requests)} | ${s.rss_mib} | ${s.anon_mib} | ${s.proxy_rss_mib} | ${s.storage.trace_graph_mib} |`,
        );
    }
    if (b.control_rejected_only) {
      lines.push(
        "",
        "Control: as many requests whose 100 events validation rejects (no Durable Object called):",
        "",
        "| requests | workerd RSS MiB | anonymous | proxy workerd RSS MiB |",
        "|---:|---:|---:|---:|",
      );
      for (const s of b.control_rejected_only)
        lines.push(`| ${n(s.requests)} | ${s.rss_mib} | ${s.anon_mib} | ${s.proxy_rss_mib} |`);
    }
  }
  return lines;
}

export function writeIngestReport(notes = readNotes()) {
  const text = [
    "# Event pipeline benchmarks (issue 2)",
    "",
    "Written by the benchmarks from bench/results/graph.json and bench/results/ingest-http.json; the notes at the end are kept.",
    "",
    ...graphSection(read("graph.json")),
    "",
    ...httpSection(read("ingest-http.json")),
    "",
    NOTES_MARK,
    notes,
  ].join("\n");
  writeFileSync(join(RESULTS_DIR, "ingest.md"), text.trimEnd() + "\n");
}

const NOTES_MARK = "## Notes";

/** The hand-written notes below "## Notes" survive a re-render. */
function readNotes() {
  const path = join(RESULTS_DIR, "ingest.md");
  if (!existsSync(path)) return "";
  const text = readFileSync(path, "utf8");
  const at = text.indexOf(`\n${NOTES_MARK}\n`);
  return at === -1 ? "" : text.slice(at + NOTES_MARK.length + 2);
}
