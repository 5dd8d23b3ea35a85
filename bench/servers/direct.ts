// Baseline (b): bare Bun.serve + postgres.js, no framework or middleware — the cost of the work itself.
// Per request: verify the same HS256 bearer token with Web Crypto, run the same SQL as our server
// (text copied from src/db/messages.ts into ./direct-sql.ts), apply the same visibility rule
// and answer the same JSON, FMSG-003 fields included (short_text read from the body file).
// Scenario 3's POST /fmsg and POST /fmsg/:id/send do the load generator's "direct-file" work
// (bench/load/compose.ts: same SQL, same durable body file) behind the same two requests ours answers.
import { realpath } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import postgres from "postgres";
import { insertBaselineDraft, sendBaselineDraft } from "../lib/baseline-draft.ts";
import { findMessage, listInbox, type Delivery, type Row } from "./direct-sql.ts";

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

const DATA_DIR = resolve(process.env.FMSG_DATA_DIR ?? ".");
const SHORT_TEXT_SIZE = Number(process.env.FMSG_API_SHORT_TEXT_SIZE ?? 768);
const DELIVERED_CODES = new Set([200, 11]);
const UTF8_CHARSETS = new Set(["utf-8", "utf8", "us-ascii"]);
const decoder = new TextDecoder("utf-8");

const delivery = (d: Delivery) => ({
  addr: d.addr,
  time_delivered: d.time_delivered === null ? null : new Date(d.time_delivered * 1000).toISOString(),
  response_code: d.response_code !== null && d.response_code > 0 && !DELIVERED_CODES.has(d.response_code) ? d.response_code : null,
});

/** text/* with no charset, or a UTF-8 (or ASCII) one: the bodies the server gives a short_text. */
function isUtf8Text(type: string): boolean {
  const [essence = "", ...params] = type.split(";");
  if (!essence.trim().toLowerCase().startsWith("text/")) return false;
  for (const p of params) {
    const eq = p.indexOf("=");
    if (p.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    return UTF8_CHARSETS.has(p.slice(eq + 1).trim().replace(/^"|"$/g, "").toLowerCase());
  }
  return true;
}

/** The body's first SHORT_TEXT_SIZE bytes cut back to a whole character, read as the server does (symlink-checked). */
async function shortText(m: Row): Promise<string | undefined> {
  if (SHORT_TEXT_SIZE <= 0 || m.size <= 0 || !isUtf8Text(m.type)) return undefined;
  const full = resolve(m.filepath);
  if (!full.startsWith(DATA_DIR + sep)) return undefined;
  try {
    const root = await realpath(DATA_DIR);
    if (!(await realpath(full)).startsWith(root + sep)) return undefined;
    const bytes = await Bun.file(full).slice(0, SHORT_TEXT_SIZE + 1).bytes();
    let end = Math.min(bytes.length, SHORT_TEXT_SIZE);
    if (bytes.length > SHORT_TEXT_SIZE) {
      let start = end - 1;
      while (start > 0 && start > end - 4 && (bytes[start]! & 0xc0) === 0x80) start--;
      const lead = bytes[start] ?? 0;
      const width = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      if (start + width > end) end = start;
    }
    return decoder.decode(bytes.subarray(0, end)) || undefined;
  } catch {
    return undefined;
  }
}

async function shape(m: Row) {
  const batches = m.batches.map((b) => ({
    batch_id: b.batch_id,
    add_to_from: b.add_to_from,
    to: b.recipients.map((r) => r.addr),
    to_delivery: b.recipients.map(delivery),
    time: m.time_sent === null ? null : b.time_added,
  }));
  const text = await shortText(m);
  return {
    id: m.id,
    version: m.version,
    has_pid: m.pid !== null,
    has_add_to: batches.length > 0,
    common_type: false,
    important: m.is_important,
    no_reply: m.no_reply,
    deflate: m.is_deflate,
    pid: m.pid,
    from: m.from_addr,
    to: m.to_delivery.map((d) => d.addr),
    add_to: batches.flatMap((b) => b.to),
    add_to_from: batches.at(-1)?.add_to_from ?? null,
    time: m.time_sent,
    topic: m.topic,
    type: m.type,
    size: m.size,
    attachments: m.attachments.map((a) => ({ filename: a.filename, size: a.size })),
    add_to_batches: batches,
    to_delivery: m.to_delivery.map(delivery),
    ...(text ? { short_text: text } : {}),
    read: m.time_read !== null,
    time_read: m.time_read,
  };
}

/** Where POST /fmsg writes its body files, one folder per message (set by the bench for scenario 3). */
const COMPOSE_DIR = process.env.BENCH_DIRECT_DATA_DIR;
let composed = 0;

type Draft = { from: string; to: string[]; topic: string; type: string; data: string };

async function compose(req: Request): Promise<Response> {
  if (!COMPOSE_DIR) return fail(500, "BENCH_DIRECT_DATA_DIR is not set");
  const draft = (await req.json().catch(() => null)) as Draft | null;
  if (typeof draft?.data !== "string" || !Array.isArray(draft.to)) return fail(400, "bad request");
  const dir = join(COMPOSE_DIR, `bare-${process.pid}`, String(composed++));
  const id = await insertBaselineDraft(sql, { ...draft, bytes: Buffer.from(draft.data) }, dir);
  return json(201, { id });
}

async function send(id: number): Promise<Response> {
  return (await sendBaselineDraft(sql, id)) ? json(200, {}) : fail(409, "message not found or already sent");
}

Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  development: false,
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return json(200, { status: "ok" });
    const identity = await verify(req.headers.get("authorization"));
    if (!identity) return fail(401, "unauthorized");
    if (req.method === "POST") {
      if (url.pathname === "/fmsg") return compose(req);
      const s = /^\/fmsg\/([1-9][0-9]{0,18})\/send$/.exec(url.pathname);
      return s ? send(Number(s[1])) : fail(404, "not found");
    }
    if (url.pathname === "/fmsg") {
      const limit = Math.min(100, Number(url.searchParams.get("limit") ?? 20));
      const offset = Number(url.searchParams.get("offset") ?? 0);
      // One row past the page, as the server reads it, to tell whether a next page (a Link) exists.
      const rows = await listInbox(sql, identity, limit + 1, offset);
      const page = await Promise.all(rows.slice(0, limit).map(shape));
      if (rows.length <= limit) return json(200, page);
      url.searchParams.delete("offset");
      url.searchParams.set("before_id", String(rows[limit - 1]!.id));
      const res = json(200, page);
      res.headers.set("Link", `<${url.pathname}?${url.searchParams}>; rel="next"`);
      return res;
    }
    const m = /^\/fmsg\/([1-9][0-9]{0,18})$/.exec(url.pathname);
    if (!m) return fail(404, "not found");
    const row = await findMessage(sql, Number(m[1]), identity);
    if (!row) return fail(404, "message not found");
    const visible = row.is_owner || (row.time_sent !== null && (row.is_to || row.is_add_to));
    if (!visible) return fail(403, "access denied");
    return json(200, await shape(row));
  },
});
