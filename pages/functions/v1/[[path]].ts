// /v1 and everything under it: ingestion (forward.ts).
export { onRequest } from "../../forward";
