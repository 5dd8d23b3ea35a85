// The one place that touches Bun's server object from inside a request (peer address, per-request timeout, WebSocket upgrade).
import type { Context, Env } from "hono";
import { getConnInfo, upgradeWebSocket, websocket } from "hono/bun";
import type { WSEvents } from "hono/ws";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";

export type BunBindings = { server?: Server<unknown> };

/** The TCP peer's address, or null when the request did not come through Bun.serve. */
export function peerAddress<E extends Env & { Bindings: BunBindings }>(c: Context<E>): string | null {
  // getConnInfo throws when c.env holds no Bun server (app.request() without an env), so ask first.
  if (typeof c.env?.server?.requestIP !== "function") return null;
  return getConnInfo(c).remote.address ?? null;
}

/** Raises this request's idle timeout (long-polls); the server-wide default stays short. */
export function extendRequestTimeout<E extends Env & { Bindings: BunBindings }>(c: Context<E>, seconds: number): void {
  const server = c.env?.server;
  if (server && typeof server.timeout === "function") server.timeout(c.req.raw, seconds);
}

/**
 * Idle WebSockets are closed by Bun after this long without a frame from the client. The server's
 * own pings (every 45 s, src/realtime/inbox-sockets.ts) are answered by a pong, so only a dead peer
 * stays silent this long. Bun's own pings are off: ours are the documented ones.
 */
const WEBSOCKET_IDLE_SECONDS = 120;

/**
 * The `websocket` option of Bun.serve that Hono's upgrade helper needs. Typed for the server's
 * `undefined` socket data: the data is Hono's own (set by its upgrade, read by its handlers) and
 * nothing else reads it.
 */
export const webSocketHandler = { ...websocket, idleTimeout: WEBSOCKET_IDLE_SECONDS, sendPings: false } as unknown as WebSocketHandler<undefined>;

/** An upgraded connection as the app uses it: text frames, pings, close. */
export type WebSocketPeer = { send(text: string): void; ping(): void; close(code: number, reason: string): void };

/**
 * Upgrades the request to a WebSocket (Hono's Bun helper); `onOpen` gets the connection and returns
 * what to call when it closes. Resolves to the response Hono returns after a successful upgrade, or
 * null when there was nothing to upgrade (no valid handshake, or no Bun server behind the request).
 */
export async function upgradeToWebSocket<E extends Env & { Bindings: BunBindings }>(c: Context<E>, onOpen: (peer: WebSocketPeer) => () => void): Promise<Response | null> {
  let onClose: (() => void) | undefined;
  const events: WSEvents<ServerWebSocket<unknown>> = {
    onOpen: (_event, ws) => {
      const raw = ws.raw;
      if (!raw) return;
      onClose = onOpen({ send: (text) => raw.send(text), ping: () => raw.ping(), close: (code, reason) => raw.close(code, reason) });
    },
    onClose: () => onClose?.(),
  };
  try {
    return await upgradeWebSocket(c, events);
  } catch {
    return null; // the helper throws "Failed to upgrade WebSocket" when Bun refused the handshake
  }
}
