/**
 * A local stand-in for Upstash's REST API: Debian's redis-server on a free loopback port (its own
 * temp dir, append-only file, so a restart keeps the data) behind an HTTP endpoint that speaks what
 * @upstash/redis sends, so the client library runs unmodified against real Redis.
 *
 * Reproduced (and checked by test/node/upstash-endpoint.test.ts with the real client):
 * - `POST /` with a JSON command array → `{"result": ...}`; a Redis error → HTTP 400 `{"error": "..."}`
 * - `POST /pipeline` with an array of commands → HTTP 200, one `{"result"}` or `{"error"}` per command
 * - `POST /multi-exec` → the same shape, the commands run in MULTI/EXEC on their own connection; a
 *   command Redis refuses while queueing aborts the transaction: HTTP 400 `{"error"}`
 * - `Authorization: Bearer <token>`: HTTP 401 `{"error": "Unauthorized"}` without it or with another
 * - `Upstash-Encoding: base64` (the client's default): every string of the result is base64 of its
 *   UTF-8 bytes, except the status "OK"; integers and nulls as they are; nested arrays recursively
 * - Redis unreachable: HTTP 500 `{"error"}` (the client throws, as it does on a failed request)
 *
 * Not reproduced: the GET/path-style API (`/set/key/value`), `?_token=` auth, read-your-writes
 * sync tokens (the header is accepted and ignored: one Redis, nothing to sync), rate and size
 * limits, per-command billing, the RESP3-only replies, EventSource (SUBSCRIBE/MONITOR) streams,
 * binary (non-UTF-8) values.
 *
 * Test-only admin routes (same token): `POST /__admin/stop` stops redis-server (SIGTERM; with
 * `appendfsync always` every acknowledged write is on disk), `POST /__admin/start` starts it again
 * on the same port and directory, which reloads the append-only file. `POST /__admin/stats`
 * answers `{"commands", "requests", "redis_calls"}` served so far: what Upstash would bill (per command; a
 * pipeline or transaction counts each of its commands, a script call counts once).
 *
 * Run by itself: `node test/upstash/rest-endpoint.mjs [--port 8079] [--token secret]`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "redis";

const REDIS_SERVER = "/usr/bin/redis-server";

/** A free loopback port (the kernel's choice, released for the caller to bind). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function encode(value) {
  if (typeof value === "string")
    return value === "OK" ? value : Buffer.from(value, "utf8").toString("base64");
  if (Array.isArray(value)) return value.map(encode);
  return value ?? null;
}

const errorText = (err) => (err instanceof Error ? err.message : String(err));

/**
 * Starts redis-server and the endpoint. Returns `{ url, token, redisPort, stopRedis, startRedis,
 * close }`; `close()` stops both and removes the temp dir.
 */
export async function startUpstashEndpoint({ port = 0, token = "local-upstash-token" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "stemtrace-upstash-"));
  const redisPort = await freePort();
  let redisProc = null;

  async function startRedis() {
    const proc = spawn(
      REDIS_SERVER,
      [
        "--port",
        String(redisPort),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        join(dir, "redis.log"),
      ],
      { stdio: "ignore" },
    );
    redisProc = proc;
    proc.on("exit", () => {
      if (redisProc === proc) redisProc = null;
    });
    for (let i = 0; i < 100; i++) {
      const probe = createClient({
        socket: { host: "127.0.0.1", port: redisPort, reconnectStrategy: false },
      });
      probe.on("error", () => {});
      try {
        await probe.connect();
        await probe.sendCommand(["PING"]);
        await probe.close();
        return;
      } catch {
        await sleep(50);
      }
    }
    throw new Error(`redis-server did not start on 127.0.0.1:${redisPort} (log: ${join(dir, "redis.log")})`);
  }

  async function stopRedis() {
    const proc = redisProc;
    if (!proc) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }

  await startRedis();
  // One shared connection for single commands and pipelines. While redis-server is down, commands
  // fail at once (no offline queue) and the client keeps reconnecting in the background.
  const client = createClient({
    socket: { host: "127.0.0.1", port: redisPort, reconnectStrategy: () => 100 },
    disableOfflineQueue: true,
  });
  client.on("error", () => {});
  await client.connect();

  const served = { commands: 0, requests: 0 };
  const run = (command) => {
    served.commands++;
    return client.sendCommand(command.map(String));
  };

  async function multiExec(commands) {
    served.commands += commands.length;
    const conn = client.duplicate();
    conn.on("error", () => {});
    await conn.connect();
    try {
      await conn.sendCommand(["MULTI"]);
      for (const c of commands) {
        try {
          await conn.sendCommand(c.map(String));
        } catch (err) {
          await conn.sendCommand(["DISCARD"]).catch(() => {});
          throw new Error(`EXECABORT Transaction discarded because of: ${errorText(err)}`);
        }
      }
      const replies = await conn.sendCommand(["EXEC"]);
      return replies.map((r) => (r instanceof Error ? { error: r.message } : { result: r }));
    } finally {
      await conn.close().catch(() => {});
    }
  }

  const server = createServer(async (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: "Unauthorized" });
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const text = Buffer.concat(chunks).toString("utf8");
      const path = new URL(req.url ?? "/", "http://x").pathname.replace(/\/+$/, "") || "/";
      const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
      const out = (result) => (base64 ? encode(result) : (result ?? null));
      if (req.method !== "POST") return send(405, { error: "only POST is served here" });
      if (path === "/__admin/stats") {
        // Redis's own count includes what scripts run inside (an upper bound of a script's cost).
        const info = String(await client.sendCommand(["INFO", "commandstats"]));
        const inRedis = [...info.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
        return send(200, { ...served, redis_calls: inRedis });
      }
      if (path.startsWith("/__admin/") === false) served.requests++;
      if (path === "/__admin/stop") {
        await stopRedis();
        return send(200, { result: "OK" });
      }
      if (path === "/__admin/start") {
        if (!redisProc) await startRedis();
        // Answer once the shared connection is back too, so the next command is served.
        for (let i = 0; i < 100 && !client.isReady; i++) await sleep(50);
        return send(200, { result: "OK" });
      }
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        return send(400, { error: "ERR failed to parse command" });
      }
      if (path === "/") {
        if (!Array.isArray(body) || body.length === 0) return send(400, { error: "ERR empty command" });
        try {
          return send(200, { result: out(await run(body)) });
        } catch (err) {
          return send(isOffline(err) ? 500 : 400, { error: errorText(err) });
        }
      }
      if (path === "/pipeline") {
        if (!Array.isArray(body) || !body.every(Array.isArray))
          return send(400, { error: "ERR a pipeline is an array of commands" });
        const replies = await Promise.all(
          body.map((c) =>
            run(c).then(
              (r) => ({ result: out(r) }),
              (err) => ({ error: errorText(err), offline: isOffline(err) }),
            ),
          ),
        );
        if (replies.some((r) => r.offline)) return send(500, { error: replies.find((r) => r.offline).error });
        return send(200, replies);
      }
      if (path === "/multi-exec") {
        if (!Array.isArray(body) || !body.every(Array.isArray))
          return send(400, { error: "ERR a transaction is an array of commands" });
        try {
          const replies = await multiExec(body);
          return send(
            200,
            replies.map((r) => ("error" in r ? r : { result: out(r.result) })),
          );
        } catch (err) {
          return send(isOffline(err) ? 500 : 400, { error: errorText(err) });
        }
      }
      return send(404, { error: `no route ${path}` });
    } catch (err) {
      send(500, { error: errorText(err) });
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;

  async function close() {
    await new Promise((r) => server.close(r));
    server.closeAllConnections?.();
    await client.close().catch(() => {});
    await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  }

  return { url, token, redisPort, stopRedis, startRedis, close };
}

/** Redis itself did not answer (as opposed to answering with an error reply). */
function isOffline(err) {
  const name = err?.constructor?.name ?? "";
  return name !== "ErrorReply" && !/^[A-Z]+ /.test(errorText(err));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const endpoint = await startUpstashEndpoint({
    port: Number(arg("--port") ?? 0),
    token: arg("--token") ?? "local-upstash-token",
  });
  console.log(`UPSTASH_REDIS_REST_URL=${endpoint.url}`);
  console.log(`UPSTASH_REDIS_REST_TOKEN=${endpoint.token}`);
  const stop = () => endpoint.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
