/** The recorded wire scenarios (test/fixtures/wire) and the graph their task events build. */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildGraph } from "../../shared/graph";
import { foldTask } from "../../shared/task-fold";
import type { Event, TaskEvent } from "../../shared/wire";

const dir = fileURLToPath(new URL("../fixtures/wire/", import.meta.url));

/** Every recorded scenario: its file name and its events, in recorded order. */
export const scenarios: { file: string; events: Event[] }[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .map((file) => ({
    file,
    events: (JSON.parse(readFileSync(dir + file, "utf8")) as { events: Event[] }).events,
  }));

export const taskEventsOf = (events: Event[]): TaskEvent[] =>
  events.filter((e): e is TaskEvent => e.kind === "task");

/** What the TraceGraph shows for these task events (folded per task, then the graph rules). */
export function graphOf(events: TaskEvent[]) {
  const byTask = new Map<string, TaskEvent[]>();
  for (const e of events) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), e]);
  return buildGraph([...byTask].map(([id, evs]) => foldTask(id, evs)));
}
