// A recipient's read mark: the time_read of the identity's own msg_to / msg_add_to rows.
import type { Tx } from "./pool.ts";

/**
 * The message as a would-be reader sees it: whether it is sent, whether the identity is a `to` or an
 * add-to recipient (PostgreSQL's lower() decides, as everywhere), and the earliest time_read of the
 * identity's rows.
 */
export type ReaderState = { time_sent: number | null; is_to: boolean; is_add_to: boolean; time_read: number | null };

/**
 * The reader's state with the identity's recipient rows locked until the transaction ends, so of two
 * concurrent marks the second sees the first one's time. Null when there is no such message.
 */
export async function lockReaderState(tx: Tx, id: number, identity: string): Promise<ReaderState | null> {
  const rows = await tx<ReaderState[]>`
    select m.time_sent, mine_to.n > 0 as is_to, mine_add.n > 0 as is_add_to,
      least(mine_to.first, mine_add.first) as time_read
    from msg m,
      lateral (select count(*)::int as n, min(x.time_read) as first from (
        select t.time_read from msg_to t
        where t.msg_id = m.id and lower(t.addr) = lower(${identity}::text) for no key update) x) mine_to,
      lateral (select count(*)::int as n, min(x.time_read) as first from (
        select a.time_read from msg_add_to a
        where a.msg_id = m.id and lower(a.addr) = lower(${identity}::text) for no key update) x) mine_add
    where m.id = ${id}`;
  return rows[0] ?? null;
}

/**
 * Sets time_read on the identity's rows that have none — to `first` when one row already had a
 * time, else PostgreSQL's clock — so all of them agree, and returns that time. Rows already marked
 * are never rewritten.
 */
export async function stampRead(tx: Tx, id: number, identity: string, first: number | null): Promise<number> {
  const [row] = await tx<{ time_read: number }[]>`
    with stamp as (select coalesce(${first}::float8, extract(epoch from clock_timestamp())::float8) as t),
    to_rows as (
      update msg_to set time_read = (select t from stamp)
      where msg_id = ${id} and lower(addr) = lower(${identity}::text) and time_read is null),
    add_rows as (
      update msg_add_to set time_read = (select t from stamp)
      where msg_id = ${id} and lower(addr) = lower(${identity}::text) and time_read is null)
    select t as time_read from stamp`;
  if (!row) throw new Error("stamp query returned no row");
  return row.time_read;
}
