/**
 * `POST /api/index/rebuild` (ingest permission): every trace shard sends the index its traces
 * again, page by page — for a new index backend (switching to Upstash keeps the list) or an index
 * that lost data. Each call does a bounded amount (PAGES_PER_CALL pages of PAGE_TRACES traces, one
 * subrequest each) and answers a cursor for the next; `npm run reindex` drives it with progress.
 * Idempotent: the index upserts, so a page sent twice changes nothing.
 */
import type { Context } from "hono";
import type { IndexRebuildPage } from "../shared/api";
import type { Env } from "../durable-objects/env";
import { shardCount, shardNames } from "../durable-objects/shards";
import { decodeCursor, encodeCursor } from "../shared/cursor";
import { errorBody, HttpError } from "./errors";

export const PAGE_TRACES = 200;
const PAGES_PER_CALL = 10;

/** The cursor: (the shard to go on with, the last trace id it sent), in the trace list's format. */
function decodeRebuildCursor(cursor: string, shards: number): [number, string] {
  const value = decodeCursor(cursor);
  if (value && Number.isInteger(value[0]) && value[0] >= 0 && value[0] <= shards) return value;
  throw new HttpError(400, "invalid_cursor", "cursor is not one this endpoint gave: start again without it");
}

export async function rebuildIndex(c: Context<{ Bindings: Env }>): Promise<Response> {
  const env = c.env;
  const shards = shardCount(env);
  if (shards === 0)
    throw new HttpError(
      501,
      "not_supported",
      "with TRACE_SHARDS=0 every trace is its own object, and objects cannot be listed: the index cannot be rebuilt from them",
    );
  const cursor = c.req.query("cursor");
  let [shard, after] = cursor ? decodeRebuildCursor(cursor, shards) : [0, ""];
  const names = shardNames(shards);
  let traces = 0;
  let tasks = 0;
  for (let page = 0; page < PAGES_PER_CALL && shard < shards; page++) {
    const result = await env.TRACE_GRAPH.getByName(names[shard]!).reindexPage(after, PAGE_TRACES);
    traces += result.traces;
    tasks += result.tasks;
    if (result.next === null) [shard, after] = [shard + 1, ""];
    else after = result.next;
    if (result.indexPending)
      // This page waits in its shard, which retries it; the next call goes on from after it.
      return c.json(
        {
          ...errorBody(
            "index_unavailable",
            "the index did not take a page of the rebuild (its shard keeps it and retries); call again with this cursor when the index answers",
          ),
          cursor: encodeCursor(shard, after),
        },
        503,
      );
  }
  const done = shard >= shards;
  const body: IndexRebuildPage = {
    done,
    cursor: done ? null : encodeCursor(shard, after),
    traces,
    tasks,
    shard: Math.min(shard, shards),
    shards,
  };
  return c.json(body);
}
