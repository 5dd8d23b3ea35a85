// The SQL of baseline (b), copied from src/db/messages.ts (messageColumns, findMessage, listInbox and its page statement).
// A copy, so the baseline runs no code of ours; the bench compares the statement text these send
// with what src sends (bench/lib/capture.ts) and refuses to measure when the copy has drifted.
import type postgres from "postgres";

type Sql = postgres.Sql<any>;

export type Delivery = { addr: string; time_delivered: number | null; response_code: number | null };

export type Row = {
  id: number; version: number; pid: number | null; no_reply: boolean; is_important: boolean; is_deflate: boolean;
  time_sent: number | null; from_addr: string; topic: string; type: string; size: number; filepath: string;
  to_delivery: Delivery[];
  batches: { batch_id: number; add_to_from: string; time_added: number; recipients: Delivery[] }[];
  time_read: number | null;
  attachments: { filename: string; size: number }[];
  is_owner: boolean; is_to: boolean; is_add_to: boolean;
};

const DELIVERY = (alias: string) =>
  `json_build_object('addr', ${alias}.addr, 'time_delivered', ${alias}.time_delivered, 'response_code', ${alias}.response_code)`;

const columns = (sql: Sql, identity: string) => sql`
    m.id, m.version, m.pid, m.no_reply, m.is_important, m.is_deflate, m.time_sent, m.from_addr,
    m.topic, m.type, m.size, m.filepath,
    coalesce((select json_agg(${sql.unsafe(DELIVERY("t"))} order by t.id) from msg_to t where t.msg_id = m.id), '[]'::json) as to_delivery,
    coalesce((select json_agg(json_build_object(
        'batch_id', b.id, 'add_to_from', b.add_to_from, 'time_added', b.time_added,
        'recipients', coalesce((select json_agg(${sql.unsafe(DELIVERY("a"))} order by a.id) from msg_add_to a where a.batch_id = b.id), '[]'::json))
        order by b.id)
      from msg_add_to_batch b where b.msg_id = m.id), '[]'::json) as batches,
    coalesce(
      (select t.time_read from msg_to t where t.msg_id = m.id and lower(t.addr) = lower(${identity}::text) limit 1),
      (select a.time_read from msg_add_to a where a.msg_id = m.id and lower(a.addr) = lower(${identity}::text) limit 1)) as time_read,
    coalesce((select json_agg(json_build_object(
        'filename', f.filename, 'size', f.filesize, 'flags', f.flags, 'type', f.type, 'filepath', f.filepath)
        order by f.position, f.filename)
      from msg_attachment f where f.msg_id = m.id), '[]'::json) as attachments`;

export async function findMessage(sql: Sql, id: number, identity: string): Promise<Row | null> {
  const rows = await sql<Row[]>`
    select ${columns(sql, identity)},
      lower(m.from_addr) = lower(${identity}::text) as is_owner,
      exists (select 1 from msg_to t where t.msg_id = m.id and lower(t.addr) = lower(${identity}::text)) as is_to,
      exists (select 1 from msg_add_to a where a.msg_id = m.id and lower(a.addr) = lower(${identity}::text)) as is_add_to
    from msg m where m.id = ${id}`;
  return rows[0] ?? null;
}

/** The msg columns of a row, in Row order. */
const FIELDS = ["id", "version", "pid", "no_reply", "is_important", "is_deflate", "time_sent", "from_addr", "topic", "type", "size", "filepath"];
const fields = (alias: string) => FIELDS.map((f) => `${alias}.${f}`).join(", ");

const ATTACHMENTS = `coalesce((select json_agg(json_build_object(
        'filename', f.filename, 'size', f.filesize, 'flags', f.flags, 'type', f.type, 'filepath', f.filepath)
        order by f.position, f.filename)
      from msg_attachment f where f.msg_id = m.id), '[]'::json)`;

type ListedRow = Omit<Row, "to_delivery" | "batches"> & {
  to_id: number[] | null; to_addr: string[] | null; to_time_delivered: (number | null)[] | null; to_response_code: (number | null)[] | null;
  batch_id: number[] | null; batch_from: string[] | null; batch_time: number[] | null;
  added_id: (number | null)[] | null; added_addr: (string | null)[] | null; added_time_delivered: (number | null)[] | null; added_response_code: (number | null)[] | null;
};

/** Positions of `ids` in ascending id order. */
const ascending = (ids: (number | null)[], at: number[]) => at.sort((x, y) => ids[x]! - ids[y]!);

function toRow(r: ListedRow): Row {
  const { to_id, to_addr, to_time_delivered, to_response_code, batch_id, batch_from, batch_time, added_id, added_addr, added_time_delivered, added_response_code, ...rest } = r;
  const ids = to_id ?? [];
  const to_delivery = ascending(ids, ids.map((_, i) => i)).map((i) => ({ addr: to_addr![i]!, time_delivered: to_time_delivered![i] ?? null, response_code: to_response_code![i] ?? null }));
  const rowsOf = new Map<number, number[]>();
  (batch_id ?? []).forEach((b, i) => rowsOf.set(b, [...(rowsOf.get(b) ?? []), i]));
  const batches = [...rowsOf.keys()].sort((x, y) => x - y).map((b) => {
    const at = rowsOf.get(b)!;
    const recipients = ascending(added_id!, at.filter((i) => added_id![i] !== null))
      .map((i) => ({ addr: added_addr![i]!, time_delivered: added_time_delivered![i] ?? null, response_code: added_response_code![i] ?? null }));
    return { batch_id: b, add_to_from: batch_from![at[0]!]!, time_added: batch_time![at[0]!]!, recipients };
  });
  return { ...rest, to_delivery, batches };
}

export async function listInbox(sql: Sql, address: string, limit: number, offset: number): Promise<Row[]> {
  const take = limit + offset;
  const before = Number.MAX_SAFE_INTEGER;
  const msg = sql.unsafe(`select ${fields("s")} from msg s where s.time_sent is not null`);
  const page = sql`
    select distinct on (r.id) ${sql.unsafe(fields("r"))}, r.time_read from (
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
    order by r.id desc, r.time_read is null, r.via_to desc limit ${limit} offset ${offset}`;
  const rows = await sql<ListedRow[]>`
    with page as materialized (${page})
    select ${sql.unsafe(fields("m"))},
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
  return rows.sort((a, b) => b.id - a.id).map(toRow);
}
