import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";
import { staticHeadersFile } from "../worker/headers";

/**
 * `_headers` for Workers static assets (https://developers.cloudflare.com/workers/static-assets/headers/):
 * the security headers on every page and asset (the same policy the Worker sends, from
 * worker/headers.ts), and a year of caching for files under /assets/, whose names carry a content
 * hash — the default (`max-age=0, must-revalidate`) costs a round trip per asset on every visit,
 * the 1.6 MB elk worker included, before the graph can be laid out.
 */
function staticHeaders(): Plugin {
  return {
    name: "stemtrace-static-headers",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "_headers", source: staticHeadersFile() });
    },
  };
}

// The SPA is built into web/dist, which wrangler serves as static assets (SPA fallback on deep links).
export default defineConfig({
  root: "web",
  plugins: [react(), staticHeaders()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8787", ws: true }, "/v1": "http://127.0.0.1:8787" },
  },
});
