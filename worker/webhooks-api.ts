/**
 * `/api/webhooks`: what is configured (hosts only), the delivery log, and redelivery. Mounted by
 * worker/api.ts after its read rule; redelivering sends requests out, so it needs the ingest
 * permission (a service token or INGEST_TOKEN; in local mode anyone).
 */
import { Hono } from "hono";
import { zValidator } from "@hono/zod-validator";
import { z } from "zod";
import { WEBHOOKS_NAME, type Env } from "../durable-objects/env";
import {
  webhookConfigFrom,
  WebhookDeliveryStatus,
  type WebhookDeliveryList,
  type WebhookSettings,
} from "../shared/webhooks";
import { requireAuth, type Caller } from "./auth";
import { HttpError } from "./errors";

type ApiEnv = { Bindings: Env; Variables: { caller: Caller } };

const DeliveryQuery = z.object({
  status: WebhookDeliveryStatus.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

const webhooksOf = (env: Env) => env.WEBHOOKS.getByName(WEBHOOKS_NAME);

export const webhooks = new Hono<ApiEnv>()
  .get("/", (c) => {
    const config = webhookConfigFrom(c.env);
    const settings: WebhookSettings = {
      endpoints: config.endpoints.map((e) => ({ host: e.host })),
      events: config.events,
      secret_set: config.secret !== null,
      problems: config.problems,
    };
    return c.json(settings, 200);
  })
  .get(
    "/deliveries",
    zValidator(
      "query",
      z.preprocess(
        (q) =>
          q && typeof q === "object" ? Object.fromEntries(Object.entries(q).filter(([, v]) => v !== "")) : q,
        DeliveryQuery,
      ),
      (result) => {
        if (!result.success)
          throw new HttpError(400, "invalid_query", "invalid query parameters", result.error.issues);
      },
    ),
    async (c) => {
      const q = c.req.valid("query");
      const list: WebhookDeliveryList = { deliveries: await webhooksOf(c.env).deliveries(q) };
      return c.json(list, 200);
    },
  )
  .post("/deliveries/:id/redeliver", requireAuth("ingest"), async (c) => {
    const id = c.req.param("id");
    const delivery = id.length <= 100 ? await webhooksOf(c.env).redeliver(id) : null;
    if (!delivery)
      throw new HttpError(
        404,
        "not_found",
        `no webhook delivery ${JSON.stringify(id.slice(0, 100))} in the log (it keeps the latest 2,000, for 7 days)`,
      );
    return c.json(delivery, 200);
  });
