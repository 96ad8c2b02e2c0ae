/**
 * `POST /api/index/rebuild`: the trace shards send the index everything again. The scenario it is
 * for: switching an existing deployment to Upstash (an empty index) — here the Upstash database is
 * emptied (FLUSHDB through the REST endpoint) after real recorded runs were ingested, and the
 * rebuild must bring back the list, the task lookups (never-run tasks included) and anomalies.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { AnomalyList, IndexRebuildPage, TraceList } from "../../shared/api";
import { checkGraphs, settle, shards } from "../workers/objects";
import { scenario } from "../workers/scenarios";

const api = (path: string, init?: RequestInit) => exports.default.fetch(`http://127.0.0.1${path}`, init);

const CHORD_FAILS = "b0176ce2-7895-4bec-b9e0-41764263ad12"; // 25b: chord in a chain, its header fails
const NEVER_RUN = ["d35e2562-5c3f-4d47-a4c1-29b907948598", "7261d47d-6380-45a7-be5d-a2e190e1a3a4"];
const PARENT = "f634bf34-2f9c-48d7-8197-40ecebf98549"; // 08: a task that spawns three
const CHILD = "bd68b97e-46da-4a0d-a668-ec3962f25713";

async function listed(): Promise<Map<string, unknown>> {
  const res = await api("/api/traces?limit=200");
  expect(res.status).toBe(200);
  return new Map(TraceList.parse(await res.json()).traces.map((t) => [t.trace_id, t]));
}

async function flushRedis(): Promise<void> {
  const { url, token } = inject("upstash");
  const res = await fetch(url, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: JSON.stringify(["FLUSHDB"]),
  });
  expect(await res.json()).toEqual({ result: "OK" });
}

async function rebuild(): Promise<{ calls: number; traces: number; tasks: number }> {
  let cursor: string | null = null;
  const total = { calls: 0, traces: 0, tasks: 0 };
  do {
    const res = await api(`/api/index/rebuild${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`, {
      method: "POST",
    });
    expect(res.status).toBe(200);
    const page = IndexRebuildPage.parse(await res.json());
    total.calls++;
    total.traces += page.traces;
    total.tasks += page.tasks;
    cursor = page.cursor;
    expect(page.done).toBe(cursor === null);
  } while (cursor !== null && total.calls < 100);
  return total;
}

describe("index rebuild", () => {
  it("brings back what an emptied index had: list, task lookups (never-run ones too), anomalies", async () => {
    for (const name of ["25b_chord_in_chain_header_fails", "08_parent_child"]) {
      const res = await api("/v1/events", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ events: scenario(name).events }),
      });
      expect(res.status).toBe(202);
    }
    await settle();
    await checkGraphs([CHORD_FAILS, PARENT]);
    const before = await listed();
    expect(before.has(CHORD_FAILS) && before.has(PARENT)).toBe(true);
    const anomaliesBefore = AnomalyList.parse(
      await (await api(`/api/anomalies?trace_id=${CHORD_FAILS}`)).json(),
    ).anomalies;
    expect(anomaliesBefore.length).toBeGreaterThan(0);
    for (const id of [CHILD, ...NEVER_RUN]) expect((await api(`/api/tasks/${id}`)).status).toBe(200);

    if (shards === 0) {
      // One object per trace: nothing can list them, and the endpoint says so.
      const res = await api("/api/index/rebuild", { method: "POST" });
      expect(res.status).toBe(501);
      expect(await res.text()).toContain("TRACE_SHARDS=0");
      return;
    }

    // As after switching to an empty Upstash database.
    await flushRedis();
    const emptied = await listed();
    expect(emptied.has(CHORD_FAILS) || emptied.has(PARENT)).toBe(false);
    expect((await api(`/api/tasks/${CHILD}`)).status).toBe(404);

    const totals = await rebuild();
    expect(totals.traces).toBeGreaterThanOrEqual(2);
    expect(totals.tasks).toBeGreaterThanOrEqual(5); // 3 children, 2 never-run steps, …

    const after = await listed();
    expect(after.get(CHORD_FAILS)).toEqual(before.get(CHORD_FAILS));
    expect(after.get(PARENT)).toEqual(before.get(PARENT));
    for (const id of [CHILD, ...NEVER_RUN]) expect((await api(`/api/tasks/${id}`)).status).toBe(200);
    const anomaliesAfter = AnomalyList.parse(
      await (await api(`/api/anomalies?trace_id=${CHORD_FAILS}`)).json(),
    ).anomalies;
    expect(anomaliesAfter.map((a) => a.id).sort()).toEqual(anomaliesBefore.map((a) => a.id).sort());

    // Idempotent: a second rebuild changes nothing.
    await rebuild();
    expect((await listed()).get(CHORD_FAILS)).toEqual(before.get(CHORD_FAILS));
  });

  it("refuses a cursor it did not give", async () => {
    const res = await api("/api/index/rebuild?cursor=bm90LWEtY3Vyc29y", { method: "POST" });
    // One object per trace: nothing to rebuild from, said before any cursor is read.
    expect(res.status).toBe(shards === 0 ? 501 : 400);
    expect(await res.text()).toContain(shards === 0 ? "not_supported" : "invalid_cursor");
  });
});
