/**
 * `POST /api/index/rebuild` with the default index (the TraceIndex object): an index that lost
 * its list and lookups (its day partitions emptied here) gets them back from the shards. The
 * Upstash side, and `npm run reindex`, are tested in test/upstash and test/node.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { IndexRebuildPage, TraceList } from "../../shared/api";
import { settle, shards } from "./objects";
import { scenario } from "./scenarios";

const api = (path: string, init?: RequestInit) => exports.default.fetch(`http://127.0.0.1${path}`, init);
const PARENT = "f634bf34-2f9c-48d7-8197-40ecebf98549"; // 08_parent_child
const CHILD = "bd68b97e-46da-4a0d-a668-ec3962f25713";

async function listedIds(): Promise<string[]> {
  return TraceList.parse(await (await api("/api/traces?limit=200")).json()).traces.map((t) => t.trace_id);
}

describe("index rebuild (object index)", () => {
  it("gives an index that lost its list and lookups everything back", async () => {
    const post = await api("/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: scenario("08_parent_child").events }),
    });
    expect(post.status).toBe(202);
    await settle();
    expect(await listedIds()).toContain(PARENT);
    if (shards === 0) {
      expect((await api("/api/index/rebuild", { method: "POST" })).status).toBe(501);
      return;
    }
    await runInDurableObject(env.INDEX.getByName("global"), async (_obj, state) => {
      const tables = state.storage.sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 't*_[0-9]*'",
        )
        .toArray();
      for (const { name } of tables) state.storage.sql.exec(`DELETE FROM ${name}`);
    });
    expect(await listedIds()).not.toContain(PARENT);
    expect((await api(`/api/tasks/${CHILD}`)).status).toBe(404);

    let cursor: string | null = null;
    let calls = 0;
    do {
      const res = await api(`/api/index/rebuild${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`, {
        method: "POST",
      });
      expect(res.status).toBe(200);
      cursor = IndexRebuildPage.parse(await res.json()).cursor;
    } while (cursor !== null && ++calls < 100);

    expect(await listedIds()).toContain(PARENT);
    expect((await api(`/api/tasks/${CHILD}`)).status).toBe(200);
  });
});
