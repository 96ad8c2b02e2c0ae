/**
 * Vitest reporter for the rows-written benchmark (runs in Node, beside the test in workerd, which
 * cannot write files): collects the `BENCH {json}` lines it prints and writes them to ROWS_OUT
 * (default bench/results/rows-written.json, relative to the working directory) with the date, the
 * machine and the load average (`uptime`) at the start and the end of the run.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, resolve } from "node:path";
import type { Reporter } from "vitest/node";

function uptime(): string {
  try {
    return execFileSync("uptime", { encoding: "utf8" }).trim();
  } catch {
    return `load average: ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(", ")}`;
  }
}

export default class RowsWrittenReporter implements Reporter {
  private lines: Record<string, unknown>[] = [];
  private uptimeStart = uptime();
  private loadStart = os.loadavg();

  onUserConsoleLog(log: { content: string }): void {
    for (const line of log.content.split("\n")) {
      const m = /^BENCH (\{.*\})\s*$/.exec(line);
      if (m) this.lines.push(JSON.parse(m[1]!) as Record<string, unknown>);
    }
  }

  onTestRunEnd(): void {
    if (this.lines.length === 0) return;
    const out = resolve(process.env.ROWS_OUT ?? "bench/results/rows-written.json");
    const cpus = os.cpus();
    const results = {
      date: new Date().toISOString(),
      machine: `${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${cpus[0]?.model}`,
      node: process.version,
      trace_shards: process.env.TRACE_SHARDS ?? null,
      uptime_start: this.uptimeStart,
      uptime_end: uptime(),
      load_average_start: this.loadStart.map((n) => +n.toFixed(2)),
      load_average_end: os.loadavg().map((n) => +n.toFixed(2)),
      results: this.lines,
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
    console.log(`rows-written results: ${out}`);
  }
}
