/**
 * Issue 12's recordings (25a-26) through the pure graph: what the producer announces about chords
 * inside chains and chained chords becomes the right containers, edges and NOT_RUN reasons.
 */
import { describe, expect, it } from "vitest";
import { stateAnomalyKind } from "../../shared/anomalies";
import { traceKeyOf } from "../../shared/wire";
import { graphOf, scenarios, taskEventsOf } from "./wire-fixtures";

function traceOf(name: string) {
  const s = scenarios.find((x) => x.file === `${name}.json`);
  if (!s) throw new Error(`missing wire fixture ${name}`);
  const events = taskEventsOf(s.events);
  const traces = new Set(events.map(traceKeyOf));
  expect(traces.size, `${name}: one trace`).toBe(1);
  return graphOf(events);
}

describe("chords wherever Celery puts them", () => {
  it("25a: CHORD → callback → next step, no spawn edge", () => {
    const g = traceOf("25a_chord_in_chain");
    const [chord] = g.containers;
    expect(chord).toMatchObject({ kind: "CHORD", callback_id: "bec189b2-c8a0-401f-a9c3-5f489c0b788b" });
    expect(g.edges.map((e) => e.kind).sort()).toEqual(["chain", "chain", "chain", "chord"]);
    expect(g.nodes.find((n) => n.id === "bec189b2-c8a0-401f-a9c3-5f489c0b788b")?.parent_id).toBe(chord!.id);
  });

  it("25d: everything after a failed first chord is NOT_RUN; only the first stop is an anomaly", () => {
    const g = traceOf("25d_chained_chords_header_fails");
    const notRun = g.nodes.filter((n) => n.state === "NOT_RUN");
    expect(notRun.map((n) => n.id).sort()).toEqual(
      [
        "9c0891f4-0797-4214-9589-d19fb5a48619",
        "78aeef2e-3d15-447f-983c-fefdaf61c58c",
        "323b7a65-052e-457b-b7ce-f0cffcc59f0a",
        "82491f0c-4ca2-4960-b8f4-1afca629c2b6",
      ].sort(),
    );
    expect(notRun.map((n) => stateAnomalyKind(n)).filter(Boolean)).toEqual(["chord_never_fired"]);
  });

  it("25e: nested chords are one trace, each callback on its own header", () => {
    const g = traceOf("25e_chord_header_of_chains");
    expect(
      g.containers
        .filter((c) => c.kind === "CHORD")
        .map((c) => c.callback_id)
        .sort(),
    ).toEqual(
      [
        "956a6c64-8f90-4b5f-b531-ed1d6e6285df",
        "03b3f155-d61c-4729-a85d-45bff11669cc",
        "9d4e9889-c8ac-4efa-b042-a8163d61715c",
      ].sort(),
    );
  });

  it("26: one chain_stopped for a chain stopped after its second step", () => {
    const g = traceOf("26_chain_step_fails");
    const kinds = g.nodes.map((n) => stateAnomalyKind(n)).filter(Boolean);
    expect(kinds).toEqual(["chain_stopped"]);
  });
});
