// The Bun.serve shell of the fan-out floors (bare-wait.ts, bare-wait-confirmed.ts, bare-ws.ts): what
// the bench asks of each — GET /healthz before it is used, GET /open for how many requests or sockets
// it holds (waiters.ts floorHolding) — around the one thing each floor does with the rest.
import type { Server, WebSocketHandler } from "bun";

export type FloorOptions = {
  /** Requests or sockets held now. */
  open: () => number;
  /** Every other request. */
  hold: (req: Request, server: Server<undefined>) => Response | Promise<Response> | undefined;
  websocket?: WebSocketHandler<undefined>;
  /** Seconds a held request may stay silent (HTTP floors); a WebSocket floor sets its own. */
  idleTimeout?: number;
};

export function serveFloor(opts: FloorOptions): void {
  Bun.serve({
    hostname: "127.0.0.1",
    port: Number(process.env.PORT),
    development: false,
    ...(opts.idleTimeout === undefined ? {} : { idleTimeout: opts.idleTimeout }),
    fetch(req, server) {
      const path = new URL(req.url).pathname;
      if (path === "/healthz") return Response.json({ status: "ok" });
      if (path === "/open") return Response.json({ open: opts.open() });
      return opts.hold(req, server);
    },
    ...(opts.websocket ? { websocket: opts.websocket } : {}),
  } as Parameters<typeof Bun.serve>[0]);
}
