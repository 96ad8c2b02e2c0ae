/** Types of rest-endpoint.mjs (the harness is plain JS so it runs by itself with node). */
export interface UpstashEndpoint {
  url: string;
  token: string;
  redisPort: number;
  stopRedis(): Promise<void>;
  startRedis(): Promise<void>;
  close(): Promise<void>;
}
export function freePort(): Promise<number>;
export function startUpstashEndpoint(options?: { port?: number; token?: string }): Promise<UpstashEndpoint>;
