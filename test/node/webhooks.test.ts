/**
 * Webhooks without the runtime: the signature against a known vector (computed with Python's hmac
 * and openssl), the receiver snippets of docs/webhooks (Node and Python) against stemtrace's own
 * signing, the settings parser, the retry rules, and the shard's outbox (hand-off retried, nothing
 * kept when webhooks are off).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  classifyStatus,
  retryAfterS,
  retryDelayS,
  signatureHeader,
  webhookConfigFrom,
  webhookSignature,
  WEBHOOK_MAX_ATTEMPTS,
} from "../../shared/webhooks";
import { WebhookOutbox } from "../../durable-objects/webhook-outbox";
import type { IndexReport, WebhookNotice } from "../../durable-objects/protocol";
import type { TraceSummary } from "../../shared/api";
// @ts-expect-error: a plain .mjs snippet for receivers, without types
import { verifyStemtraceSignature } from "../../docs/webhooks/verify-signature.mjs";

const SECRET = "stemtrace-test-secret";
const BODY = '{"id":"trace.failed:abc:1","type":"trace.failed"}';
const VECTOR = "2b9cf5a473450054a6e17c021103a117608ab07532dda5a06e3ef04f9a4ce843";

describe("signature", () => {
  it("is the hex HMAC-SHA256 of '<t>.<body>' (known vector)", async () => {
    expect(await webhookSignature(SECRET, 1700000000, BODY)).toBe(VECTOR);
    expect(await signatureHeader(SECRET, 1700000000, BODY)).toBe(`t=1700000000,v1=${VECTOR}`);
  });

  it("changes with the body, the time and the secret", async () => {
    expect(await webhookSignature(SECRET, 1700000000, BODY + " ")).not.toBe(VECTOR);
    expect(await webhookSignature(SECRET, 1700000001, BODY)).not.toBe(VECTOR);
    expect(await webhookSignature(SECRET + "x", 1700000000, BODY)).not.toBe(VECTOR);
  });

  it("is accepted by the docs' Node snippet, which refuses tampering and old timestamps", async () => {
    const t = 1700000000;
    const header = await signatureHeader(SECRET, t, BODY);
    expect(verifyStemtraceSignature(SECRET, header, BODY, t + 10)).toBe(true);
    expect(verifyStemtraceSignature(SECRET, header, Buffer.from(BODY), t)).toBe(true);
    expect(verifyStemtraceSignature(SECRET, header, BODY.replace("abc", "abd"), t)).toBe(false);
    expect(verifyStemtraceSignature("wrong", header, BODY, t)).toBe(false);
    expect(verifyStemtraceSignature(SECRET, header, BODY, t + 301)).toBe(false);
    expect(verifyStemtraceSignature(SECRET, "t=1700000000", BODY, t)).toBe(false);
    expect(verifyStemtraceSignature(SECRET, undefined, BODY, t)).toBe(false);
  });

  it("is accepted by the docs' Python snippet, which refuses tampering and old timestamps", async () => {
    const dir = mkdtempSync(join(tmpdir(), "stemtrace-webhook-"));
    const good = join(dir, "body.json");
    const bad = join(dir, "tampered.json");
    writeFileSync(good, BODY);
    writeFileSync(bad, BODY.replace("abc", "abd"));
    const t = 1700000000;
    const header = await signatureHeader(SECRET, t, BODY);
    const run = (secret: string, file: string, now: number) =>
      execFileSync(
        "/usr/bin/python3",
        ["docs/webhooks/verify_signature.py", secret, header, file, String(now)],
        {
          encoding: "utf8",
        },
      ).trim();
    expect(run(SECRET, good, t + 10)).toBe("ok");
    expect(run(SECRET, bad, t)).toBe("bad");
    expect(run("wrong", good, t)).toBe("bad");
    expect(run(SECRET, good, t - 301)).toBe("bad");
  });
});

describe("settings", () => {
  it("reads URLs, events and the secret; reports problems without echoing values", () => {
    const c = webhookConfigFrom({
      WEBHOOK_URLS:
        " https://hooks.example.com/a?token=s3cret , ftp://x.example.com/, nonsense,https://hooks.example.com/a?token=s3cret",
      WEBHOOK_SECRET: "k",
      WEBHOOK_EVENTS: "trace.failed, anomaly.resolved, bogus.event",
    });
    expect(c.endpoints).toEqual([
      { url: "https://hooks.example.com/a?token=s3cret", host: "hooks.example.com" },
    ]);
    expect(c.events).toEqual(["trace.failed", "anomaly.resolved"]);
    expect(c.secret).toBe("k");
    expect(c.problems).toHaveLength(3);
    expect(c.problems.join(" ")).not.toContain("s3cret");
    expect(c.problems.join(" ")).toMatch(
      /entry 2 is not an http\(s\) URL.*entry 3 is not a URL.*bogus\.event/,
    );
  });

  it("defaults to anomaly.opened and trace.failed, and says when the secret is missing", () => {
    const c = webhookConfigFrom({ WEBHOOK_URLS: "https://h.example.com/" });
    expect(c.events).toEqual(["anomaly.opened", "trace.failed"]);
    expect(c.secret).toBeNull();
    expect(c.problems).toEqual([expect.stringContaining("WEBHOOK_SECRET is not set")]);
    expect(webhookConfigFrom({}).endpoints).toEqual([]);
    expect(webhookConfigFrom({}).problems).toEqual([]);
  });
});

describe("retries", () => {
  it("retries network-like answers (408, 429, 5xx), stops at other 4xx, succeeds on 2xx", () => {
    expect([200, 202, 204].map(classifyStatus)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect([408, 429, 500, 502, 503].map(classifyStatus)).toEqual([
      "retry",
      "retry",
      "retry",
      "retry",
      "retry",
    ]);
    expect([400, 401, 403, 404, 410, 422].map(classifyStatus)).toEqual(Array(6).fill("failed"));
  });

  it("backs off exponentially with jitter, 8 attempts over about an hour", () => {
    const low = () => 0;
    const high = () => 0.999999;
    const waits = (random: () => number) =>
      Array.from({ length: WEBHOOK_MAX_ATTEMPTS - 1 }, (_, i) => retryDelayS(i + 1, random));
    expect(waits(() => 0.5)).toEqual([30, 60, 120, 240, 480, 960, 1800]);
    const total = (random: () => number) => waits(random).reduce((a, b) => a + b, 0);
    expect(total(low)).toBeGreaterThan(2700); // ≥ 45 min
    expect(total(high)).toBeLessThan(5400); // < 90 min
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(retryAfterS("120", 1000)).toBe(120);
    expect(retryAfterS(new Date(1_000_000 + 90_000).toUTCString(), 1000)).toBe(90);
    expect(retryAfterS("soon", 1000)).toBeNull();
    expect(retryAfterS(null, 1000)).toBeNull();
  });
});

function summary(trace_id: string, state: TraceSummary["state"], failure_count = 0): TraceSummary {
  return {
    trace_id,
    state,
    root_task_id: trace_id,
    root_name: "app.x",
    task_count: 1,
    failure_count,
    started_at: 1,
    updated_at: 2,
    finished_at: 2,
    duration_ms: 1000,
    workers: [],
    task_names: ["app.x"],
    anomaly_count: 0,
    not_run_count: 0,
  };
}

const report = (...summaries: TraceSummary[]): IndexReport => ({
  traces: summaries.map((s) => ({ sort_at: 1, day: 0, summary: s })),
  tasks: [],
  runs: [],
  anomalies: [],
});

describe("the shard's outbox", () => {
  it("hands over failed and failing traces only, and keeps them when the call fails", async () => {
    const sent: WebhookNotice[] = [];
    let down = true;
    const outbox = new WebhookOutbox({ WEBHOOK_URLS: "https://h.example.com/" }, () => ({
      notify: async (n: WebhookNotice) => {
        if (down) throw new Error("object restarting");
        sent.push(n);
      },
    }));
    outbox.add(report(summary("ok", "SUCCESS"), summary("bad", "FAILURE", 1), summary("run", "STARTED", 1)));
    await outbox.send(100);
    expect(sent).toEqual([]);
    expect(outbox.retryAt).toBe(105);
    outbox.add(report(summary("bad2", "LOST", 1)));
    down = false;
    await outbox.send(106);
    expect(outbox.retryAt).toBeNull();
    expect(sent.map((n) => n.traces.map((t) => t.trace_id))).toEqual([["bad", "run", "bad2"]]);
    await outbox.send(107);
    expect(sent).toHaveLength(1); // nothing held: no call
  });

  it("keeps and sends nothing without WEBHOOK_URLS", async () => {
    let calls = 0;
    const outbox = new WebhookOutbox({}, () => ({
      notify: async () => {
        calls++;
      },
    }));
    outbox.add(report(summary("bad", "FAILURE", 1)));
    await outbox.send(1);
    expect(calls).toBe(0);
  });
});
