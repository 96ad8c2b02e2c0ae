import type { TestProject } from "vitest/node";
import { startUpstashEndpoint } from "./rest-endpoint.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    upstash: { url: string; token: string };
  }
}

/** redis-server and the Upstash REST endpoint for the whole run, on the port vitest.config.ts chose. */
export default async function setup(project: TestProject) {
  const endpoint = await startUpstashEndpoint({
    port: Number(process.env.STEMTRACE_UPSTASH_PORT),
    token: "contract-suite-token",
  });
  project.provide("upstash", { url: endpoint.url, token: endpoint.token });
  return () => endpoint.close();
}
