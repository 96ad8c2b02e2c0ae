/// <reference types="vite/client" />
/**
 * The recorded Celery scenarios (test/fixtures/celery-5.2.6) as wire events (test/fixtures/wire,
 * produced by the Python producer's own mapping) plus their ground truth (`*.meta.json`).
 */
import type { TaskState } from "../../shared/api";
import type { TaskEvent, Event } from "../../shared/wire";

export interface Scenario {
  name: string;
  events: Event[];
  meta: {
    ids: Record<string, unknown>;
    backend_states_after: Record<string, { state: string; result: unknown }>;
  };
}

const wire = import.meta.glob<{ scenario: string; events: Event[] }>("../fixtures/wire/*.json", {
  eager: true,
  import: "default",
});
const metas = import.meta.glob<Scenario["meta"]>("../fixtures/celery-5.2.6/*.meta.json", {
  eager: true,
  import: "default",
});

export const scenarios: Scenario[] = Object.entries(wire)
  .map(([path, file]) => {
    const name = path
      .split("/")
      .pop()!
      .replace(/\.json$/, "");
    const meta = metas[`../fixtures/celery-5.2.6/${name}.meta.json`];
    if (!meta) throw new Error(`no meta.json for wire fixture ${name}`);
    return { name, events: file.events, meta };
  })
  .sort((a, b) => a.name.localeCompare(b.name));

export function scenario(name: string): Scenario {
  const s = scenarios.find((x) => x.name === name);
  if (!s)
    throw new Error(`wire fixture ${name} is missing: regenerate test/fixtures/wire from the recordings`);
  return s;
}

export const taskEvents = (s: Scenario): TaskEvent[] =>
  s.events.filter((e): e is TaskEvent => e.kind === "task");

/**
 * Where stemtrace deliberately differs from the result backend, and why (CELERY.md §4):
 * a group id is not a task; PENDING in the backend can mean "interrupted" or "rejected" to us.
 */
export function expectedState(scenarioName: string, taskId: string, backend: string): TaskState | null {
  const overrides: Record<string, Record<string, TaskState>> = {
    // Attempt 1's late RETRY overwrote the backend after the final FAILURE (04: attempts overlap).
    "04_retry_exhausted": { "cec57f69-730e-473d-a992-1e933d74e857": "FAILURE" },
    // The chord callback never runs; the backend's ChordError is our NOT_RUN.
    "10a_chord_header_fails": { "d6bbf20c-b8eb-426a-a60a-79b6a0eb50f3": "NOT_RUN" },
    "12_unregistered": { "09faf8c3-eece-4321-96cc-bf8b26ada5df": "UNREGISTERED" },
    "23_bootstep_received_demo": { "507fc873-a66d-4d2a-b2f8-80c8d274665b": "UNREGISTERED" },
    // Cold shutdown with early ack: the backend stays PENDING forever; the run was interrupted.
    "13c_cold_shutdown_early_ack_lost": { "0e9127bf-80d1-4110-a671-486ceb87a726": "INTERRUPTED" },
    // Internal error inside the tracer: the backend never hears of it.
    "16_internal_error": { "eaf0cd80-c248-4965-9bec-c95afc350846": "FAILURE" },
    "17_rejected": { "08b289e2-c21f-4208-acee-2665f466d927": "REJECTED" },
    "18_reject_in_task": { "bbac9b4b-4f9e-4857-a94e-3cf7cb5f9f33": "REJECTED" },
    // Steps after a failure never run: the backend keeps them PENDING (after a chord, 25b/25d) or
    // marks them FAILURE with the error that stopped them (a plain chain, 26); the graph says NOT_RUN.
    "25b_chord_in_chain_header_fails": {
      "d35e2562-5c3f-4d47-a4c1-29b907948598": "NOT_RUN",
      "7261d47d-6380-45a7-be5d-a2e190e1a3a4": "NOT_RUN",
    },
    "25d_chained_chords_header_fails": {
      "9c0891f4-0797-4214-9589-d19fb5a48619": "NOT_RUN",
      "82491f0c-4ca2-4960-b8f4-1afca629c2b6": "NOT_RUN",
    },
    "26_chain_step_fails": {
      "0a1826c0-edb5-4292-baf0-6a1568ad9c6f": "NOT_RUN",
      "6a9055a4-3f0e-4169-a968-9af3d41c2154": "NOT_RUN",
    },
    // Eager runs store no result; they ran and succeeded in the client.
    "24_eager_apply": {
      "f9c849ec-f5e2-4a26-997f-07b5129f9591": "SUCCESS",
      "e7b11a8c-1630-4d7f-bf93-4e3453405d9e": "SUCCESS",
      "2fd69e4e-0cd0-436e-abb2-f99ba2d9ff40": "SUCCESS",
    },
  };
  const override = overrides[scenarioName]?.[taskId];
  if (override) return override;
  if (!/^[0-9a-f-]{36}$/.test(taskId)) return null;
  return backend as TaskState;
}
