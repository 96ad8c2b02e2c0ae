import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

/**
 * `_headers` for Workers static assets: files under /assets/ carry a content hash in their name,
 * so browsers may keep them for a year without asking again. The default (`max-age=0,
 * must-revalidate`) costs a round trip per asset on every visit, the 1.6 MB elk worker
 * included, before the graph can be laid out.
 * https://developers.cloudflare.com/workers/static-assets/headers/
 */
function immutableAssets(): Plugin {
  return {
    name: "stemtrace-immutable-assets",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "_headers", source: "/assets/*\n  Cache-Control: public, max-age=31536000, immutable\n" });
    },
  };
}

// The SPA is built into web/dist, which wrangler serves as static assets (SPA fallback on deep links).
export default defineConfig({
  root: "web",
  plugins: [react(), immutableAssets()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  server: { proxy: { "/api": { target: "http://127.0.0.1:8787", ws: true }, "/v1": "http://127.0.0.1:8787" } },
});
