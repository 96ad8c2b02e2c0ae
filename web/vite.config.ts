import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The SPA is built into web/dist, which wrangler serves as static assets (SPA fallback on deep links).
export default defineConfig({
  root: "web",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  server: { proxy: { "/api": { target: "http://127.0.0.1:8787", ws: true }, "/v1": "http://127.0.0.1:8787" } },
});
