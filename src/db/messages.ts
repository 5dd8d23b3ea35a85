// Reading messages: one message with its recipients, batches and attachments; inbox pages.
import type postgres from "postgres";
import type { StoredMessage } from "../domain/message-json.ts";
import type { Sql, Tx } from "./pool.ts";
import { arrayLiteral } from "./arrays.ts";

type Db = Sql | Tx;

export type MessageRow = StoredMessage;

/** A recipient row's delivery columns as JSON (postgres.js parses json); times stay POSIX seconds here. */
const DELIVERY = (alias: string) =>
  `json_build_object('addr', ${alias}.addr, 'time_delivered', ${alias}.time_delivered, 'response_code', ${alias}.response_code)`;

/** The msg columns of a row, in MessageRow order, as `<alias>.<column>, …` for the aliases used below. */
const FIELDS = ["id", "version", "pid", "no_reply", "is_important", "is_deflate", "time_sent", "from_addr", "topic", "type", "size", "filepath"];
const fields = (alias: string) => FIELDS.map((f) => `${alias}.${f}`).join(", ");
const M_FIELDS = fields("m");
const R_FIELDS = fields("r");
/** A sent message's row, reached from a recipient index entry (listInbox). */
const SENT_MSG = `select ${fields("s")} from msg s where s.time_sent is not null`;

/** Message m's add-to batches as JSON, oldest first, each with its recipients; [] when none. */
const BATCHES = `coalesce((select json_agg(json_build_object(
        'batch_id', b.id, 'add_to_from', b.add_to_from, 'time_added', b.time_added,
        'recipients', coalesce((select json_agg(${DELIVERY("a")} order by a.id) from msg_add_to a where a.batch_id = b.id), '[]'::json))
        order by b.id)
      from msg_add_to_batch b where b.msg_id = m.id), '[]'::json)`;

/** Message m's attachments as JSON, in part order; [] when none. */
const ATTACHMENTS = `coalesce((select json_agg(json_build_object(
        'filename', f.filename, 'size', f.filesize, 'flags', f.flags, 'type', f.type, 'filepath', f.filepath)
        order by f.position, f.filename)
      from msg_attachment f where f.msg_id = m.id), '[]'::json)`;

/** The time_read of `identity`'s own recipient row of message m (lower() decides), `to` before add-to. */
const timeRead = (sql: Db, identity: string) => sql`coalesce(
      (select t.time_read from msg_to t where t.msg_id = m.id and lower(t.addr) = lower(${identity}::text) limit 1),
      (select a.time_read from msg_add_to a where a.msg_id = m.id and lower(a.addr) = lower(${identity}::text) limit 1))`;

/**
 * The columns of a message row as `identity` reads it. Lists come back as JSON so a page of
 * messages costs one round trip; coalesce turns "no rows" into [] rather than null. `to` and the
 * flat add_to list are derived from the delivery and batch lists, not queried twice.
 */
export function messageColumns(sql: Db, identity: string) {
  return sql`
    ${sql.unsafe(M_FIELDS)},
    coalesce((select json_agg(${sql.unsafe(DELIVERY("t"))} order by t.id) from msg_to t where t.msg_id = m.id), '[]'::json) as to_delivery,
    ${sql.unsafe(BATCHES)} as batches,
    ${timeRead(sql, identity)} as time_read,
    ${sql.unsafe(ATTACHMENTS)} as attachments`;
}

/**
 * The caller's role in a message, decided by PostgreSQL's lower() — the folding fmsgd's indexes and
 * queries use — and never by JavaScript, whose toLowerCase() disagrees with it (İ, final Σ, a C ctype).
 */
export type Role = { is_owner: boolean; is_to: boolean; is_add_to: boolean };

export async function findMessage(sql: Db, id: number, identity: string): Promise<(MessageRow & Role) | null> {
  const rows = await sql<(MessageRow & Role)[]>`
    select ${messageColumns(sql, identity)},
      lower(m.from_addr) = lower(${identity}::text) as is_owner,
      exists (select 1 from msg_to t where t.msg_id = m.id and lower(t.addr) = lower(${identity}::text)) as is_to,
      exists (select 1 from msg_add_to a where a.msg_id = m.id and lower(a.addr) = lower(${identity}::text)) as is_add_to
    from msg m where m.id = ${id}`;
  return rows[0] ?? null;
}

/** Owner and draft state of a message; `is_owner` is the caller's ownership, decided in SQL (see Role). */
export type MessageHead = { id: number; from_addr: string; time_sent: number | null; filepath: string; is_owner: boolean };

/** The head locked for the rest of the transaction (writes decide on it). */
export async function lockMessage(tx: Tx, id: number, identity: string): Promise<MessageHead | null> {
  const rows = await tx<MessageHead[]>`
    select id, from_addr, time_sent, filepath, lower(from_addr) = lower(${identity}::text) as is_owner
    from msg where id = ${id} for update`;
  return rows[0] ?? null;
}

/**
 * Locks message `id` (when it still exists) for the rest of the transaction and says whether its row
 * or one of its attachment rows points at `filepath`. Every write that places a file into a message
 * holds the same lock, so the answer stays true until COMMIT. Two statements: a lock wait ends with
 * the locked row re-read, but not the rest of the statement, whose snapshot was taken before the
 * wait and would miss the attachment row the lock holder just committed.
 */
export async function lockFileUse(tx: Tx, id: number, filepath: string): Promise<boolean> {
  const [locked] = await tx<{ filepath: string }[]>`select filepath from msg where id = ${id} for update`;
  if (!locked) return false;
  if (locked.filepath === filepath) return true;
  const [row] = await tx<{ used: boolean }[]>`
    select exists (select 1 from msg_attachment where msg_id = ${id} and filepath = ${filepath}) as used`;
  return row!.used;
}

/**
 * The body file a message's row names now (null when the row is gone): a concurrent edit of a draft
 * replaces the file, and may remove the old one, while a read of it is under way.
 */
export async function currentBody(sql: Db, id: number): Promise<{ filepath: string; size: number } | null> {
  const [row] = await sql<{ filepath: string; size: number }[]>`select filepath, size from msg where id = ${id}`;
  return row ?? null;
}

export async function findMessageHead(sql: Db, id: number, identity: string): Promise<MessageHead | null> {
  const rows = await sql<MessageHead[]>`
    select id, from_addr, time_sent, filepath, lower(from_addr) = lower(${identity}::text) as is_owner
    from msg where id = ${id}`;
  return rows[0] ?? null;
}

/** Every recipient address of a message (`to` and add-to), for wake-ups. */
export async function recipientsOf(sql: Db, msgId: number): Promise<string[]> {
  const rows = await sql<{ addr: string }[]>`
    select addr from msg_to where msg_id = ${msgId}
    union all
    select addr from msg_add_to where msg_id = ${msgId}`;
  return rows.map((r) => r.addr);
}

export type Participation = { to: boolean; addTo: boolean };

/** Whether `address` is a `to` or an add-to recipient of message `id` (case-insensitive). */
export async function participation(sql: Db, id: number, address: string): Promise<Participation> {
  const [row] = await sql<{ to: boolean; add_to: boolean }[]>`
    select
      exists (select 1 from msg_to where msg_id = ${id} and lower(addr) = lower(${address})) as "to",
      exists (select 1 from msg_add_to where msg_id = ${id} and lower(addr) = lower(${address})) as add_to`;
  return { to: row?.to ?? false, addTo: row?.add_to ?? false };
}

/**
 * For an add-to under the message's row lock, in one round trip: the first candidate (in list order)
 * that is already a recipient — named as stored — or repeats an earlier candidate — named as given —
 * by lower(), or null; and how many add-to recipients the message holds over all its batches.
 */
export async function addToCheck(tx: Tx, id: number, candidates: string[]): Promise<{ repeated: string | null; total: number }> {
  const [row] = await tx<{ repeated: string | null; total: number }[]>`
    with c as (select x.addr, lower(x.addr) as key, x.n from unnest(${arrayLiteral(candidates)}::text[]) with ordinality as x(addr, n)),
    hits as (
      select c.n, coalesce(
        (select t.addr from msg_to t where t.msg_id = ${id} and lower(t.addr) = c.key order by t.id limit 1),
        (select a.addr from msg_add_to a where a.msg_id = ${id} and lower(a.addr) = c.key order by a.id limit 1),
        case when exists (select 1 from c earlier where earlier.key = c.key and earlier.n < c.n) then c.addr end
      ) as addr
      from c)
    select
      (select h.addr from hits h where h.addr is not null order by h.n limit 1) as repeated,
      (select count(*)::int from msg_add_to a where a.msg_id = ${id}) as total`;
  return { repeated: row?.repeated ?? null, total: row?.total ?? 0 };
}

export type InboxPage = { limit: number; offset: number; beforeId: number | null };

/** A page of rows, and whether a further page exists (the query read one row past the page to know). */
export type RowPage = { rows: MessageRow[]; more: boolean };

/** Cuts the one look-ahead row off a page read with limit + 1. */
const cut = (rows: MessageRow[], limit: number): RowPage => ({ rows: rows.slice(0, limit), more: rows.length > limit });

/**
 * How every recipient-index look-up below is phrased, and why: the row comparison on
 * (lower(addr), msg_id) makes the fmsg_api_ covering index the only one whose bounds fit, and the
 * message row is reached from each index entry by a subquery PostgreSQL never flattens into a join
 * (a scalar subquery, or a LATERAL one with OFFSET 0: a nested loop driven by the index). Written as
 * a plain join with `order by msg_id`, PostgreSQL may instead walk the whole msg_id index (or
 * merge-join all of msg) looking for a rarely-mailed address — on a host with few users it does
 * (see bench/README.md).
 */

/** A listed row as the page statement returns it: the `to` and add-to lists as parallel arrays, in index order. */
type ListedRow = Omit<MessageRow, "to_delivery" | "batches"> & {
  to_id: number[] | null;
  to_addr: string[] | null;
  to_time_delivered: (number | null)[] | null;
  to_response_code: (number | null)[] | null;
  /** One entry per (batch, recipient) pair; the recipient columns are null for a batch without recipients. */
  batch_id: number[] | null;
  batch_from: string[] | null;
  batch_time: number[] | null;
  added_id: (number | null)[] | null;
  added_addr: (string | null)[] | null;
  added_time_delivered: (number | null)[] | null;
  added_response_code: (number | null)[] | null;
};

/** `positions` in ascending order of `ids` at them (row ids: the order the rows were written). */
const ascending = (ids: (number | null)[], positions: number[]) => positions.sort((x, y) => ids[x]! - ids[y]!);

/** The delivery object at position `i` of three parallel recipient arrays. */
const delivery = (addr: (string | null)[], time: (number | null)[], code: (number | null)[], i: number) => ({
  addr: addr[i]!,
  time_delivered: time[i] as number | null,
  response_code: code[i] as number | null,
});

/** The add-to batches of a listed row, oldest first, each with its recipients in the order added. */
function batchesOf(row: ListedRow): MessageRow["batches"] {
  // Each batch's positions in the arrays: one per recipient (a batch without any has one, its recipient columns null).
  const positions = new Map<number, number[]>();
  (row.batch_id ?? []).forEach((batch, i) => {
    const at = positions.get(batch);
    if (at) at.push(i);
    else positions.set(batch, [i]);
  });
  return [...positions]
    .sort(([x], [y]) => x - y)
    .map(([batch_id, at]) => ({
      batch_id,
      add_to_from: row.batch_from![at[0]!]!,
      time_added: row.batch_time![at[0]!]!,
      recipients: ascending(row.added_id!, at.filter((i) => row.added_id![i] !== null)).map((i) =>
        delivery(row.added_addr!, row.added_time_delivered!, row.added_response_code!, i),
      ),
    }));
}

/** The row as messageColumns shapes it (same keys, same order); no rows give []. */
function messageRow(row: ListedRow): MessageRow {
  const { to_id, to_addr, to_time_delivered, to_response_code, batch_id, batch_from, batch_time, added_id, added_addr, added_time_delivered, added_response_code, time_read, attachments, ...head } = row;
  const ids = to_id ?? [];
  const to_delivery = ascending(ids, ids.map((_, i) => i)).map((i) => delivery(to_addr!, to_time_delivered!, to_response_code!, i));
  return { ...head, to_delivery, batches: batchesOf(row), time_read, attachments };
}

const newestFirst = (a: { id: number }, b: { id: number }) => b.id - a.id;

/**
 * The rows of a page of messages in one statement. `page` selects them — FIELDS and the reader's
 * time_read, at most a page. Each message's `to` rows and add-to rows come back as plain JSON arrays
 * in the order its index walk finds them, with their row ids; JavaScript orders them by id and builds
 * the objects. Measured on a page of 20 (bench/ANALYSIS.md): a sort per message, or one sorted scan
 * for the whole page, and json_build_object per row were most of the statement's cost. Most messages
 * have no attachments: one index look-up tells which messages of the page have any, and only those
 * build their list.
 */
async function listRows(sql: Db, page: postgres.PendingQuery<postgres.Row[]>): Promise<MessageRow[]> {
  const rows = await sql<ListedRow[]>`
    with page as materialized (${page})
    select ${sql.unsafe(M_FIELDS)},
      l.to_id, l.to_addr, l.to_time_delivered, l.to_response_code,
      x.batch_id, x.batch_from, x.batch_time, x.added_id, x.added_addr, x.added_time_delivered, x.added_response_code,
      m.time_read,
      case when m.id = any(array(select f.msg_id from msg_attachment f where f.msg_id = any(array(select id from page))))
        then ${sql.unsafe(ATTACHMENTS)} else '[]'::json end as attachments
    from page m
    left join lateral (
      select json_agg(t.id) as to_id, json_agg(t.addr) as to_addr, json_agg(t.time_delivered) as to_time_delivered,
        json_agg(t.response_code) as to_response_code
      from msg_to t where t.msg_id = m.id) l on true
    left join lateral (
      select json_agg(b.id) as batch_id, json_agg(b.add_to_from) as batch_from, json_agg(b.time_added) as batch_time,
        json_agg(a.id) as added_id, json_agg(a.addr) as added_addr, json_agg(a.time_delivered) as added_time_delivered,
        json_agg(a.response_code) as added_response_code
      from msg_add_to_batch b left join msg_add_to a on a.batch_id = b.id where b.msg_id = m.id) x on true`;
  // Newest first, ordered here: an ORDER BY would sort the wide rows after the joins (~5 % of the statement).
  return rows.sort(newestFirst).map(messageRow);
}

/**
 * Sent messages where `address` is a recipient, newest first. Each recipient table is read
 * backwards along its (lower(addr), msg_id) index, stopping after offset+limit rows, so a page
 * costs the same however large the inbox is. One row past the page is read (same query) to tell
 * whether a next page exists.
 *
 * The index entries found are the reader's own rows, so their time_read is the reader's: of a
 * message found through both tables the first set time wins, a `to` row's before an add-to row's
 * (what messageColumns' coalesce gives), without looking the rows up again.
 */
export async function listInbox(sql: Db, address: string, page: InboxPage): Promise<RowPage> {
  const take = page.limit + 1 + page.offset;
  const before = page.beforeId ?? Number.MAX_SAFE_INTEGER;
  const msg = sql.unsafe(SENT_MSG);
  const rows = await listRows(sql, sql`
    select distinct on (r.id) ${sql.unsafe(R_FIELDS)}, r.time_read from (
      (select s.*, t.time_read, true as via_to from msg_to t
        cross join lateral (${msg} and s.id = t.msg_id offset 0) s
        where (lower(t.addr), t.msg_id) < (lower(${address}::text), ${before}::int8)
          and lower(t.addr) = lower(${address}::text)
        order by lower(t.addr) desc, t.msg_id desc limit ${take})
      union all
      (select s.*, a.time_read, false from msg_add_to a
        cross join lateral (${msg} and s.id = a.msg_id offset 0) s
        where (lower(a.addr), a.msg_id) < (lower(${address}::text), ${before}::int8)
          and lower(a.addr) = lower(${address}::text)
        order by lower(a.addr) desc, a.msg_id desc limit ${take})
    ) r
    order by r.id desc, r.time_read is null, r.via_to desc limit ${page.limit + 1} offset ${page.offset}`);
  return cut(rows, page.limit);
}

/**
 * Messages `address` wrote, drafts included, newest first. fmsgd's lower(from_addr) index finds
 * them; the page is cut in SQL, one row past it read to tell whether a next page exists.
 */
export async function listSent(sql: Db, address: string, page: InboxPage): Promise<RowPage> {
  const before = page.beforeId ?? Number.MAX_SAFE_INTEGER;
  const rows = await listRows(sql, sql`
    select ${sql.unsafe(M_FIELDS)}, ${timeRead(sql, address)} as time_read from msg m
    where lower(m.from_addr) = lower(${address}::text) and m.id < ${before}::int8
    order by m.id desc limit ${page.limit + 1} offset ${page.offset}`);
  return cut(rows, page.limit);
}

/**
 * For many waiters at once: per waiting identity (as the caller spelled it), the highest visible
 * inbox id above that identity's cursor. lower() of both sides decides who is who, exactly as in
 * listInbox; the caller groups waiters however coarsely it likes. One query answers a wake-up.
 */
export async function latestInboxIds(sql: Db, pairs: { addr: string; sinceId: number }[]): Promise<Map<string, number>> {
  if (pairs.length === 0) return new Map();
  const addrs = pairs.map((p) => p.addr);
  const sinces = pairs.map((p) => p.sinceId);
  // Each branch walks one recipient index backwards from the newest entry and stops at the first
  // sent message, so a long inbox costs no more than a short one.
  const rows = await sql<{ addr: string; id: number | null }[]>`
    with wanted as (
      select w.addr, lower(w.addr) as key, w.since_id from unnest(${arrayLiteral(addrs)}::text[], ${arrayLiteral(sinces)}::int8[]) as w(addr, since_id))
    select w.addr, greatest(
      (select t.msg_id from msg_to t
        where (lower(t.addr), t.msg_id) > (w.key, w.since_id) and lower(t.addr) = w.key
          and (select s.time_sent from msg s where s.id = t.msg_id) is not null
        order by lower(t.addr) desc, t.msg_id desc limit 1),
      (select a.msg_id from msg_add_to a
        where (lower(a.addr), a.msg_id) > (w.key, w.since_id) and lower(a.addr) = w.key
          and (select s.time_sent from msg s where s.id = a.msg_id) is not null
        order by lower(a.addr) desc, a.msg_id desc limit 1)
    ) as id
    from wanted w`;
  const out = new Map<string, number>();
  for (const r of rows) if (r.id !== null) out.set(r.addr, r.id);
  return out;
}
