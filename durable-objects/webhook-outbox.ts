/**
 * The TraceGraph side of webhooks: after each report the index took, the anomalies and failing
 * traces in it are handed to the Webhooks object, in the same flush. A call that fails is kept in
 * memory and sent again at the shard's next flush or alarm (`retryAt`); the Webhooks object dedupes
 * by event id, so sending twice delivers once. Without WEBHOOK_URLS nothing is kept or sent.
 */
import { isFailed } from "../shared/states";
import { webhookConfigFrom, type WebhookEventType } from "../shared/webhooks";
import type { IndexReport, WebhookNotice } from "./protocol";

/** Notices held while the Webhooks object cannot be reached; beyond this the oldest go (logged). */
const MAX_HELD = 10_000;
const RETRY_FIRST_S = 5;
const RETRY_MAX_S = 300;

export class WebhookOutbox {
  private held: WebhookNotice = { anomalies: [], traces: [] };
  private failures = 0;
  /** When to send what is held again (the shard's alarm includes it), or null. */
  retryAt: number | null = null;
  private readonly events: readonly WebhookEventType[];
  private readonly enabled: boolean;

  constructor(
    env: { WEBHOOK_URLS?: string; WEBHOOK_EVENTS?: string },
    private readonly target: () => { notify(notice: WebhookNotice): Promise<unknown> },
  ) {
    const config = webhookConfigFrom(env);
    this.enabled = config.endpoints.length > 0;
    this.events = config.events;
  }

  /** Takes what a report the index accepted says: anomalies and traces that failed or have failures. */
  add(report: IndexReport): void {
    if (!this.enabled) return;
    const wantsAnomalies = this.events.some((e) => e.startsWith("anomaly."));
    if (wantsAnomalies) this.held.anomalies.push(...report.anomalies);
    if (this.events.includes("trace.failed"))
      for (const t of report.traces)
        if (isFailed(t.summary.state) || t.summary.failure_count > 0 || (t.summary.not_run_count ?? 0) > 0)
          this.held.traces.push(t.summary);
    const over = this.held.anomalies.length + this.held.traces.length - MAX_HELD;
    if (over > 0) {
      console.warn(`trace graph: dropping ${over} webhook notices (the Webhooks object is unreachable)`);
      const traces = Math.min(over, this.held.traces.length);
      this.held.traces.splice(0, traces);
      this.held.anomalies.splice(0, over - traces);
    }
  }

  /** Sends what is held; on failure keeps it and sets `retryAt`. Never throws. */
  async send(now: number): Promise<void> {
    if (this.held.anomalies.length === 0 && this.held.traces.length === 0) {
      this.retryAt = null;
      return;
    }
    const notice = this.held;
    this.held = { anomalies: [], traces: [] };
    try {
      await this.target().notify(notice);
      this.failures = 0;
      this.retryAt = null;
    } catch (err) {
      this.failures++;
      console.warn(
        `trace graph: the Webhooks object did not take ${notice.anomalies.length} anomalies and ${notice.traces.length} traces; retrying`,
        err,
      );
      this.held = {
        anomalies: [...notice.anomalies, ...this.held.anomalies],
        traces: [...notice.traces, ...this.held.traces],
      };
      this.retryAt = now + Math.min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (this.failures - 1));
    }
  }
}
