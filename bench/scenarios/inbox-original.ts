// The inbox page statement as listInbox sent it when issue 14 was filed (src/db/messages.ts at
// 68e7eb7, captured from postgres.js): one correlated subquery per list per listed message. Scenario 2
// measures today's statement against it in the same run, for issue 14's "the query's own cost dropped
// by at least half". Frozen on purpose: never edit it to follow src.

/** Parameter types, in order, as postgres.js declared them. */
export const ORIGINAL_TYPES = ["text", "bigint", "text", "bigint", "text", "bigint", "text", "bigint", "bigint", "bigint", "text", "text"];

/** The parameters of the first page of `limit` for `address` (one row past the page, as listInbox reads it). */
export function originalParams(address: string, limit: number): (string | number)[] {
  const none = Number.MAX_SAFE_INTEGER;
  const take = limit + 1;
  return [address, none, address, take, address, none, address, take, take, 0, address, address];
}

export const ORIGINAL_QUERY = `
with page as (
  select id from (
    (select t.msg_id as id from msg_to t
      where (lower(t.addr), t.msg_id) < (lower($1::text), $2::int8)
        and lower(t.addr) = lower($3::text)
        and (select s.time_sent from msg s where s.id = t.msg_id) is not null
      order by lower(t.addr) desc, t.msg_id desc limit $4)
    union
    (select a.msg_id as id from msg_add_to a
      where (lower(a.addr), a.msg_id) < (lower($5::text), $6::int8)
        and lower(a.addr) = lower($7::text)
        and (select s.time_sent from msg s where s.id = a.msg_id) is not null
      order by lower(a.addr) desc, a.msg_id desc limit $8)
  ) ids
  order by id desc limit $9 offset $10
)
select 
m.id, m.version, m.pid, m.no_reply, m.is_important, m.is_deflate, m.time_sent, m.from_addr,
m.topic, m.type, m.size, m.filepath,
coalesce((select json_agg(json_build_object('addr', t.addr, 'time_delivered', t.time_delivered, 'response_code', t.response_code) order by t.id) from msg_to t where t.msg_id = m.id), '[]'::json) as to_delivery,
coalesce((select json_agg(json_build_object(
    'batch_id', b.id, 'add_to_from', b.add_to_from, 'time_added', b.time_added,
    'recipients', coalesce((select json_agg(json_build_object('addr', a.addr, 'time_delivered', a.time_delivered, 'response_code', a.response_code) order by a.id) from msg_add_to a where a.batch_id = b.id), '[]'::json))
    order by b.id)
  from msg_add_to_batch b where b.msg_id = m.id), '[]'::json) as batches,
coalesce(
  (select t.time_read from msg_to t where t.msg_id = m.id and lower(t.addr) = lower($11::text) limit 1),
  (select a.time_read from msg_add_to a where a.msg_id = m.id and lower(a.addr) = lower($12::text) limit 1)) as time_read,
coalesce((select json_agg(json_build_object(
    'filename', f.filename, 'size', f.filesize, 'flags', f.flags, 'type', f.type, 'filepath', f.filepath)
    order by f.position, f.filename)
  from msg_attachment f where f.msg_id = m.id), '[]'::json) as attachments from msg m where m.id in (select id from page) order by m.id desc`;
