// /api and everything under it: the read API and its WebSockets (forward.ts).
export { onRequest } from "../../forward";
