// Who hears of a sent message: its participants, and which of some identities may see it (PostgreSQL's lower() decides).
import type { StoredMessage } from "../domain/message-json.ts";
import { arrayLiteral } from "./arrays.ts";
import { messageColumns } from "./messages.ts";
import type { Sql } from "./pool.ts";

/** A candidate identity (as given) that is the owner or a recipient of the message, with its own time_read. */
export type AudienceMember = { addr: string; is_owner: boolean; is_recipient: boolean; time_read: number | null };

/**
 * Of `candidates`, those named (case-insensitively) among `named` that own or receive message `msgId`
 * — only if it is sent: a draft has no audience. Primary-key and (lower(addr), msg_id) index look-ups.
 */
export async function messageAudience(sql: Sql, msgId: number, candidates: string[], named: readonly string[]): Promise<AudienceMember[]> {
  return sql<AudienceMember[]>`
    with c as (select x.addr, lower(x.addr) as key from unnest(${arrayLiteral(candidates)}::text[]) as x(addr)),
    n as (select lower(x.addr) as key from unnest(${arrayLiteral([...named])}::text[]) as x(addr)),
    m as (select id, lower(from_addr) as owner from msg where id = ${msgId} and time_sent is not null)
    select * from (
      select c.addr, c.key = m.owner as is_owner,
        exists (select 1 from msg_to t where lower(t.addr) = c.key and t.msg_id = m.id)
          or exists (select 1 from msg_add_to a where lower(a.addr) = c.key and a.msg_id = m.id) as is_recipient,
        coalesce(
          (select t.time_read from msg_to t where lower(t.addr) = c.key and t.msg_id = m.id limit 1),
          (select a.time_read from msg_add_to a where lower(a.addr) = c.key and a.msg_id = m.id limit 1)) as time_read
      from c cross join m
      where c.key in (select key from n)
    ) members where is_owner or is_recipient`;
}

/** A sent message as a list item's row, or null (absent or a draft). time_read is null: it is per reader. */
export async function sentMessage(sql: Sql, msgId: number): Promise<StoredMessage | null> {
  // An empty identity matches no recipient row (addresses are never empty), so time_read is null here.
  const rows = await sql<StoredMessage[]>`
    select ${messageColumns(sql, "")} from msg m where m.id = ${msgId} and m.time_sent is not null`;
  return rows[0] ?? null;
}

/** The sender and every `to` and add-to recipient of a message: whom an add-to batch is announced to. */
export async function participantsOf(sql: Sql, msgId: number): Promise<string[]> {
  const rows = await sql<{ addr: string }[]>`
    select from_addr as addr from msg where id = ${msgId}
    union all
    select addr from msg_to where msg_id = ${msgId}
    union all
    select addr from msg_add_to where msg_id = ${msgId}`;
  return rows.map((r) => r.addr);
}
