// Writing messages: draft rows, recipients, add-to batches, notify rows, send and delete.
import type postgres from "postgres";
import type { Sql, Tx } from "./pool.ts";
import { arrayLiteral } from "./arrays.ts";

/** A statement that is atomic on its own runs on the pool (autocommit), or inside a caller's transaction. */
type Db = Sql | Tx;

export type DraftFields = {
  version: number;
  pid: number | null;
  noReply: boolean;
  important: boolean;
  from: string;
  topic: string;
  type: string;
  size: number;
  filepath: string;
};

/**
 * The draft row and its `to` rows (in list order) in one statement. psha256 is written as NULL with
 * every pid so fmsgd's trigger (sql/001_fmsgd.sql) recomputes it.
 */
export async function insertDraft(tx: Db, id: number, f: DraftFields, to: string[]): Promise<void> {
  await tx`
    with draft as (
      insert into msg (id, version, pid, no_reply, is_important, is_deflate, time_sent, from_addr,
                       topic, type, size, filepath, sha256, psha256)
      values (${id}, ${f.version}, ${f.pid}, ${f.noReply}, ${f.important}, false, null, ${f.from},
              ${f.topic}, ${f.type}, ${f.size}, ${f.filepath}, null, null)
      returning id)
    insert into msg_to (msg_id, addr)
    select draft.id, x.addr from draft, unnest(${arrayLiteral(to)}::varchar[]) with ordinality as x(addr, n) order by x.n`;
}

export async function updateDraft(tx: Tx, id: number, f: DraftFields): Promise<void> {
  await tx`
    update msg set version = ${f.version}, pid = ${f.pid}, psha256 = null, no_reply = ${f.noReply},
      is_important = ${f.important}, from_addr = ${f.from}, topic = ${f.topic}, type = ${f.type},
      size = ${f.size}, filepath = ${f.filepath}
    where id = ${id} and time_sent is null`;
}

/** Inserts `to` rows in list order (their serial ids keep the order for readers). */
export async function insertRecipients(tx: Tx, id: number, addresses: string[]): Promise<void> {
  if (addresses.length === 0) return;
  await tx`
    insert into msg_to (msg_id, addr)
    select ${id}, x.addr from unnest(${arrayLiteral(addresses)}::varchar[]) with ordinality as x(addr, n) order by x.n`;
}

export async function deleteRecipients(tx: Tx, id: number): Promise<void> {
  await tx`delete from msg_to where msg_id = ${id}`;
}

/**
 * The batch's time is read when the row is written (clock_timestamp, not the transaction's start):
 * callers hold the message's row lock by then, so a batch added after a send that held the lock
 * first is never dated before it, and batches of one message are dated in the order they were added.
 */
export async function insertBatch(tx: Tx, id: number, addedBy: string, time: number | null): Promise<number> {
  const [row] = await tx<{ id: number }[]>`
    insert into msg_add_to_batch (msg_id, add_to_from, time_added)
    values (${id}, ${addedBy}, coalesce(${time}::float8, extract(epoch from clock_timestamp())))
    returning id`;
  return row!.id;
}

export async function insertBatchRecipients(tx: Tx, id: number, batchId: number, addresses: string[]): Promise<void> {
  if (addresses.length === 0) return;
  await tx`
    insert into msg_add_to (msg_id, batch_id, addr)
    select ${id}, ${batchId}, x.addr from unnest(${arrayLiteral(addresses)}::varchar[]) with ordinality as x(addr, n) order by x.n`;
}

/** A draft's pending batch (at most one: every batch of a draft is pending). */
export async function pendingBatch(tx: Tx, id: number): Promise<{ id: number; count: number } | null> {
  const rows = await tx<{ id: number; count: number }[]>`
    select b.id, (select count(*)::int from msg_add_to a where a.batch_id = b.id) as count
    from msg_add_to_batch b where b.msg_id = ${id} order by b.id limit 1`;
  return rows[0] ?? null;
}

/** The addresses of a draft's pending add-to batch, in insertion order. */
export async function pendingAddresses(tx: Tx, id: number): Promise<string[]> {
  const rows = await tx<{ addr: string }[]>`select addr from msg_add_to where msg_id = ${id} order by id`;
  return rows.map((r) => r.addr);
}

export async function deleteBatches(tx: Tx, id: number): Promise<void> {
  await tx`delete from msg_add_to where msg_id = ${id}`;
  await tx`delete from msg_add_to_notify where batch_id in (select id from msg_add_to_batch where msg_id = ${id})`;
  await tx`delete from msg_add_to_batch where msg_id = ${id}`;
}

/**
 * For a new message's lists: whether `from` is the caller (the same identity by lower()), and the
 * first address of `to` then `add_to` that repeats an earlier one, in the repeat's own spelling.
 */
export async function compareAddresses(
  sql: Sql | Tx,
  from: string,
  identity: string,
  lists: string[],
): Promise<{ fromIsIdentity: boolean; duplicate: string | null }> {
  const [row] = await sql<{ same: boolean; duplicate: string | null }[]>`select ${comparison(sql, from, identity, lists)}`;
  return { fromIsIdentity: row?.same ?? false, duplicate: row?.duplicate ?? null };
}

/**
 * compareAddresses for a new message, which also takes the message's id from msg's sequence in the
 * same round trip (a refused request leaves a gap in the ids, as a rolled-back insert would).
 */
export async function compareAddressesForNewMessage(
  sql: Sql,
  from: string,
  identity: string,
  lists: string[],
): Promise<{ fromIsIdentity: boolean; duplicate: string | null; id: number }> {
  const [row] = await sql<{ same: boolean; duplicate: string | null; id: number }[]>`
    select ${comparison(sql, from, identity, lists)}, nextval(pg_get_serial_sequence('msg', 'id')) as id`;
  return { fromIsIdentity: row!.same, duplicate: row!.duplicate, id: row!.id };
}

const comparison = (sql: Sql | Tx, from: string, identity: string, lists: string[]) => sql`
    lower(${from}::text) = lower(${identity}::text) as same,
      (select x.addr from (
         select addr, n, row_number() over (partition by lower(addr) order by n) as seen
         from unnest(${arrayLiteral(lists)}::text[]) with ordinality as u(addr, n)) x
       where x.seen > 1 order by x.n limit 1) as duplicate`;

export async function deleteDraftRows(tx: Tx, id: number): Promise<void> {
  await deleteBatches(tx, id);
  await deleteRecipients(tx, id);
  await tx`delete from msg_attachment where msg_id = ${id}`;
  await tx`delete from msg where id = ${id} and time_sent is null`;
}

/**
 * Sends `identity`'s draft in one statement: time_sent set, its pending batches stamped with that
 * time, and their notify rows written. Null when nothing matched — no such message, not the owner's
 * (lower() decides), or sent already; the row lock the UPDATE takes makes the second of two
 * concurrent sends match nothing. One statement is atomic by itself, so it needs no transaction of
 * its own. fmsgd's row triggers on the notify rows fire after the whole statement, so they see the
 * message as sent (its NOTIFY checks time_sent).
 */
export async function markSent(sql: Db, id: number, identity: string, ownDomain: string | null): Promise<{ time: number } | null> {
  const rows = await sql<{ time_sent: number }[]>`
    with sent as (
      update msg set time_sent = extract(epoch from now())
      where id = ${id} and time_sent is null and lower(from_addr) = lower(${identity}::text)
      returning time_sent),
    stamped as (
      update msg_add_to_batch b set time_added = sent.time_sent from sent where b.msg_id = ${id} returning b.id),
    notified as (${notifyRows(sql, id, sql`select id from stamped`, ownDomain)})
    select sent.time_sent from sent`;
  const row = rows[0];
  return row ? { time: row.time_sent } : null;
}

/** Writes the notify rows of one batch of message `id` (see notifyRows). */
export async function insertNotifyRows(tx: Tx, id: number, batchId: number, ownDomain: string | null): Promise<void> {
  await tx`${notifyRows(tx, id, tx`select ${batchId}::int8 as id`, ownDomain)}`;
}

/**
 * For each batch of message `id` that `batches` selects (as `id`): one msg_add_to_notify row per
 * participant domain (the sender's and each `to` address's) that hosts none of the batch's recipients
 * and is not this host's own domain: fmsgd tells those hosts of the batch.
 */
const notifyRows = (sql: Db, id: number, batches: postgres.PendingQuery<postgres.Row[]>, ownDomain: string | null) => sql`
    insert into msg_add_to_notify (batch_id, domain)
    select b.id, p.domain from (${batches}) b cross join (
      select lower(substring(from_addr from '@([^@]+)$')) as domain from msg where id = ${id}
      union
      select lower(substring(addr from '@([^@]+)$')) from msg_to where msg_id = ${id}) p
    where p.domain is not null
      and p.domain not in (select lower(substring(a.addr from '@([^@]+)$')) from msg_add_to a where a.batch_id = b.id)
      and p.domain is distinct from lower(${ownDomain}::text)
    order by b.id, p.domain
    on conflict (batch_id, domain) do nothing`;
