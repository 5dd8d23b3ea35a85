// The SQL of baseline (b), copied from src/db/messages.ts (messageColumns, findMessage, listInbox).
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

export function listInbox(sql: Sql, address: string, limit: number, offset: number): Promise<Row[]> {
  const take = limit + offset;
  const before = Number.MAX_SAFE_INTEGER;
  return sql<Row[]>`
    with page as (
      select id from (
        (select t.msg_id as id from msg_to t
          where (lower(t.addr), t.msg_id) < (lower(${address}::text), ${before}::int8)
            and lower(t.addr) = lower(${address}::text)
            and (select s.time_sent from msg s where s.id = t.msg_id) is not null
          order by lower(t.addr) desc, t.msg_id desc limit ${take})
        union
        (select a.msg_id as id from msg_add_to a
          where (lower(a.addr), a.msg_id) < (lower(${address}::text), ${before}::int8)
            and lower(a.addr) = lower(${address}::text)
            and (select s.time_sent from msg s where s.id = a.msg_id) is not null
          order by lower(a.addr) desc, a.msg_id desc limit ${take})
      ) ids
      order by id desc limit ${limit} offset ${offset}
    )
    select ${columns(sql, address)} from msg m where m.id in (select id from page) order by m.id desc`;
}
