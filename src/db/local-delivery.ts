// Recipient rows on this host's own domain that fmsgd will never deliver, and their outcome.
import type { Sql } from "./pool.ts";

export type PendingLocal = { table: "msg_to" | "msg_add_to"; id: number; msg_id: number; addr: string };

/**
 * Undelivered, never-answered recipients on `domain` of messages sent from `domain` (one message, or
 * all): received mail is fmsgd's business.
 */
export async function pendingLocalRecipients(sql: Sql, domain: string, msgId: number | null, limit = 500): Promise<PendingLocal[]> {
  return sql<PendingLocal[]>`
    select * from (
      select 'msg_to' as "table", t.id, t.msg_id, t.addr from msg_to t join msg m on m.id = t.msg_id
      where m.time_sent is not null and t.time_delivered is null and t.response_code is null
        and (${msgId}::int8 is null or t.msg_id = ${msgId}::int8)
        and lower(substring(t.addr from '@([^@]+)$')) = lower(${domain})
        and lower(substring(m.from_addr from '@([^@]+)$')) = lower(${domain})
      union all
      select 'msg_add_to', a.id, a.msg_id, a.addr from msg_add_to a join msg m on m.id = a.msg_id
      where m.time_sent is not null and a.time_delivered is null and a.response_code is null
        and (${msgId}::int8 is null or a.msg_id = ${msgId}::int8)
        and lower(substring(a.addr from '@([^@]+)$')) = lower(${domain})
        and lower(substring(m.from_addr from '@([^@]+)$')) = lower(${domain})
    ) pending order by msg_id, id limit ${limit}`;
}

/**
 * Records the outcome, only if nobody (fmsgd, another API process) recorded one first. Returns the
 * message's sender when this call marked the row delivered (whom the delivery is news to), else null.
 */
export async function recordLocalOutcome(sql: Sql, row: PendingLocal, responseCode: number, delivered: boolean): Promise<string | null> {
  const table = sql(row.table);
  const rows = await sql<{ from_addr: string | null }[]>`
    update ${table} set
      time_delivered = case when ${delivered} then extract(epoch from now()) else null end,
      response_code = ${responseCode}
    where id = ${row.id} and time_delivered is null and response_code is null
    returning (select m.from_addr from msg m where m.id = ${row.msg_id}) as from_addr`;
  return delivered ? (rows[0]?.from_addr ?? null) : null;
}
