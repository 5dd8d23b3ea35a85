// The stored answers of keyed writes (Idempotency-Key): the key's lock, look-up, record and prune.
import type { Sql, Tx } from "./pool.ts";

/** An answer as given: its status and JSON text, replayed byte for byte. */
export type StoredAnswer = { status: number; body: string };
export type PriorAnswer = StoredAnswer & { fingerprint: string };

/**
 * The first number of the two-key advisory lock of a key ("idem"); the two-number key space never
 * overlaps the one-number locks (such as migrate's).
 */
const LOCK_CLASS = 0x6964_656d;

/**
 * Held until the transaction ends: a second request with the same key waits here until the first
 * commits (then finds its answer) or rolls back (then does the write itself). A hash collision of
 * two keys only makes one wait for the other.
 */
export async function lockKey(tx: Tx, identity: string, key: string): Promise<void> {
  await tx`select pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(lower(${identity}::text) || chr(10) || ${key}::text))`;
}

/** The answer recorded for the key within the last `horizonSeconds`, or null. */
export async function findAnswer(sql: Sql | Tx, identity: string, key: string, horizonSeconds: number): Promise<PriorAnswer | null> {
  const rows = await sql<PriorAnswer[]>`
    select fingerprint, status, body from fmsg_api_idempotency
    where identity = lower(${identity}::text) and key = ${key}
      and created_at > now() - make_interval(secs => ${horizonSeconds}::double precision)`;
  return rows[0] ?? null;
}

/** Records the answer; an expired row of the same key (never returned by findAnswer) is replaced. */
export async function saveAnswer(tx: Tx, identity: string, key: string, fingerprint: string, answer: StoredAnswer): Promise<void> {
  await tx`
    insert into fmsg_api_idempotency (identity, key, fingerprint, status, body)
    values (lower(${identity}::text), ${key}, ${fingerprint}, ${answer.status}, ${answer.body})
    on conflict (identity, key) do update
      set fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body, created_at = now()`;
}

/** Deletes up to `limit` answers older than the horizon; returns how many. */
export async function deleteExpiredAnswers(sql: Sql, horizonSeconds: number, limit: number): Promise<number> {
  const rows = await sql`
    delete from fmsg_api_idempotency where ctid in (
      select ctid from fmsg_api_idempotency
      where created_at < now() - make_interval(secs => ${horizonSeconds}::double precision)
      order by created_at limit ${limit}::int)
    returning 1`;
  return rows.length;
}
