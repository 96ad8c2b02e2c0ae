/**
 * The local Upstash REST endpoint (test/upstash/rest-endpoint.mjs) does what its header says, with
 * the real @upstash/redis client and with raw requests for the wire shapes the client expects.
 */
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpstashEndpoint } from "../upstash/rest-endpoint.mjs";

interface Endpoint {
  url: string;
  token: string;
  stopRedis(): Promise<void>;
  startRedis(): Promise<void>;
  close(): Promise<void>;
}

let ep: Endpoint;
let redis: Redis;

beforeAll(async () => {
  ep = (await startUpstashEndpoint()) as Endpoint;
  redis = new Redis({
    url: ep.url,
    token: ep.token,
    automaticDeserialization: false,
    enableTelemetry: false,
    retry: false,
  });
});
afterAll(async () => ep?.close());

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(ep.url + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${ep.token}`, ...headers },
    body: JSON.stringify(body),
  });

describe("Upstash REST endpoint", () => {
  it("runs single commands through the client (UTF-8 values survive base64)", async () => {
    expect(await redis.set("greeting", "héllo ✓")).toBe("OK");
    expect(await redis.get("greeting")).toBe("héllo ✓");
    expect(await redis.incr("counter")).toBe(1);
    expect(await redis.ping()).toBe("PONG");
    await redis.zadd("z", { score: 1.5, member: "m" });
    expect(await redis.zrange("z", 0, -1, { withScores: true })).toEqual(["m", "1.5"]);
  });

  it("answers in Upstash's shapes: {result}, base64 on request, 400 {error}", async () => {
    await redis.set("plain", "abc");
    const encoded = await post("/", ["GET", "plain"], { "Upstash-Encoding": "base64" });
    expect(await encoded.json()).toEqual({ result: Buffer.from("abc").toString("base64") });
    const raw = await post("/", ["MGET", "plain", "missing"]);
    expect(await raw.json()).toEqual({ result: ["abc", null] });
    expect(await (await post("/", ["SET", "k", "v"], { "Upstash-Encoding": "base64" })).json()).toEqual({
      result: "OK",
    });
    const bad = await post("/", ["LPUSH", "plain", "x"]);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^WRONGTYPE/);
  });

  it("refuses requests without the bearer token", async () => {
    const none = await fetch(ep.url + "/", { method: "POST", body: JSON.stringify(["PING"]) });
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: "Unauthorized" });
    const wrong = new Redis({ url: ep.url, token: "wrong", enableTelemetry: false, retry: false });
    await expect(wrong.get("plain")).rejects.toThrow(/Unauthorized/);
  });

  it("pipelines: one entry per command, errors in place", async () => {
    const out = await redis
      .pipeline()
      .set("p", "1")
      .incr("p")
      .lpush("p", "x")
      .hget("nothing", "f")
      .exec({ keepErrors: true });
    expect(out.map((r) => r.result ?? null)).toEqual(["OK", 2, null, null]);
    expect(out[2]!.error).toMatch(/^WRONGTYPE/);
    const raw = await post("/pipeline", [["GET", "p"], ["NOSUCHCOMMAND"]]);
    expect(raw.status).toBe(200);
    const entries = (await raw.json()) as { result?: unknown; error?: string }[];
    expect(entries[0]).toEqual({ result: "2" });
    expect(entries[1]!.error).toMatch(/unknown command/i);
  });

  it("multi-exec: a transaction, aborted whole when Redis refuses a command while queueing", async () => {
    const out = await redis.multi().set("t", "1").incr("t").exec();
    expect(out).toEqual(["OK", 2]);
    const aborted = await post("/multi-exec", [["SET", "t", "9"], ["NOSUCHCOMMAND"]]);
    expect(aborted.status).toBe(400);
    expect(((await aborted.json()) as { error: string }).error).toMatch(/EXECABORT/);
    expect(await redis.get("t")).toBe("2");
  });

  it("runs scripts (EVALSHA, falling back to EVAL)", async () => {
    const script = redis.createScript<[string, number]>("return {ARGV[1], redis.call('INCR', KEYS[1])}");
    expect(await script.exec(["s"], ["x"])).toEqual(["x", 1]);
    expect(await script.exec(["s"], ["y"])).toEqual(["y", 2]);
  });

  it("fails while redis-server is down and keeps the data across a restart (append-only file)", async () => {
    await redis.set("durable", "yes");
    await ep.stopRedis();
    await expect(redis.get("durable")).rejects.toThrow(/offline|closed|connect/i);
    await ep.startRedis();
    let value: unknown = null;
    for (let i = 0; i < 50 && value === null; i++) {
      value = await redis.get("durable").catch(() => null);
      if (value === null) await new Promise((r) => setTimeout(r, 100));
    }
    expect(value).toBe("yes");
  });
});
