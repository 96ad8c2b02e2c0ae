/**
 * The OTLP export's payload cost (shared/otlp.ts): building and serializing a settled trace, as the
 * TraceGraph shard does at each export attempt. Run:
 *   node_modules/.bin/esbuild bench/otlp-build.ts --bundle --platform=node --format=esm --log-level=warning | node_modules/.bin/node --input-type=module
 * Prints a Markdown table (bench/results/otlp.md keeps the last run with the machine's load).
 */
import { loadavg } from "node:os";
import { buildGraph } from "../shared/graph";
import { buildOtlpTrace, otlpRequests } from "../shared/otlp";
import { foldTask } from "../shared/task-fold";
import type { TaskEvent } from "../shared/wire";
import { syntheticTrace } from "./synthetic";

/** A client's chord: `header` tasks and a callback, 5 events each. */
function chordTrace(header: number): TaskEvent[] {
  const group = "00000000-0000-4000-8000-00000000c0de";
  const callback = "00000000-0000-4000-8000-0000000ca11b";
  const events: TaskEvent[] = [];
  const lifecycle = ["published", "received", "started", "succeeded", "postrun"] as const;
  for (let i = 0; i <= header; i++) {
    const taskId = i === header ? callback : `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
    lifecycle.forEach((type, k) =>
      events.push({
        v: 1,
        id: `${taskId}-e${k}`,
        kind: "task",
        type,
        ts: 1_795_000_000 + i * 0.01 + k * 0.001,
        seq: i * 5 + k,
        host: type === "published" ? null : "bench@host",
        task_id: taskId,
        name: i === header ? "app.tsum" : "app.add",
        trace_id: group,
        root_id: taskId,
        parent_id: null,
        group_id: i === header ? null : group,
        group_index: i === header ? null : i,
        chord_callback_id: i === header ? null : callback,
        chord_callback_name: i === header ? null : "app.tsum",
        queue: "celery",
        ...(type === "postrun" ? { state: "SUCCESS" as const, runtime_ms: 1.5 } : {}),
      }),
    );
  }
  return events;
}

function measure(label: string, traceKey: string, events: TaskEvent[]): string {
  const byTask = new Map<string, TaskEvent[]>();
  for (const e of events) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), e]);
  const records = [...byTask].map(([id, evs]) => foldTask(id, evs));
  const times: number[] = [];
  let spans = 0;
  let bytes = 0;
  let links = 0;
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    const view = buildGraph(records);
    const trace = buildOtlpTrace({ traceKey, view, events: byTask, serviceName: "bench" });
    const bodies = otlpRequests(trace, "bench", 1000).map((r) => JSON.stringify(r));
    times.push(performance.now() - t0);
    spans = trace.spans.length;
    links = trace.spans.reduce((n, s) => n + s.links.length, 0);
    bytes = bodies.reduce((n, b) => n + b.length, 0);
  }
  times.sort((a, b) => a - b);
  return `| ${label} | ${byTask.size} | ${spans} | ${links} | ${Math.ceil(spans / 1000)} | ${(bytes / 1e6).toFixed(2)} MB | ${times[2]!.toFixed(0)} ms |`;
}

const rows = [
  measure("spawned tasks", "bench-1k", syntheticTrace("bench-1k", 1_000)),
  measure("spawned tasks", "bench-10k", syntheticTrace("bench-10k", 10_000)),
  measure("chord (fan-in links)", "00000000-0000-4000-8000-00000000c0de", chordTrace(2_000)),
];
console.log(
  `Node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}, ${new Date().toISOString()}`,
);
console.log("");
console.log("| trace | tasks | spans | links | requests | JSON | build + serialize (median of 5) |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
