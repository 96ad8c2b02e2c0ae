// Project types for the Workers runtime globals (what `wrangler types` would generate).
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("./worker/index");
    durableNamespaces: "TraceGraph" | "Fleet" | "TraceIndex";
  }
  interface Env extends import("./durable-objects/env").Env {}
}
