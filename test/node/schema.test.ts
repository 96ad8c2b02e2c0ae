import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { eventJsonSchema } from "../../shared/json-schema";

describe("shared/event.schema.json", () => {
  it("is the current export of the zod wire schema (run `npm run schema` when this fails)", () => {
    const committed = readFileSync(
      fileURLToPath(new URL("../../shared/event.schema.json", import.meta.url)),
      "utf8",
    );
    expect(committed).toBe(eventJsonSchema());
  });
});
