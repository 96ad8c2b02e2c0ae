/**
 * The index in Upstash Redis (chosen by index-backend.ts when UPSTASH_REDIS_REST_URL and
 * UPSTASH_REDIS_REST_TOKEN are set): the same IndexBackend as the TraceIndex object, the same
 * answers (the contract suite in test/upstash runs every query against both).
 *
 * Data model. Keys start with a prefix (default "st:"); D is a day (UTC, epoch days) — the day
 * partition a shard gives each trace, as in the object's `traces_<day>` tables — and M a minute.
 *
 *   days                   zset  day → day: the days that hold traces (queries look at each)
 *   d:D:all                zset  trace id, score sort_at (first seen): the list, newest first
 *   d:D:state:<state>      zset  the same, traces in one state (the `state` filter)
 *   d:D:worker:<host>      zset  the same, traces that ran on a worker (the `worker` filter)
 *   d:D:name:<name>        zset  the same, traces with a task of that name (the `name` filter, `q`)
 *   d:D:rname:<name>       zset  the same, root traces by root task name (task search)
 *   d:D:sum                hash  trace id → summary JSON
 *   d:D:lex                zset  score 0, "<lowercased trace id>\0<trace id>": id-prefix search (ZRANGE BYLEX)
 *   d:D:task               hash  task id → {trace_id, name, state, worker, updated_at} (not roots; traceOfTask)
 *   d:D:klex               zset  score 0, "<lowercased task id>\0<task id>": task id-prefix search
 *   d:D:tname:<name>       zset  task id, score updated_at: tasks by name (search by name substring)
 *   d:D:names              set   every task name of the day's traces (matched by substring in JS)
 *   d:D:tnames / d:D:rnames set  the names of non-root tasks / of roots (task search), likewise
 *   d:D:wtask:<host>       set   task ids last on a worker (tracesRunningOn)
 *   d:D:count              hash  traces, tasks of the day (subtracted from `count` by forgetDay)
 *   d:D:keys               set   every key of the day: forgetDay deletes them in one go
 *   count                  hash  traces, tasks (GET /api/stats)
 *   minutes                zset  minute → minute with runs
 *   runs:M                 hash  f:<name> finished, x:<name> failed, l:<name> last finished_at
 *   rnames:M               set   names that finished in that minute
 *   rt:M:<name> / qw:M:<name>  list  runtime / queue-wait samples, at most 2,000 per name and minute
 *   an                     hash  anomaly id → anomaly JSON
 *   an:open / an:resolved  zset  anomaly id, score detected_at (first detection)
 *   an:trace:<trace id>    set   anomaly ids of a trace (the trace filter; forgetDay)
 *
 * Run statistics are kept per minute, like the object's `runs` rows: finishedSince is "to the
 * minute" and throughput buckets are multiples of a minute, so a coarser grain (an hour) would give
 * other answers than the object; a minute's keys cost nothing when no task of that name finished.
 *
 * Writes: one Lua script call (EVALSHA, EVAL on a cold script cache) per batched report — one
 * command on Upstash's bill, atomic, and it can read what is stored (the previous state of a trace,
 * an announced task against a seen one) without a second round trip. Keys expire on their own a day
 * after RETENTION_DAYS has passed for their day (minute keys RETENTION_DAYS after their minute); the
 * shards' forgetDay removes a day earlier, exactly, with its counts and anomalies.
 *
 * Reads: the exact filters (state, worker) read their own sorted set. The substring filters (`name`,
 * `q`) find the day's names that contain the text (shared/index-match.ts, the object's LIKE) and
 * union those names' sorted sets — with `q`, also the id-prefix hits of the lexicographic set —
 * into a temporary sorted set (ZUNIONSTORE, expiring in a minute, deleted after the page), then
 * page through it like the list. A text with "|" can match across two names ("|a|b|", as the
 * object stores them): only then are the summaries scanned in list order. Every other filter is
 * tested on the summaries of the page being read, in chunks until it is full. Search takes
 * id-prefix hits from the lexicographic sets and name hits from the per-name sets whose name
 * matches.
 */
import { Redis } from "@upstash/redis/cloudflare";
import type {
  Anomaly,
  AnomalyList,
  NameStat,
  TaskSearch,
  TaskState,
  ThroughputBucket,
  TraceList,
  TraceSummary,
} from "../shared/api";
import type { RuntimeProfile } from "../shared/anomalies";
import { decodeCursor, encodeCursor } from "../shared/cursor";
import {
  asciiLower,
  byUpdatedDesc,
  idHasPrefix,
  nameContains,
  namesContain,
  taskMatchesSearch,
  traceMatchesQ,
} from "../shared/index-match";
import { isFailed, RUNNING, SUMMARY_STATES, TERMINAL } from "../shared/states";
import type { IndexReport } from "./protocol";
import { addRunRow, percentile, runStatsOf, topNamesOf, type NameRuns, type RunStats } from "./run-stats";
import type { AnomalyQuery, IndexBackend, TraceQuery } from "./trace-index";

const ON_A_WORKER = new Set<string>([...RUNNING, "RECEIVED", "SCHEDULED"]);
const UNFINISHED = new Set<string>(SUMMARY_STATES.filter((s) => !TERMINAL.has(s)));
/** Samples kept per name and minute, as the object keeps (MAX_RUNTIMES_PER_MINUTE). */
const MAX_SAMPLES = 2_000;
/** Members read per step of a filtered scan. */
const CHUNK = 200;
/** Above every code point a lexicographic prefix range can meet. */
const LEX_TOP = "\u{10FFFF}";

const REPORT_LUA = `
local P, R, now, keep = ARGV[1], cjson.decode(ARGV[2]), ARGV[3], tonumber(ARGV[4]) * 86400
local DAY = 86400
-- Integers as integers (a Lua number may be sent to Redis in exponent form).
local function int(x) return string.format('%d', x) end
local function dk(day, name) return P .. 'd:' .. day .. ':' .. name end
-- A key first written: listed for forgetDay, and set to expire a day after the shards drop its day.
-- Once per key and script call: a report adds many members to the same few sets.
local touched, days = {}, {}
local function touch(day, key)
  if touched[key] then return end
  touched[key] = true
  local keys = dk(day, 'keys')
  if redis.call('SADD', keys, key) == 1 or redis.call('TTL', key) == -1 then
    redis.call('EXPIREAT', key, int((day + 2) * DAY + keep))
    redis.call('EXPIREAT', keys, int((day + 2) * DAY + keep))
  end
end
local function zadd(day, name, score, member)
  local key = dk(day, name)
  if redis.call('ZADD', key, score, member) == 1 then touch(day, key) end
end
local function sadd(day, name, member)
  local key = dk(day, name)
  if redis.call('SADD', key, member) == 1 then touch(day, key) end
end
local function has(list, v) for _, x in ipairs(list) do if x == v then return true end end return false end
local function str(v) return type(v) == 'string' end
local traces, tasks = 0, 0
for _, t in ipairs(R.tr) do
  local day, sort, id, state, count, rootName, lowerId, workers, json, names = t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10]
  if not days[day] then
    days[day] = true
    redis.call('ZADD', P .. 'days', 'NX', int(day), int(day))
  end
  local oldJson = redis.call('HGET', dk(day, 'sum'), id)
  local dTraces, dTasks = 0, count
  if oldJson then
    local o = cjson.decode(oldJson)
    dTasks = count - o.task_count
    if o.state ~= state then redis.call('ZREM', dk(day, 'state:' .. o.state), id) end
    for _, w in ipairs(o.workers) do
      if not has(workers, w) then redis.call('ZREM', dk(day, 'worker:' .. w), id) end
    end
    for _, n in ipairs(o.task_names) do
      if not has(names, n) then redis.call('ZREM', dk(day, 'name:' .. n), id) end
    end
    if o.root_task_id == id and str(o.root_name) and o.root_name ~= rootName then
      redis.call('ZREM', dk(day, 'rname:' .. o.root_name), id)
    end
  else
    dTraces = 1
    zadd(day, 'all', sort, id)
    zadd(day, 'lex', 0, lowerId .. '\\0' .. id)
  end
  if redis.call('HSET', dk(day, 'sum'), id, json) == 1 then touch(day, dk(day, 'sum')) end
  zadd(day, 'state:' .. state, sort, id)
  for _, w in ipairs(workers) do zadd(day, 'worker:' .. w, sort, id) end
  for _, n in ipairs(names) do
    zadd(day, 'name:' .. n, sort, id)
    sadd(day, 'names', n)
  end
  if str(rootName) then
    zadd(day, 'rname:' .. rootName, sort, id)
    sadd(day, 'rnames', rootName)
  end
  if dTraces ~= 0 or dTasks ~= 0 then
    redis.call('HINCRBY', dk(day, 'count'), 'traces', int(dTraces))
    redis.call('HINCRBY', dk(day, 'count'), 'tasks', int(dTasks))
    touch(day, dk(day, 'count'))
    traces, tasks = traces + dTraces, tasks + dTasks
  end
end
if traces ~= 0 then redis.call('HINCRBY', P .. 'count', 'traces', int(traces)) end
if tasks ~= 0 then redis.call('HINCRBY', P .. 'count', 'tasks', int(tasks)) end
for _, k in ipairs(R.tk) do
  local day, tid, name, state, worker, lowerId, json = k[1], k[2], k[3], k[4], k[5], k[6], k[7]
  if not days[day] then
    days[day] = true
    redis.call('ZADD', P .. 'days', 'NX', int(day), int(day))
  end
  local key = dk(day, 'task')
  local oldJson = redis.call('HGET', key, tid)
  local o = oldJson and cjson.decode(oldJson)
  -- An announcement (PENDING, no worker) never overwrites what the task's own events said.
  if not (o and state == 'PENDING' and not str(worker) and o.state ~= 'PENDING') then
    if o then
      if str(o.name) and o.name ~= name then redis.call('ZREM', dk(day, 'tname:' .. o.name), tid) end
      if str(o.worker) and o.worker ~= worker then redis.call('SREM', dk(day, 'wtask:' .. o.worker), tid) end
    else
      zadd(day, 'klex', 0, lowerId .. '\\0' .. tid)
    end
    if redis.call('HSET', key, tid, json) == 1 then touch(day, key) end
    if str(name) then
      zadd(day, 'tname:' .. name, now, tid)
      sadd(day, 'tnames', name)
    end
    if str(worker) then sadd(day, 'wtask:' .. worker, tid) end
  end
end
local minutes = {}
for _, r in ipairs(R.rn) do
  local name, minute, failed, rt, qw, at = r[1], r[2], r[3], r[4], r[5], r[6]
  local h = P .. 'runs:' .. minute
  local expires = int(minute * 60 + keep)
  redis.call('HINCRBY', h, 'f:' .. name, 1)
  if failed == 1 then redis.call('HINCRBY', h, 'x:' .. name, 1) end
  local last = redis.call('HGET', h, 'l:' .. name)
  if not last or tonumber(last) < tonumber(at) then redis.call('HSET', h, 'l:' .. name, at) end
  redis.call('SADD', P .. 'rnames:' .. minute, name)
  if not minutes[minute] then
    minutes[minute] = true
    redis.call('ZADD', P .. 'minutes', int(minute), int(minute))
    redis.call('EXPIREAT', h, expires)
    redis.call('EXPIREAT', P .. 'rnames:' .. minute, expires)
  end
  for _, s in ipairs({{'rt:', rt}, {'qw:', qw}}) do
    if s[2] ~= '' then
      local lk = P .. s[1] .. minute .. ':' .. name
      local n = redis.call('LLEN', lk)
      if n < ${MAX_SAMPLES} then
        redis.call('RPUSH', lk, s[2])
        if n == 0 then redis.call('EXPIREAT', lk, expires) end
      end
    end
  end
end
if #R.rn > 0 then redis.call('ZREMRANGEBYSCORE', P .. 'minutes', '-inf', '(' .. int(math.floor((tonumber(now) - keep) / 60))) end
for _, a in ipairs(R.an) do
  local id, trace, detected, resolved, json = a[1], a[2], a[3], a[4], a[5]
  local score = redis.call('ZSCORE', P .. 'an:open', id) or redis.call('ZSCORE', P .. 'an:resolved', id) or detected
  if resolved == 1 then
    redis.call('ZREM', P .. 'an:open', id)
    redis.call('ZADD', P .. 'an:resolved', score, id)
  else
    redis.call('ZREM', P .. 'an:resolved', id)
    redis.call('ZADD', P .. 'an:open', score, id)
  end
  redis.call('HSET', P .. 'an', id, json)
  redis.call('SADD', P .. 'an:trace:' .. trace, id)
end
return 1
`;

const FORGET_DAY_LUA = `
local P, day = ARGV[1], ARGV[2]
local function dk(name) return P .. 'd:' .. day .. ':' .. name end
for _, id in ipairs(redis.call('ZRANGE', dk('all'), 0, -1)) do
  local set = P .. 'an:trace:' .. id
  for _, a in ipairs(redis.call('SMEMBERS', set)) do
    redis.call('HDEL', P .. 'an', a)
    redis.call('ZREM', P .. 'an:open', a)
    redis.call('ZREM', P .. 'an:resolved', a)
  end
  redis.call('DEL', set)
end
local c = redis.call('HMGET', dk('count'), 'traces', 'tasks')
if c[1] then redis.call('HINCRBY', P .. 'count', 'traces', string.format('%d', -tonumber(c[1]))) end
if c[2] then redis.call('HINCRBY', P .. 'count', 'tasks', string.format('%d', -tonumber(c[2]))) end
local keys = redis.call('SMEMBERS', dk('keys'))
for i = 1, #keys, 500 do redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys))) end
redis.call('DEL', dk('keys'))
redis.call('ZREM', P .. 'days', day)
return #keys
`;

/** Redis did not answer (or refused a call): the Worker answers 503 with this message. */
export class IndexUnavailable extends Error {
  override name = "IndexUnavailable";
}

export interface UpstashConfig {
  url: string;
  token: string;
  /** Key prefix (tests give each case its own). */
  prefix?: string;
  retentionDays?: number;
}

/** What `/api/health` says of the index. */
export interface IndexHealth {
  degraded: boolean;
  reason?: string;
}

type Hit = { task_id: string; name: string | null; trace_id: string; state: string; updated_at: number };
type RunRow = { name: string; minute: number; finished: number; failed: number; last: number };

/** Pairs of a WITHSCORES reply. */
function pairs(raw: unknown): [string, number][] {
  const flat = raw as string[];
  const out: [string, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, Number(flat[i + 1])]);
  return out;
}

/** Hash fields of an HGETALL reply (a flat array without automatic deserialization). */
function fieldsOf(raw: unknown): Map<string, string> {
  const flat = (raw ?? []) as string[];
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, flat[i + 1]!);
  return out;
}

const idOfLex = (member: string) => member.slice(member.indexOf("\u0000") + 1);
const byTraceOrder = (a: { sort_at: number; trace_id: string }, b: { sort_at: number; trace_id: string }) =>
  b.sort_at - a.sort_at || (a.trace_id < b.trace_id ? 1 : a.trace_id > b.trace_id ? -1 : 0);

export class UpstashIndex implements IndexBackend {
  private readonly redis: Redis;
  private readonly p: string;
  private readonly retentionDays: number;
  private readonly reportScript;
  private readonly forgetScript;

  constructor(config: UpstashConfig) {
    this.redis = new Redis({
      url: config.url,
      token: config.token,
      // Values are our own JSON, parsed where read; the client must not parse every string.
      automaticDeserialization: false,
      enableTelemetry: false,
      // A report that fails is kept and retried by its shard: fail fast rather than hold it.
      retry: { retries: 1, backoff: () => 200 },
    });
    this.p = config.prefix ?? "st:";
    this.retentionDays = config.retentionDays ?? 7;
    this.reportScript = this.redis.createScript<number>(REPORT_LUA);
    this.forgetScript = this.redis.createScript<number>(FORGET_DAY_LUA);
  }

  /** Every call goes through here: a failure becomes IndexUnavailable (503), without the payload. */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      // The client's message ends with the whole command (a report's payload): not worth repeating.
      const why = (err instanceof Error ? err.message : String(err)).replace(/, command was: [\s\S]*$/, "");
      // No `cause`: it would carry the payload into every log line that prints the error.
      throw new IndexUnavailable(`Upstash Redis (${what}): ${why}`);
    }
  }

  /** One PING: degraded, with the reason, when Redis does not answer. */
  async health(): Promise<IndexHealth> {
    try {
      await this.call("ping", () => this.redis.ping());
      return { degraded: false };
    } catch (err) {
      return { degraded: true, reason: err instanceof Error ? err.message : String(err) };
    }
  }

  private dk(day: number, name: string): string {
    return `${this.p}d:${day}:${name}`;
  }

  private async days(): Promise<number[]> {
    const raw = (await this.redis.zrange(`${this.p}days`, 0, -1)) as unknown as string[];
    return raw.map(Number);
  }

  async report(report: IndexReport): Promise<void> {
    const now = Date.now() / 1000;
    const payload = {
      tr: report.traces.map((t) => {
        const s = t.summary;
        return [
          t.day,
          String(t.sort_at),
          s.trace_id,
          s.state,
          s.task_count,
          s.root_task_id === s.trace_id && s.root_name !== null ? s.root_name : false,
          asciiLower(s.trace_id),
          s.workers,
          JSON.stringify(s),
          s.task_names,
        ];
      }),
      tk: report.tasks.map((t) => [
        t.day,
        t.task_id,
        t.name ?? false,
        t.state,
        t.worker ?? false,
        asciiLower(t.task_id),
        JSON.stringify({
          trace_id: t.trace_id,
          name: t.name,
          state: t.state,
          worker: t.worker,
          updated_at: now,
        }),
      ]),
      rn: report.runs.map((r) => [
        r.name ?? "",
        Math.floor(r.finished_at / 60),
        isFailed(r.state as TaskState) ? 1 : 0,
        r.runtime_ms === null ? "" : String(r.runtime_ms),
        r.queue_wait_ms === null || r.queue_wait_ms === undefined ? "" : String(r.queue_wait_ms),
        String(r.finished_at),
      ]),
      an: report.anomalies.map((a) => [
        a.id,
        a.trace_id,
        String(a.detected_at),
        a.resolved_at === null ? 0 : 1,
        JSON.stringify(a),
      ]),
    };
    await this.call("report", () =>
      this.reportScript.exec([], [this.p, JSON.stringify(payload), String(now), String(this.retentionDays)]),
    );
  }

  async forgetDay(day: number): Promise<void> {
    await this.call("forgetDay", () => this.forgetScript.exec([], [this.p, String(day)]));
  }

  async listTraces(query: TraceQuery): Promise<TraceList> {
    return this.call("listTraces", async () => {
      const limit = Math.min(Math.max(query.limit ?? 50, 1), 200);
      const cursor = query.cursor ? decodeCursor(query.cursor) : null;
      const base = query.worker ? `worker:${query.worker}` : query.state ? `state:${query.state}` : "all";
      // Filters tested on each summary (the sorted set read is exact for state or worker alone).
      const filtered =
        [query.name, query.q, query.from, query.to].some((v) => v !== undefined) ||
        (query.state !== undefined && query.worker !== undefined);
      const matches = (s: TraceSummary, sortAt: number) => {
        const at = s.started_at ?? sortAt;
        return (
          (query.state === undefined || s.state === query.state) &&
          (query.worker === undefined || s.workers.includes(query.worker)) &&
          (query.name === undefined || namesContain(s.task_names, query.name)) &&
          (query.from === undefined || at >= query.from) &&
          (query.to === undefined || at <= query.to) &&
          (query.q === undefined || traceMatchesQ(s, query.q))
        );
      };
      const perDay = await Promise.all(
        (await this.days()).map((day) =>
          this.listDay(day, query, base, cursor, matches, limit + 1, filtered),
        ),
      );
      const rows = perDay
        .flat()
        .sort(byTraceOrder)
        .slice(0, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        traces: page.map((r) => r.summary),
        next_cursor: rows.length > limit && last ? encodeCursor(last.sort_at, last.trace_id) : null,
      };
    });
  }

  /**
   * One day's part of a list page. A substring filter (`q`, else `name`) without "|" reads the
   * union of the matching names' sets (and, for `q`, the id-prefix hits) instead of the whole list.
   */
  private async listDay(
    day: number,
    query: TraceQuery,
    base: string,
    cursor: [number, string] | null,
    matches: (s: TraceSummary, sortAt: number) => boolean,
    want: number,
    filtered: boolean,
  ): Promise<{ sort_at: number; trace_id: string; summary: TraceSummary }[]> {
    const text = query.q ?? query.name;
    if (text === undefined || text.includes("|"))
      return this.scanDay(day, base, cursor, matches, want, filtered);
    const names = ((await this.redis.smembers(this.dk(day, "names"))) as string[]).filter((n) =>
      nameContains(n, text),
    );
    const ids = query.q !== undefined ? await this.lexIds(this.dk(day, "lex"), query.q) : [];
    if (names.length === 0 && ids.length === 0) return [];
    const tmp = `${this.p}tmp:${crypto.randomUUID()}`;
    const p = this.redis.pipeline();
    // Members carry their list time as score in every set: MAX keeps it (SUM would add them up).
    if (names.length)
      p.zunionstore(
        tmp,
        names.length,
        names.map((n) => this.dk(day, `name:${n}`)),
        { aggregate: "max" },
      );
    if (ids.length) p.zmscore(this.dk(day, "all"), ids);
    const out = (await p.exec()) as unknown[];
    const scores = (ids.length ? out[out.length - 1] : []) as (string | null)[];
    const members = ids.flatMap((id, i) =>
      scores[i] ? [{ score: scores[i] as unknown as number, member: id }] : [],
    );
    const q = this.redis.pipeline();
    if (members.length) q.zadd(tmp, members[0]!, ...members.slice(1));
    q.expire(tmp, 60);
    await q.exec();
    try {
      // What the candidates do not already satisfy is tested on each summary.
      const rest =
        query.from !== undefined ||
        query.to !== undefined ||
        query.state !== undefined ||
        query.worker !== undefined ||
        (query.q !== undefined && query.name !== undefined);
      return await this.scanDay(day, base, cursor, matches, want, rest, tmp);
    } finally {
      await this.redis.del(tmp);
    }
  }

  /** The first `want` traces of a day's sorted set after the cursor that pass `matches`, in list order. */
  private async scanDay(
    day: number,
    base: string,
    cursor: [number, string] | null,
    matches: (s: TraceSummary, sortAt: number) => boolean,
    want: number,
    filtered: boolean,
    key = this.dk(day, base),
  ): Promise<{ sort_at: number; trace_id: string; summary: TraceSummary }[]> {
    const out: { sort_at: number; trace_id: string; summary: TraceSummary }[] = [];
    const max = cursor ? String(cursor[0]) : "+inf";
    // Without a filter to test, the first `want` members are the page; with one, read in chunks.
    const step = filtered ? CHUNK : want;
    for (let offset = 0; ; offset += step) {
      const read = pairs(
        await this.redis.zrange(key, max as "+inf", "-inf", {
          byScore: true,
          rev: true,
          offset,
          count: step,
          withScores: true,
        }),
      );
      const page = read.filter(([id, at]) => !cursor || at < cursor[0] || id < cursor[1]);
      if (page.length) {
        const sums = (await this.redis.hmget(this.dk(day, "sum"), ...page.map(([id]) => id))) as unknown as (
          string | null
        )[];
        page.forEach(([id, at], i) => {
          const json = sums[i];
          if (!json || out.length >= want) return;
          const summary = JSON.parse(json) as TraceSummary;
          if (matches(summary, at)) out.push({ sort_at: at, trace_id: id, summary });
        });
      }
      // Full, or a short read: the set has no more.
      if (out.length >= want || read.length < step) return out;
    }
  }

  async knowsTrace(traceId: string): Promise<boolean> {
    return this.call("knowsTrace", async () => {
      const days = await this.days();
      if (days.length === 0) return false;
      const p = this.redis.pipeline();
      for (const day of days) p.hexists(this.dk(day, "sum"), traceId);
      return ((await p.exec()) as unknown as number[]).some((n) => Number(n) === 1);
    });
  }

  async traceOfTask(taskId: string): Promise<string | null> {
    return this.call("traceOfTask", async () => {
      const days = await this.days();
      if (days.length === 0) return null;
      const p = this.redis.pipeline();
      for (const day of days) p.hget(this.dk(day, "task"), taskId);
      const found = ((await p.exec()) as unknown as (string | null)[]).find((v) => v);
      return found ? (JSON.parse(found) as { trace_id: string }).trace_id : null;
    });
  }

  /** Every member of a lexicographic set whose id starts with `prefix` (case-insensitively). */
  private async lexIds(key: string, prefix: string): Promise<string[]> {
    const low = asciiLower(prefix);
    const raw = (await this.redis.zrange(key, `[${low}`, `[${low}${LEX_TOP}`, {
      byLex: true,
    })) as unknown as string[];
    return raw.map(idOfLex);
  }

  async searchTasks(q: string, limit: number): Promise<TaskSearch> {
    return this.call("searchTasks", async () => {
      const members: Hit[] = [];
      const roots: (Hit & { sort_at: number })[] = [];
      for (const day of await this.days()) {
        // Tasks that are not roots: id-prefix hits and the newest `limit` of every matching name.
        const [taskNames, rootNames] = (await this.redis
          .pipeline()
          .smembers(this.dk(day, "tnames"))
          .smembers(this.dk(day, "rnames"))
          .exec()) as unknown as [string[], string[]];
        const ids = new Set(await this.lexIds(this.dk(day, "klex"), q));
        const named = taskNames.filter((n) => nameContains(n, q));
        if (named.length) {
          const p = this.redis.pipeline();
          for (const n of named) p.zrange(this.dk(day, `tname:${n}`), 0, limit - 1, { rev: true });
          for (const list of (await p.exec()) as unknown as string[][]) for (const id of list) ids.add(id);
        }
        if (ids.size) {
          const list = [...ids];
          const records = (await this.redis.hmget(this.dk(day, "task"), ...list)) as unknown as (
            string | null
          )[];
          list.forEach((task_id, i) => {
            const r = records[i] ? (JSON.parse(records[i]) as Omit<Hit, "task_id">) : null;
            if (r && taskMatchesSearch(task_id, r.name, q))
              members.push({
                task_id,
                name: r.name,
                trace_id: r.trace_id,
                state: r.state,
                updated_at: r.updated_at,
              });
          });
        }
        // Roots: trace id prefix, or the newest `limit` of every matching root name.
        const traceIds = new Set(await this.lexIds(this.dk(day, "lex"), q));
        const rootNamed = rootNames.filter((n) => nameContains(n, q));
        if (rootNamed.length) {
          const p = this.redis.pipeline();
          for (const n of rootNamed) p.zrange(this.dk(day, `rname:${n}`), 0, limit - 1, { rev: true });
          for (const list of (await p.exec()) as unknown as string[][])
            for (const id of list) traceIds.add(id);
        }
        if (traceIds.size) {
          const list = [...traceIds];
          const p = this.redis.pipeline();
          p.hmget(this.dk(day, "sum"), ...list);
          p.zmscore(this.dk(day, "all"), list);
          const [sums, scores] = (await p.exec()) as unknown as [(string | null)[], (string | null)[]];
          list.forEach((trace_id, i) => {
            const s = sums[i] ? (JSON.parse(sums[i]) as TraceSummary) : null;
            if (!s || s.root_task_id !== trace_id) return;
            if (!idHasPrefix(trace_id, q) && !nameContains(s.root_name, q)) return;
            roots.push({
              task_id: trace_id,
              name: s.root_name,
              trace_id,
              state: s.state,
              updated_at: s.updated_at,
              sort_at: Number(scores[i]),
            });
          });
        }
      }
      const rows = [
        ...members.sort(byUpdatedDesc).slice(0, limit),
        ...roots
          .sort(byTraceOrder)
          .slice(0, limit)
          .map(({ sort_at: _, ...hit }) => hit),
      ]
        .sort(byUpdatedDesc)
        .slice(0, limit);
      return { tasks: rows.map((r) => ({ ...r, state: r.state as TaskState })) };
    });
  }

  async tracesRunningOn(host: string, taskIds: string[]): Promise<string[]> {
    return this.call("tracesRunningOn", async () => {
      const running: string[] = [];
      const roots: string[] = [];
      const known = new Map<string, string>();
      for (const day of await this.days()) {
        const [onWorker, traces] = (await this.redis
          .pipeline()
          .smembers(this.dk(day, `wtask:${host}`))
          .zrange(this.dk(day, `worker:${host}`), 0, -1)
          .exec()) as unknown as [string[], string[]];
        const p = this.redis.pipeline();
        p.hmget(this.dk(day, "task"), "", ...onWorker, ...taskIds);
        p.hmget(this.dk(day, "sum"), "", ...traces);
        const [tasks, sums] = (await p.exec()) as unknown as [(string | null)[], (string | null)[]];
        onWorker.forEach((_, i) => {
          const json = tasks[i + 1];
          if (!json) return;
          const r = JSON.parse(json) as { trace_id: string; state: string; worker: string | null };
          if (r.worker === host && ON_A_WORKER.has(r.state)) running.push(r.trace_id);
        });
        taskIds.forEach((id, i) => {
          const json = tasks[i + 1 + onWorker.length];
          if (json) known.set(id, (JSON.parse(json) as { trace_id: string }).trace_id);
        });
        traces.forEach((id, i) => {
          const json = sums[i + 1];
          if (json && UNFINISHED.has((JSON.parse(json) as TraceSummary).state)) roots.push(id);
        });
      }
      return [...new Set([...running, ...roots, ...taskIds.map((id) => known.get(id) ?? id)])];
    });
  }

  /** The (name, minute) run groups from `sinceMinute` on. */
  private async runRows(sinceMinute: number | null): Promise<RunRow[]> {
    const minutes = (
      (await this.redis.zrange(`${this.p}minutes`, sinceMinute ?? "-inf", "+inf", {
        byScore: true,
      })) as unknown as string[]
    ).map(Number);
    if (minutes.length === 0) return [];
    const p = this.redis.pipeline();
    for (const m of minutes) p.hgetall(`${this.p}runs:${m}`);
    const hashes = (await p.exec()) as unknown[];
    const rows: RunRow[] = [];
    minutes.forEach((minute, i) => {
      const fields = fieldsOf(hashes[i]);
      for (const [field, value] of fields) {
        if (!field.startsWith("f:")) continue;
        const name = field.slice(2);
        rows.push({
          name,
          minute,
          finished: Number(value),
          failed: Number(fields.get(`x:${name}`) ?? 0),
          last: Number(fields.get(`l:${name}`) ?? 0),
        });
      }
    });
    return rows;
  }

  /** Runtime and queue-wait samples of these groups. */
  private async samplesOf(rows: RunRow[]): Promise<{ runtimes: number[]; waits: number[] }[]> {
    if (rows.length === 0) return [];
    const p = this.redis.pipeline();
    for (const r of rows) {
      p.lrange(`${this.p}rt:${r.minute}:${r.name}`, 0, -1);
      p.lrange(`${this.p}qw:${r.minute}:${r.name}`, 0, -1);
    }
    const lists = (await p.exec()) as unknown as string[][];
    return rows.map((_, i) => ({
      runtimes: (lists[2 * i] ?? []).map(Number),
      waits: (lists[2 * i + 1] ?? []).map(Number),
    }));
  }

  /** Per name over these groups: runs, failures, samples, last finish. */
  private async byName(rows: RunRow[]) {
    const named = rows.filter((r) => r.name !== "");
    const samples = await this.samplesOf(named);
    const out = new Map<string, NameRuns>();
    named.forEach((r, i) =>
      addRunRow(out, { ...r, runtimes: samples[i]!.runtimes, waits: samples[i]!.waits }),
    );
    return out;
  }

  async runStats(): Promise<RunStats[]> {
    return this.call("runStats", async () => runStatsOf(await this.byName(await this.runRows(null))));
  }

  async runtimeProfile(name: string): Promise<RuntimeProfile> {
    return this.call("runtimeProfile", async () => {
      const minutes = (
        (await this.redis.zrange(`${this.p}minutes`, 0, -1, { rev: true })) as unknown as string[]
      ).map(Number);
      const runtimes: number[] = [];
      if (minutes.length) {
        const p = this.redis.pipeline();
        for (const m of minutes) p.lrange(`${this.p}rt:${m}:${name}`, 0, -1);
        for (const list of (await p.exec()) as unknown as string[][]) {
          for (const v of list) runtimes.push(Number(v));
          if (runtimes.length >= 1000) break;
        }
      }
      const sorted = runtimes.slice(0, 1000).sort((a, b) => a - b);
      return { runs: sorted.length, p99_ms: percentile(sorted, 99) };
    });
  }

  async finishedSince(since: number): Promise<{ finished: number; failed: number }> {
    return this.call("finishedSince", async () => {
      let finished = 0;
      let failed = 0;
      for (const r of await this.runRows(Math.floor(since / 60))) {
        finished += r.finished;
        failed += r.failed;
      }
      return { finished, failed };
    });
  }

  async throughput(bucketS: number, buckets: number): Promise<ThroughputBucket[]> {
    return this.call("throughput", async () => {
      const end = Math.ceil(Date.now() / 1000 / bucketS) * bucketS;
      const start = end - bucketS * buckets;
      const byBucket = new Map<number, { finished: number; failed: number }>();
      for (const r of await this.runRows(Math.floor(start / 60))) {
        // As SQLite's CAST(... AS INTEGER): toward zero.
        const b = Math.trunc((r.minute * 60 - start) / bucketS);
        const s = byBucket.get(b) ?? { finished: 0, failed: 0 };
        s.finished += r.finished;
        s.failed += r.failed;
        byBucket.set(b, s);
      }
      return Array.from({ length: buckets }, (_, i) => ({
        start: start + i * bucketS,
        finished: byBucket.get(i)?.finished ?? 0,
        failed: byBucket.get(i)?.failed ?? 0,
      }));
    });
  }

  async topNames(
    since: number,
    limit: number,
  ): Promise<{ busiest: NameStat[]; slowest: NameStat[]; longestWait: NameStat[] }> {
    return this.call("topNames", async () =>
      topNamesOf(await this.byName(await this.runRows(Math.floor(since / 60))), limit),
    );
  }

  async counts(): Promise<{ traces: number; tasks: number }> {
    return this.call("counts", async () => {
      const [traces, tasks] = (await this.redis.hmget(`${this.p}count`, "traces", "tasks")) as unknown as (
        string | null
      )[];
      return { traces: Number(traces ?? 0), tasks: Number(tasks ?? 0) };
    });
  }

  async listAnomalies(query: AnomalyQuery): Promise<AnomalyList> {
    return this.call("listAnomalies", async () => {
      const status = query.status ?? "all";
      const limit = Math.min(Math.max(query.limit ?? 200, 1), 1000);
      const sets = status === "open" ? ["open"] : status === "resolved" ? ["resolved"] : ["open", "resolved"];
      const ofTrace =
        query.trace_id === undefined
          ? null
          : new Set((await this.redis.smembers(`${this.p}an:trace:${query.trace_id}`)) as string[]);
      const out: Anomaly[] = [];
      for (const set of sets) {
        // Newest first; equal times by id, descending (the object's ORDER BY).
        for (let offset = 0; out.length < limit; offset += CHUNK) {
          const ids = (await this.redis.zrange(`${this.p}an:${set}`, "+inf", "-inf", {
            byScore: true,
            rev: true,
            offset,
            count: CHUNK,
          })) as unknown as string[];
          const wanted = ofTrace ? ids.filter((id) => ofTrace.has(id)) : ids;
          if (wanted.length) {
            const bodies = (await this.redis.hmget(`${this.p}an`, ...wanted)) as unknown as (string | null)[];
            for (const body of bodies) {
              if (!body || out.length >= limit) continue;
              const a = JSON.parse(body) as Anomaly;
              if (query.kind !== undefined && a.kind !== query.kind) continue;
              if (query.name !== undefined && a.task_name !== query.name) continue;
              out.push(a);
            }
          }
          if (ids.length < CHUNK) break;
        }
      }
      return { anomalies: out };
    });
  }

  async anomalyCounts(): Promise<{
    open: number;
    by_kind: Record<string, number>;
    by_name: Record<string, number>;
  }> {
    return this.call("anomalyCounts", async () => {
      const ids = (await this.redis.zrange(`${this.p}an:open`, 0, -1)) as unknown as string[];
      const byKind: Record<string, number> = {};
      const byName: Record<string, number> = {};
      let open = 0;
      if (ids.length) {
        for (const body of (await this.redis.hmget(`${this.p}an`, ...ids)) as unknown as (string | null)[]) {
          if (!body) continue;
          const a = JSON.parse(body) as Anomaly;
          open++;
          byKind[a.kind] = (byKind[a.kind] ?? 0) + 1;
          if (a.task_name) byName[a.task_name] = (byName[a.task_name] ?? 0) + 1;
        }
      }
      return { open, by_kind: byKind, by_name: byName };
    });
  }
}
