// Second floor for scenario 4: what the contract's confirmation costs by itself. Like bare-wait.ts a
// plain Bun.serve holding every request, but each waiter is answered only from notifications that
// name its address, once one query per LISTEN read has confirmed them (the message is sent and the
// address is among its recipients: what API §8 requires before anyone is answered). Nothing else:
// no framework, no token check (the address is the token payload's `sub`, read unverified), no
// catch-up query, no case folding beyond lower(), no limit on confirmations in flight.
import postgres from "postgres";
import { serveFloor } from "./floor.ts";

const sql = postgres(process.env.DATABASE_URL!, {
  max: Number(process.env.FMSG_API_DB_POOL_SIZE ?? 8),
  onnotice: () => {},
  types: { int8: { to: 20, from: [20], serialize: (v: number | bigint | string) => String(v), parse: (v: string) => Number(v) } },
  connection: { application_name: "fmsg-bench-baseline", jit: "off" },
});
const headers = { "Content-Type": "application/json" };

/** Held requests by lower-cased address. */
const waiting = new Map<string, ((r: Response) => void)[]>();
let open = 0;
/** Notifications heard since the last confirmation started: message ids and addresses, in step. */
let ids: number[] = [];
let addrs: string[] = [];

function addressOf(req: Request): string | null {
  const payload = req.headers.get("authorization")?.split(".")[1];
  if (!payload) return null;
  const sub = (JSON.parse(Buffer.from(payload, "base64url").toString()) as { sub?: unknown }).sub;
  return typeof sub === "string" ? sub.toLowerCase() : null;
}

/** Each candidate is probed by key (subqueries in the select list): a semi-join could hash all of msg_to. */
async function confirm(msgIds: number[], named: string[]): Promise<void> {
  const [row] = await sql<{ confirmed: number[] }[]>`
    select coalesce(array_agg(c.n) filter (where c.ok), '{}') as confirmed from (
      select x.n::int4 - 1 as n,
        coalesce((select m.time_sent is not null from msg m where m.id = x.msg_id), false)
          and (exists (select 1 from msg_to t where t.msg_id = x.msg_id and t.addr = x.addr)
            or exists (select 1 from msg_add_to a where a.msg_id = x.msg_id and a.addr = x.addr)) as ok
      from unnest(${msgIds}::int8[], ${named}::text[]) with ordinality as x(msg_id, addr, n)) c`;
  const latest = new Map<string, number>();
  for (const i of row!.confirmed) {
    const addr = named[i]!.toLowerCase();
    latest.set(addr, Math.max(latest.get(addr) ?? 0, msgIds[i]!));
  }
  for (const [addr, id] of latest) {
    const held = waiting.get(addr);
    if (!held) continue;
    waiting.delete(addr);
    open -= held.length;
    const body = JSON.stringify({ has_new: true, latest_id: id });
    for (const resolve of held) resolve(new Response(body, { headers }));
  }
}

await sql.listen("new_msg", (payload) => {
  const comma = payload.indexOf(",");
  const addr = payload.slice(comma + 1);
  if (!waiting.has(addr.toLowerCase())) return;
  // One read of the LISTEN connection carries many notifications: they become one query.
  if (ids.length === 0) {
    queueMicrotask(() => {
      const batch = [ids, addrs] as const;
      ids = [];
      addrs = [];
      confirm(...batch).catch((err) => console.error(`confirmation failed: ${err}`));
    });
  }
  ids.push(Number(payload.slice(0, comma)));
  addrs.push(addr);
});

serveFloor({
  idleTimeout: 120,
  open: () => open,
  hold(req) {
    const addr = addressOf(req);
    if (!addr) return Response.json({ error: "no token" }, { status: 401 });
    return new Promise<Response>((resolve) => {
      const held = waiting.get(addr);
      if (held) held.push(resolve);
      else waiting.set(addr, [resolve]);
      open++;
    });
  },
});
