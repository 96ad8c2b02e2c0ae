/**
 * Webhook delivery latency through `wrangler dev`: N traces fail (one task each, sent in batches
 * of 50 as a producer would), with WEBHOOK_URLS pointing at a receiver on loopback that checks
 * every signature. Measures, per trace, the time from the POST of its batch to the receiver
 * getting its `trace.failed` event (shard flush → Webhooks object → its alarm → HTTP), and checks
 * that each trace is delivered exactly once with a valid signature.
 * Writes bench/results/webhooks.json and webhooks.md.
 *   node_modules/.bin/node bench/webhooks.mjs [--traces 300]
 */
import { execSync } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { ROOT, startWranglerDev } from "./wrangler-dev.mjs";

const args = process.argv.slice(2);
const TRACES = Number(args[args.indexOf("--traces") + 1] || 300);
const SECRET = "bench-secret";

const received = new Map(); // trace id → [ms received, ...]
let badSignatures = 0;
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const at = performance.now();
    const raw = Buffer.concat(chunks);
    const parts = Object.fromEntries(
      String(req.headers["stemtrace-signature"] ?? "")
        .split(",")
        .map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
    );
    const expected = createHmac("sha256", SECRET).update(`${parts.t}.`).update(raw).digest();
    const got = Buffer.from(parts.v1 ?? "", "hex");
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) badSignatures++;
    const traceId = JSON.parse(raw.toString()).data.trace_id;
    received.set(traceId, [...(received.get(traceId) ?? []), at]);
    res.writeHead(200).end("ok");
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const load = () => os.loadavg().map((x) => x.toFixed(2));
const loadBefore = load();
const server = await startWranglerDev({
  vars: { WEBHOOK_URLS: `http://127.0.0.1:${receiver.address().port}/hook`, WEBHOOK_SECRET: SECRET },
});
const sentAt = new Map();
try {
  let seq = 0;
  const ids = Array.from({ length: TRACES }, (_, i) => `bench-hook-${Date.now()}-${i}`);
  for (let i = 0; i < ids.length; i += 50) {
    const events = ids.slice(i, i + 50).flatMap((id) => {
      const ts = Date.now() / 1000;
      return ["received", "started", "failed"].map((type, k) => ({
        v: 1,
        id: `${id}-${++seq}`,
        kind: "task",
        type,
        ts: ts - 1 + k * 0.1,
        seq,
        host: "w1@bench",
        pid: 1,
        task_id: id,
        name: "bench.fails",
        trace_id: id,
        ...(type === "failed" ? { exception: { type: "ValueError", message: "bench" } } : {}),
      }));
    });
    const t0 = performance.now();
    const res = await fetch(`${server.base}/v1/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events }),
    });
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}`);
    for (const id of ids.slice(i, i + 50)) sentAt.set(id, t0);
  }
  const deadline = Date.now() + 120_000;
  while (received.size < TRACES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // A little longer, so that a duplicate delivery would be seen.
  await new Promise((r) => setTimeout(r, 3000));

  const latencies = [...sentAt].filter(([id]) => received.has(id)).map(([id, t]) => received.get(id)[0] - t);
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  const result = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model}; ${process.version}`,
    load_before: loadBefore,
    load_after: load(),
    traces: TRACES,
    delivered: received.size,
    duplicates: [...received.values()].filter((v) => v.length > 1).length,
    bad_signatures: badSignatures,
    latency_ms: {
      p50: pct(50),
      p95: pct(95),
      max: latencies.at(-1),
    },
    commit: execSync("git rev-parse --short HEAD", { cwd: ROOT }).toString().trim(),
  };
  const r = (x) => (x === undefined ? "—" : x.toFixed(0));
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(join(ROOT, "bench/results/webhooks.json"), JSON.stringify(result, null, 2) + "\n");
  writeFileSync(
    join(ROOT, "bench/results/webhooks.md"),
    `# Webhook delivery latency (bench/webhooks.mjs)

- date: ${result.date}; commit ${result.commit}
- machine: ${result.machine}; load average before ${result.load_before.join(" ")}, after ${result.load_after.join(" ")}
- through \`wrangler dev\` (local workerd, FLUSH_INTERVAL_S = 1, 16 shards): ${TRACES} traces of one failing task, posted in batches of 50; one endpoint on loopback answering 200 at once

| | value |
|---|---|
| traces failed / \`trace.failed\` deliveries received | ${TRACES} / ${result.delivered} |
| delivered twice | ${result.duplicates} |
| bad signatures | ${result.bad_signatures} |
| ingest POST → receiver, p50 / p95 / max | ${r(result.latency_ms.p50)} / ${r(result.latency_ms.p95)} / ${r(result.latency_ms.max)} ms |

The floor is the shard's flush interval (1 s); the rest is the Webhooks object's alarm working
through the queue, at most 20 deliveries per run (${TRACES} deliveries: ${Math.ceil(TRACES / 20)} runs), and waiting for CPU: compare
the load average above with the machine's cores.

Run: \`node_modules/.bin/node bench/webhooks.mjs [--traces 300]\`.
`,
  );
  console.log(JSON.stringify(result, null, 2));
} finally {
  await server.stop();
  receiver.close();
}
