import { z } from "zod";
import { Event, MAX_EVENTS_PER_BATCH, ProducerReport } from "./wire";

export const EVENT_SCHEMA_PATH = "shared/event.schema.json";

/** The JSON Schema of the batch envelope and of one wire event, as committed in the repo. */
export function eventJsonSchema(): string {
  const { $schema: _drop, ...event } = z.toJSONSchema(Event, { io: "input", unrepresentable: "any" });
  const { $schema: _drop2, ...producer } = z.toJSONSchema(ProducerReport, {
    io: "input",
    unrepresentable: "any",
  });
  const schema = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://stemtrace.dev/schema/wire-v1.json",
    title: "stemtrace wire format v1",
    description: `POST /v1/events body. At most ${MAX_EVENTS_PER_BATCH} events and 1 MiB after decompression; each event is validated on its own.`,
    type: "object",
    required: ["events"],
    properties: {
      events: {
        type: "array",
        minItems: 1,
        maxItems: MAX_EVENTS_PER_BATCH,
        items: { $ref: "#/$defs/Event" },
      },
      producer: {
        $ref: "#/$defs/ProducerReport",
        description:
          "Optional: the sending process's cumulative drop counts by reason (ignored when invalid).",
      },
    },
    $defs: { Event: event, ProducerReport: producer },
  };
  return JSON.stringify(schema, null, 2) + "\n";
}
