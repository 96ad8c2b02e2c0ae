/**
 * `npm start` / `npm run dev` (worker/dev.mjs): the port from PORT or --port, other arguments passed
 * to wrangler dev, successful ingest lines left out of the log. The real launcher is started on a
 * free port, answers /api/health, and stops (wrangler and workerd with it) when its PID is signalled.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module without types (it runs on Node 20 before the toolchain exists)
import { isIngestLine, parseArgs } from "../../worker/dev.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const NODE = join(ROOT, "node_modules/.bin/node");

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
    srv.on("error", fail);
  });
}

describe("launcher arguments", () => {
  it("takes --port over PORT over 8787, and passes everything else through", () => {
    expect(parseArgs([], {}).port).toBe(8787);
    expect(parseArgs([], { PORT: "18921" }).port).toBe(18921);
    expect(parseArgs(["--port", "18922"], { PORT: "18921" }).port).toBe(18922);
    expect(parseArgs(["--port=18923"], {}).port).toBe(18923);
    const opts = parseArgs(["--persist-to", "/tmp/x", "--port", "1", "--var", "A:1", "--no-build"], {});
    expect(opts).toMatchObject({ port: 1, build: false });
    expect(opts.passThrough).toEqual(["--ip", "127.0.0.1", "--persist-to", "/tmp/x", "--var", "A:1"]);
    expect(parseArgs(["--ip", "0.0.0.0"], {}).passThrough).toEqual(["--ip", "0.0.0.0"]);
  });

  it("refuses a port that is not one, saying which setting was wrong", () => {
    expect(() => parseArgs(["--port", "abc"], {})).toThrow('--port="abc" is not a port number');
    expect(() => parseArgs([], { PORT: "70000" })).toThrow('PORT="70000" is not a port number');
    expect(() => parseArgs(["--port"], {})).toThrow("--port needs a value");
  });

  it("recognizes only successful ingest lines as quiet", () => {
    expect(isIngestLine("[wrangler:info] POST /v1/events 202 Accepted (12ms)")).toBe(true);
    expect(
      isIngestLine("\x1b[32m[wrangler:info]\x1b[0m POST /v1/events \x1b[32m202 Accepted\x1b[0m (3ms)"),
    ).toBe(true);
    expect(isIngestLine("[wrangler:info] POST /v1/events 401 Unauthorized (2ms)")).toBe(false);
    expect(isIngestLine("[wrangler:info] GET /api/health 200 OK (2ms)")).toBe(false);
    expect(isIngestLine("[wrangler:info] Ready on http://127.0.0.1:8787")).toBe(false);
  });
});

describe("the launcher, for real", () => {
  const started: { child: ChildProcess; persist: string }[] = [];
  afterEach(() => {
    for (const { child, persist } of started.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      rmSync(persist, { recursive: true, force: true });
    }
  });

  async function launch(args: string[], env: Record<string, string>) {
    const persist = mkdtempSync(join(tmpdir(), "stemtrace-launcher-"));
    const inspector = await freePort();
    const child = spawn(
      NODE,
      ["worker/dev.mjs", "--persist-to", persist, "--inspector-port", String(inspector), ...args],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    started.push({ child, persist });
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((ok) => child.on("exit", (code) => ok(code)));
    return { child, output: () => output, exited, persist };
  }

  async function health(base: string, child: ChildProcess, output: () => string) {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the launcher exited early:\n${output()}`);
      try {
        const res = await fetch(`${base}/api/health`);
        if (res.ok) return (await res.json()) as { ok: boolean };
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Sends one valid event (whose log line must be left out) and one to a wrong path (kept). */
  async function ingest(base: string) {
    const event = {
      v: 1,
      id: `launcher-${base}`,
      ts: Date.now() / 1000,
      seq: 1,
      host: null,
      kind: "task",
      type: "published",
      task_id: "launcher-task",
      name: "app.add",
    };
    const ok = await fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: [event] }),
    });
    expect(ok.status).toBe(202);
    const wrong = await fetch(`${base}/api/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    expect(wrong.status).toBe(404);
  }

  /** Waits until the launcher's output shows `line` (wrangler logs a request after answering it). */
  async function logged(output: () => string, line: RegExp) {
    while (!line.test(output())) await new Promise((r) => setTimeout(r, 100));
  }

  async function stopByPid(child: ChildProcess, exited: Promise<number | null>, base: string) {
    process.kill(child.pid!, "SIGTERM");
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/api/health`)).rejects.toThrow(); // wrangler and workerd went with it
  }

  it("PORT=… builds the UI and serves on that port", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { child, output, exited } = await launch([], { PORT: String(port) });
    expect((await health(base, child, output)).ok).toBe(true);
    expect((await fetch(`${base}/`)).headers.get("content-type")).toContain("text/html"); // the built UI
    await ingest(base);
    // The 404 was sent after the 202: once its line is out, the 202's would be too.
    await logged(output, /POST \/api\/v1\/events 404/);
    await stopByPid(child, exited, base);
    expect(output()).toContain(`producers need STEMTRACE_URL=${base}`);
    expect(output()).toContain(`Ready on ${base}`);
    expect(output()).not.toMatch(/POST \/v1\/events 202/);
    expect(output()).not.toContain("workers.cloudflare.com");
  }, 180_000);

  it("--port … wins over PORT and other arguments reach wrangler dev", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { child, output, exited, persist } = await launch(
      ["--no-build", "--port", String(port), "--var", "RETENTION_DAYS:3", "--log-ingest"],
      { PORT: "1" },
    );
    expect((await health(base, child, output)).ok).toBe(true);
    await ingest(base);
    await logged(output, /POST \/api\/v1\/events 404/);
    await stopByPid(child, exited, base);
    // wrangler lists a --var as "(hidden)" where the default is shown: the argument reached it.
    expect(output()).toContain('RETENTION_DAYS ("(hidden)")');
    expect(readdirSync(persist).length).toBeGreaterThan(0); // and so did --persist-to
    expect(output()).toMatch(/POST \/v1\/events 202/); // --log-ingest keeps them
  }, 180_000);

  it("a bad port is refused before anything starts", async () => {
    const { exited, output } = await launch([], { PORT: "http://x" });
    expect(await exited).toBe(2);
    expect(output()).toContain('PORT="http://x" is not a port number');
  });
});
