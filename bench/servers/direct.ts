// Baseline (b): bare Bun.serve + postgres.js, no framework or middleware — the cost of the work itself.
// Per request: verify the same HS256 bearer token with Web Crypto, run the same SQL as our server
// (text copied from src/db/messages.ts into ./direct-sql.ts), apply the same visibility rule
// and answer the same §5 JSON.
import postgres from "postgres";
import { findMessage, hasAddTo, listInbox, type Row } from "./direct-sql.ts";

const LEEWAY_SECONDS = 10;
const secret = process.env.FMSG_API_JWT_SECRET ?? "";
const keyBytes = secret.startsWith("base64:") ? Buffer.from(secret.slice(7), "base64") : new TextEncoder().encode(secret);
const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);

const sql = postgres(process.env.DATABASE_URL!, {
  max: Number(process.env.FMSG_API_DB_POOL_SIZE ?? 8),
  onnotice: () => {},
  prepare: true,
  types: { int8: { to: 20, from: [20], serialize: (v: number | bigint | string) => String(v), parse: (v: string) => Number(v) } },
  connection: { application_name: "fmsg-bench-baseline", jit: "off" },
});

const encoder = new TextEncoder();
const json = (status: number, body: unknown) => Response.json(body, { status });
const fail = (status: number, error: string) => json(status, { error });

/** Returns the token's `sub`, or null when the token is not a valid, current HS256 token. */
async function verify(header: string | null): Promise<string | null> {
  if (!header || !header.startsWith("Bearer ")) return null;
  const token = header.slice(7).trim();
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const [head, body, sig] = parts as [string, string, string];
  try {
    const h = JSON.parse(Buffer.from(head, "base64url").toString("utf8"));
    if (h?.alg !== "HS256") return null;
    const ok = await crypto.subtle.verify("HMAC", key, Buffer.from(sig, "base64url"), encoder.encode(`${head}.${body}`));
    if (!ok) return null;
    const claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    const now = Date.now() / 1000;
    if (typeof claims?.exp !== "number" || now > claims.exp + LEEWAY_SECONDS) return null;
    if (typeof claims.nbf === "number" && now < claims.nbf - LEEWAY_SECONDS) return null;
    if (typeof claims.iat === "number" && now < claims.iat - LEEWAY_SECONDS) return null;
    return typeof claims.sub === "string" && claims.sub.startsWith("@") ? claims.sub : null;
  } catch {
    return null;
  }
}

const shape = (m: Row) => ({
  id: m.id,
  version: m.version,
  has_pid: m.pid !== null,
  has_add_to: hasAddTo(m),
  common_type: false,
  important: m.is_important,
  no_reply: m.no_reply,
  deflate: m.is_deflate,
  pid: m.pid,
  from: m.from_addr,
  to: m.to,
  add_to: m.add_to,
  add_to_from: m.add_to_from,
  time: m.time_sent,
  topic: m.topic,
  type: m.type,
  size: m.size,
  attachments: m.attachments.map((a) => ({ filename: a.filename, size: a.size })),
});


Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  development: false,
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return json(200, { status: "ok" });
    const identity = await verify(req.headers.get("authorization"));
    if (!identity) return fail(401, "unauthorized");
    if (url.pathname === "/fmsg") {
      const limit = Math.min(100, Number(url.searchParams.get("limit") ?? 20));
      const offset = Number(url.searchParams.get("offset") ?? 0);
      return json(200, (await listInbox(sql, identity, limit, offset)).map(shape));
    }
    const m = /^\/fmsg\/([1-9][0-9]{0,18})$/.exec(url.pathname);
    if (!m) return fail(404, "not found");
    const row = await findMessage(sql, Number(m[1]), identity);
    if (!row) return fail(404, "message not found");
    const visible = row.is_owner || (row.time_sent !== null && (row.is_to || row.is_add_to));
    if (!visible) return fail(403, "access denied");
    return json(200, shape(row));
  },
});
