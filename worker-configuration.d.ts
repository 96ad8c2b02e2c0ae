// Project types for the Workers runtime globals (what `wrangler types` would generate).
type StemtraceEnv = import("./durable-objects/env").Env;
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("./worker/index");
    durableNamespaces: "TraceGraph" | "Fleet" | "TraceIndex";
  }
  interface Env extends StemtraceEnv {}
}
