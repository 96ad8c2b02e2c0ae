/**
 * Vitest reporter (runs in Node, beside the tests in workerd): collects the `BENCH {json}` lines the
 * graph benchmark prints, samples the memory of the workerd processes running it whenever a line
 * asks for it (`"sample_memory": true`), and writes bench/results/graph.json and ingest.md at the end.
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import type { Reporter } from "vitest/reporters";
import { RESULTS_DIR, writeIngestReport } from "../ingest-report.mjs";

/** workerd processes started (transitively) by this vitest process, with their RSS split. */
function workerdMemory(): { pid: number; rss_mib: number; anon_mib: number }[] {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      names.set(Number(entry), stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")));
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const ours = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p && hops < 20; p = parents.get(p), hops++)
      if (p === process.pid) return true;
    return false;
  };
  return [...names]
    .filter(([pid, name]) => name === "workerd" && ours(pid))
    .map(([pid]) => {
      const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
      return { pid, rss_mib: Math.round(kib("Rss") / 1024), anon_mib: Math.round(kib("Anonymous") / 1024) };
    });
}

export default class BenchResultsReporter implements Reporter {
  private lines: Record<string, unknown>[] = [];
  private loadStart = os.loadavg();

  onUserConsoleLog(log: { content: string }): void {
    for (const line of log.content.split("\n")) {
      const m = /^BENCH (\{.*\})\s*$/.exec(line);
      if (!m) continue;
      const value = JSON.parse(m[1]!) as Record<string, unknown>;
      if (value.sample_memory) {
        delete value.sample_memory;
        value.workerd = workerdMemory();
      }
      this.lines.push(value);
    }
  }

  onTestRunEnd(): void {
    if (this.lines.length === 0) return;
    const cpus = os.cpus();
    const results = {
      date: new Date().toISOString(),
      machine: `${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${cpus[0]?.model}`,
      node: process.version,
      load_average_start: this.loadStart.map((n) => +n.toFixed(2)),
      load_average_end: os.loadavg().map((n) => +n.toFixed(2)),
      results: this.lines,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(join(RESULTS_DIR, "graph.json"), JSON.stringify(results, null, 2) + "\n");
    writeIngestReport();
  }
}
