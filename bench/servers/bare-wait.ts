// Baseline for scenario 4: the fan-out floor of this runtime here. A bare Bun.serve holds every
// request it gets; the first notification on one postgres.js LISTEN connection (channel new_msg,
// raised by the same commit our server is woken by) answers all of them at once with a fixed body.
// No framework, no token check, no per-address routing, no catch-up query.
import postgres from "postgres";
import { serveFloor } from "./floor.ts";

const sql = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {}, connection: { application_name: "fmsg-bench-baseline" } });
const pending: ((r: Response) => void)[] = [];
const body = JSON.stringify({ has_new: true, latest_id: 1 });
const headers = { "Content-Type": "application/json" };

await sql.listen("new_msg", () => {
  const batch = pending.splice(0);
  for (const resolve of batch) resolve(new Response(body, { headers }));
});

serveFloor({
  idleTimeout: 120,
  open: () => pending.length,
  hold: () => new Promise<Response>((resolve) => pending.push(resolve)),
});
