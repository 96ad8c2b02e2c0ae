/**
 * `npm run reindex -- --url https://stemtrace.example.com`: rebuilds the index from the trace
 * shards (POST /api/index/rebuild, call after call, with progress) — after switching the index to
 * Upstash, or when the index lost data. Safe to run again or to interrupt: it prints the cursor to
 * resume from (`--cursor`), and pages sent twice change nothing.
 *
 * Credentials as the producer takes them: STEMTRACE_TOKEN (the ingest token) and/or
 * STEMTRACE_ACCESS_CLIENT_ID + STEMTRACE_ACCESS_CLIENT_SECRET (a Cloudflare Access service token).
 */
import { parseArgs } from "node:util";

/** Runs the rebuild to the end; `log` gets one line per call. Returns the totals. */
export async function reindex({
  url,
  headers = {},
  cursor = null,
  fetchImpl = fetch,
  log = console.log,
  waitS = 5,
  retries = 12,
}) {
  const endpoint = new URL("/api/index/rebuild", url);
  const totals = { calls: 0, traces: 0, tasks: 0 };
  let failures = 0;
  for (;;) {
    const target = new URL(endpoint);
    if (cursor) target.searchParams.set("cursor", cursor);
    const res = await fetchImpl(target, { method: "POST", headers });
    const body = await res.json().catch(() => null);
    if (res.status === 503 && body?.cursor) {
      // The index did not take a page: its shard keeps and retries it; go on when the index answers.
      cursor = body.cursor;
      if (++failures > retries)
        throw new Error(`${body.error?.message ?? "index unavailable"}; resume with --cursor ${cursor}`);
      log(`index unavailable (${failures}/${retries}); retrying in ${waitS} s`);
      await new Promise((r) => setTimeout(r, waitS * 1000));
      continue;
    }
    if (!res.ok || !body) {
      const why = body?.error?.message ?? `HTTP ${res.status}`;
      const hint =
        res.status === 401 || res.status === 403
          ? " (set STEMTRACE_TOKEN, or the Access service token pair)"
          : "";
      throw new Error(`${endpoint}: ${why}${hint}${cursor ? `; resume with --cursor ${cursor}` : ""}`);
    }
    failures = 0;
    totals.calls++;
    totals.traces += body.traces;
    totals.tasks += body.tasks;
    log(
      `shard ${body.shard}/${body.shards} · ${totals.traces.toLocaleString("en")} traces and ${totals.tasks.toLocaleString("en")} task lookups re-sent`,
    );
    if (body.done) return totals;
    cursor = body.cursor;
  }
}

function credentials(env) {
  const headers = {};
  if (env.STEMTRACE_TOKEN) headers.Authorization = `Bearer ${env.STEMTRACE_TOKEN}`;
  if (env.STEMTRACE_ACCESS_CLIENT_ID && env.STEMTRACE_ACCESS_CLIENT_SECRET) {
    headers["CF-Access-Client-Id"] = env.STEMTRACE_ACCESS_CLIENT_ID;
    headers["CF-Access-Client-Secret"] = env.STEMTRACE_ACCESS_CLIENT_SECRET;
  }
  return headers;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { url: { type: "string" }, cursor: { type: "string" } } });
  const url = values.url ?? process.env.STEMTRACE_URL;
  if (!url) {
    console.error(
      "usage: npm run reindex -- --url https://<your stemtrace> [--cursor <from a previous run>]",
    );
    process.exit(2);
  }
  try {
    const t = await reindex({ url, headers: credentials(process.env), cursor: values.cursor ?? null });
    console.log(`done: ${t.traces.toLocaleString("en")} traces in ${t.calls} calls`);
  } catch (err) {
    console.error(`reindex: ${err.message}`);
    process.exit(1);
  }
}
