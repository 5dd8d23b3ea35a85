// Baseline for the WebSocket scenario: the fan-out floor of this runtime here. A bare Bun.serve
// upgrades every request (no framework, no token check, no per-address routing, no query); the
// first notification of each message on one postgres.js LISTEN connection (channel new_msg, raised
// by the same commit our server hears) sends one fixed frame to every open socket.
import postgres from "postgres";
import { serveFloor } from "./floor.ts";
import type { ServerWebSocket } from "bun";

const sql = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {}, connection: { application_name: "fmsg-bench-baseline" } });
const open = new Set<ServerWebSocket<undefined>>();
const announced = new Set<string>();
const frame = JSON.stringify({ type: "new_msg", data: { id: 1 } });

await sql.listen("new_msg", (payload) => {
  const id = payload.slice(0, payload.indexOf(","));
  if (announced.has(id)) return; // one frame per message, as ours sends one per socket
  announced.add(id);
  for (const ws of open) ws.send(frame);
});

serveFloor({
  open: () => open.size,
  hold(req, server) {
    if (server.upgrade(req)) return;
    return new Response("upgrade required", { status: 426 });
  },
  websocket: {
    idleTimeout: 120,
    open: (ws) => void open.add(ws),
    close: (ws) => void open.delete(ws),
    message: () => {},
  },
});
