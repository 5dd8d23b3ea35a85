// The one place that touches Bun's server object from inside a request (peer address, per-request timeout, WebSocket upgrade).
import type { Context, Env } from "hono";
import { getConnInfo } from "hono/bun";
import type { Server, WebSocketHandler } from "bun";

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
 * Frames a socket may have waiting in this process (beyond what the kernel holds) before its client
 * counts as not reading: it is then closed (inbox-sockets.ts TOO_SLOW) rather than held in memory.
 * Hundreds of list items, or about 25 of the largest (255 long addresses).
 */
export const WEBSOCKET_MAX_BUFFERED_BYTES = 1024 * 1024;

/** The largest frame a client may send (it has nothing to say; a longer one closes the socket with 1009). */
export const WEBSOCKET_MAX_CLIENT_FRAME_BYTES = 4096;

/** What an upgraded connection carries: where its open and close go. */
type SocketData = { opened(peer: WebSocketPeer): void; closed(): void };

/**
 * The `websocket` option of Bun.serve for the upgrades below. Typed for the server's `undefined`
 * socket data: only upgradeToWebSocket sets the data, and only these handlers read it.
 */
export const webSocketHandler = {
  open(ws) {
    // A throw here would escape into Bun's event loop: the socket is closed instead.
    try {
      ws.data.opened({
        // Bun returns -1 when the frame was queued behind others, 0 when it dropped it: either way a
        // client that lets too much pile up has stopped reading.
        send: (text) => {
          const sent = ws.send(text);
          return sent > 0 || (sent === -1 && ws.getBufferedAmount() <= WEBSOCKET_MAX_BUFFERED_BYTES);
        },
        ping: () => ws.ping(),
        close: (code, reason) => ws.close(code, reason),
      });
    } catch {
      ws.close(1011, "internal error");
    }
  },
  message() {
    // Clients have nothing to say on this socket; their frames are read and dropped.
  },
  close(ws) {
    try {
      ws.data.closed();
    } catch {
      // Nothing more to do: the socket is gone either way, and Bun must not see the throw.
    }
  },
  idleTimeout: WEBSOCKET_IDLE_SECONDS,
  sendPings: false,
  // Clients send nothing this server reads. Bun's default buffers up to 16 MiB of one unfinished
  // frame per socket (a probe held ~300 MiB with 20 sockets); a larger frame closes the socket (1009).
  maxPayloadLength: WEBSOCKET_MAX_CLIENT_FRAME_BYTES,
  // The backstop behind the check in send(): Bun's default lets 16 MiB pile up per socket, then drops
  // frames without a word and keeps the socket open.
  backpressureLimit: 2 * WEBSOCKET_MAX_BUFFERED_BYTES,
  closeOnBackpressureLimit: true,
} satisfies WebSocketHandler<SocketData> as unknown as WebSocketHandler<undefined>;

/** An upgraded connection as the app uses it: text frames (false: the client is not keeping up), pings, close. */
export type WebSocketPeer = { send(text: string): boolean; ping(): void; close(code: number, reason: string): void };

/**
 * Upgrades the request to a WebSocket; `headers` go into the 101 answer (Hono's Bun helper cannot
 * add any, hence Bun's own upgrade). `onOpen` gets the connection and returns what to call when it
 * closes. Resolves to the response to return after a successful upgrade (Bun answers the handshake
 * itself and ignores it), or null when there was nothing to upgrade (no valid handshake, or no Bun
 * server behind the request).
 */
export function upgradeToWebSocket<E extends Env & { Bindings: BunBindings }>(
  c: Context<E>,
  onOpen: (peer: WebSocketPeer) => () => void,
  headers: Record<string, string> = {},
): Response | null {
  const server = c.env?.server;
  if (!server || typeof server.upgrade !== "function") return null;
  let onClose: (() => void) | undefined;
  const data: SocketData = { opened: (peer) => (onClose = onOpen(peer)), closed: () => onClose?.() };
  try {
    return server.upgrade(c.req.raw, { data, headers }) ? new Response(null) : null;
  } catch {
    return null; // a handshake Bun refuses: answered as "nothing to upgrade" (426)
  }
}
