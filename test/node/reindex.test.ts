/**
 * `npm run reindex` against a real `wrangler dev` whose index is Upstash (the local REST endpoint in
 * front of redis-server), with token auth on: the switch-to-Upstash path end to end. The database
 * is emptied after a recorded run was ingested; the command, run as a user runs it, brings the
 * trace back into the list, and says what to do when it has no credentials.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startWranglerDev } from "../../bench/wrangler-dev.mjs";
import { startUpstashEndpoint } from "../upstash/rest-endpoint.mjs";

const run = promisify(execFile);
const TOKEN = "reindex-test-token";
const PARENT = "f634bf34-2f9c-48d7-8197-40ecebf98549"; // 08_parent_child

let upstash: Awaited<ReturnType<typeof startUpstashEndpoint>>;
let server: Awaited<ReturnType<typeof startWranglerDev>>;
const auth = { Authorization: `Bearer ${TOKEN}` };

async function listedIds(): Promise<string[]> {
  const res = await fetch(`${server.base}/api/traces?limit=200`, { headers: auth });
  expect(res.status).toBe(200);
  return ((await res.json()) as { traces: { trace_id: string }[] }).traces.map((t) => t.trace_id);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function reindex(env: Record<string, string>) {
  return run(join(ROOT, "node_modules/.bin/node"), [join(ROOT, "worker/reindex.mjs"), "--url", server.base], {
    env: { PATH: process.env.PATH ?? "", ...env },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

beforeAll(async () => {
  upstash = await startUpstashEndpoint();
  server = await startWranglerDev({
    vars: {
      AUTH_MODE: "token",
      INGEST_TOKEN: TOKEN,
      UPSTASH_REDIS_REST_URL: upstash.url,
      UPSTASH_REDIS_REST_TOKEN: upstash.token,
    },
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await upstash?.close();
});

describe("npm run reindex", () => {
  it("refills an emptied Upstash index from the shards, and explains a refused call", async () => {
    const { events } = JSON.parse(
      readFileSync(join(ROOT, "test/fixtures/wire/08_parent_child.json"), "utf8"),
    );
    const post = await fetch(`${server.base}/v1/events`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ events }),
    });
    expect(post.status).toBe(202);
    await until("the trace in the list", async () => (await listedIds()).includes(PARENT));

    const flush = await fetch(upstash.url, {
      method: "POST",
      headers: { Authorization: `Bearer ${upstash.token}` },
      body: JSON.stringify(["FLUSHDB"]),
    });
    expect(flush.status).toBe(200);
    expect(await listedIds()).not.toContain(PARENT);

    const refused = await reindex({});
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("set STEMTRACE_TOKEN");

    const ok = await reindex({ STEMTRACE_TOKEN: TOKEN });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/shard 16\/16 · [\d,]+ traces and [\d,]+ task lookups re-sent/);
    expect(ok.stdout).toMatch(/^done: [\d,]+ traces in \d+ calls$/m);
    expect(await listedIds()).toContain(PARENT);
  }, 120_000);
});
