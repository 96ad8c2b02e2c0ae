/** `npm run schema`: writes the wire event schema as JSON Schema for producers in other languages. */
import { writeFileSync } from "node:fs";
import { eventJsonSchema, EVENT_SCHEMA_PATH } from "./json-schema";

writeFileSync(EVENT_SCHEMA_PATH, eventJsonSchema());
console.log(`wrote ${EVENT_SCHEMA_PATH}`);
