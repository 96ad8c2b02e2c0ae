/** The webhooks API (`/api/webhooks`): settings, the delivery log, redelivery. */
import { queryOptions } from "@tanstack/react-query";
import {
  WebhookDelivery,
  WebhookDeliveryList,
  WebhookSettings,
  type WebhookDeliveryStatus,
} from "../../../shared/webhooks";
import { ApiError, fetchJson } from "./client";
import { encodeId } from "../format";

export const webhookSettingsQuery = () =>
  queryOptions({
    queryKey: ["webhooks", "settings"] as const,
    queryFn: () => fetchJson("/api/webhooks", WebhookSettings),
  });

export const webhookDeliveriesQuery = (status?: WebhookDeliveryStatus) =>
  queryOptions({
    queryKey: ["webhooks", "deliveries", status ?? "all"] as const,
    queryFn: () =>
      fetchJson(
        `/api/webhooks/deliveries?limit=200${status ? `&status=${status}` : ""}`,
        WebhookDeliveryList,
      ),
    // Retries happen in the background (seconds to minutes apart): the log follows them.
    refetchInterval: 5_000,
  });

/** Sends a delivery again now; answers it after that attempt. */
export async function redeliver(id: string): Promise<WebhookDelivery> {
  const res = await fetch(`/api/webhooks/deliveries/${encodeId(id)}/redeliver`, {
    method: "POST",
    headers: { Accept: "application/json" },
  });
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const message =
      typeof body === "object" && body !== null && "error" in body
        ? String((body as { error: { message?: unknown } }).error.message ?? res.statusText)
        : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message);
  }
  return WebhookDelivery.parse(body);
}
