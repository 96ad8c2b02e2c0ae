/**
 * A minimal DevTools-protocol client for the Worker's isolate under `wrangler dev`, through
 * wrangler's own inspector proxy (`--inspector-port`): JS heap usage and CPU profiles for benchmarks.
 * All of the Worker's Durable Objects (TraceGraph, TraceIndex, Fleet) and the Worker itself share
 * this one isolate, so its heap is the JS memory of the whole app.
 */
export async function connectInspector(inspectorPort) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  // The proxy refuses upgrades without an Origin it knows (it serves DevTools pages).
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl, { headers: { Origin: "http://127.0.0.1" } });
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error("inspector connection failed")), { once: true });
  });
  let nextId = 1;
  const pending = new Map();
  ws.addEventListener("message", (m) => {
    const msg = JSON.parse(String(m.data));
    const waiter = msg.id !== undefined ? pending.get(msg.id) : undefined;
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${waiter.method}: ${msg.error.message}`));
    else waiter.resolve(msg.result);
  });
  const send = (method, params = {}, timeoutMs = 60_000) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`inspector: no answer to ${method}`));
      }, timeoutMs);
      pending.set(id, {
        method,
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    send,
    /** JS heap of the isolate, in MiB (workerd does not answer HeapProfiler.collectGarbage: garbage included). */
    async heapUsage() {
      const { usedSize, totalSize, embedderHeapUsedSize, backingStorageSize } =
        await send("Runtime.getHeapUsage");
      const mib = (n) => +((n ?? 0) / 2 ** 20).toFixed(1);
      return {
        used_mib: mib(usedSize),
        total_mib: mib(totalSize),
        embedder_mib: mib(embedderHeapUsedSize),
        backing_store_mib: mib(backingStorageSize),
      };
    },
    async startProfile(intervalUs = 500) {
      await send("Profiler.enable");
      await send("Profiler.setSamplingInterval", { interval: intervalUs });
      await send("Profiler.start");
    },
    async stopProfile() {
      const { profile } = await send("Profiler.stop");
      await send("Profiler.disable");
      return profile;
    },
    close() {
      ws.close();
    },
  };
}

/** Self and inclusive time per function of a V8 CPU profile, as percentages of all samples. */
export function summarizeProfile(profile, top = 30) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map();
  for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const label = (n) => {
    const f = n.callFrame;
    return `${f.functionName || "(anonymous)"}${f.url ? ` ${f.url.split("/").pop()}:${f.lineNumber + 1}` : ""}`;
  };
  const self = new Map();
  const inclusive = new Map();
  for (const [id, count] of hits) {
    const key = label(byId.get(id));
    self.set(key, (self.get(key) ?? 0) + count);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + count);
    }
  }
  const total = profile.samples.length;
  const rows = (m) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, count]) => ({ pct: +((100 * count) / total).toFixed(1), fn }));
  return {
    samples: total,
    ms: Math.round((profile.endTime - profile.startTime) / 1000),
    self: rows(self),
    inclusive: rows(inclusive),
  };
}
