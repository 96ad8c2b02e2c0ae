/**
 * The WebSocket Hibernation recipe shared by every object with live viewers: accept with a hello
 * frame, fan one frame out to all sockets, answer pings (without waking the object), reciprocate
 * closes. Handlers never throw.
 */

/** Accepts an upgrade (already authenticated by the Worker) and greets the client. */
export function acceptLiveSocket(
  ctx: DurableObjectState,
  request: Request,
  hello: unknown,
  tags: string[] = [],
): Response {
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
    return new Response("expected a WebSocket upgrade", { status: 426 });
  const pair = new WebSocketPair();
  ctx.acceptWebSocket(pair[1], tags);
  pair[1].send(JSON.stringify(hello));
  return new Response(null, { status: 101, webSocket: pair[0] });
}

/** Sends one frame to every connected socket (with `tag`: those of one trace); a socket closing mid-send is not the sender's error. */
export function broadcastFrame(ctx: DurableObjectState, message: unknown, tag?: string): void {
  const sockets = ctx.getWebSockets(tag);
  if (sockets.length === 0) return;
  const frame = JSON.stringify(message);
  for (const ws of sockets) {
    try {
      ws.send(frame);
    } catch {
      // closing socket: its close handler cleans up
    }
  }
}

/**
 * Keep-alive: the web client sends "ping" every 25 s and reconnects when nothing (not even "pong")
 * came back for a minute. Answered by the runtime itself, so a ping never wakes a hibernated object.
 */
export function answerPings(ctx: DurableObjectState): void {
  ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
}

/** Completes the close handshake the client started (1005 "no status" is not a valid close code to send). */
export function reciprocateClose(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code === 1005 ? 1000 : code, reason);
  } catch {
    // already closed
  }
}
