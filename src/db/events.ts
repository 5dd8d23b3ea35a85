// The inbox event journal (sql/003_events.sql): feed pages, the cursor checks, the waiters' query and pruning.
import { arrayLiteral } from "./arrays.ts";
import type { Sql } from "./pool.ts";

export type EventKind = "new_msg" | "recipients_added" | "delivered" | "read";
export type FeedEvent = { seq: number; kind: EventKind; id: number };

/**
 * Up to `limit` of the identity's events above `since`, oldest first. lower() of both sides decides
 * who is who, as everywhere. The triggers commit events in seq order (sql/003_events.sql), so
 * whatever is visible above `since` is a gap-free continuation of what the reader already has.
 */
export async function readEvents(sql: Sql, address: string, since: number, limit: number): Promise<FeedEvent[]> {
  return sql<FeedEvent[]>`
    select e.seq, e.kind, e.msg_id as id from fmsg_api_event e
    where lower(e.addr) = lower(${address}::text) and e.seq > ${since}::int8
    order by lower(e.addr), e.seq limit ${limit}`;
}

/**
 * Where a cursor stands: `head`, the highest seq recorded so far (a new reader's "now"), and
 * `prunedUpto`, the highest seq the pruner removed (a cursor below it has missed events).
 */
export async function feedPosition(sql: Sql): Promise<{ head: number; prunedUpto: number }> {
  const [row] = await sql<{ head: number; pruned_upto: number }[]>`
    select coalesce((select max(seq) from fmsg_api_event), 0)::int8 as head,
      coalesce((select upto from fmsg_api_event_pruned), 0)::int8 as pruned_upto`;
  const prunedUpto = row?.pruned_upto ?? 0;
  return { head: Math.max(row?.head ?? 0, prunedUpto), prunedUpto };
}

/**
 * For many feed waiters at once: per waiting identity (as the caller spelled it), its highest seq
 * above its cursor. The InboxWaiters registry calls it on every wake-up of the feed.
 */
export async function latestEventSeqs(sql: Sql, pairs: { addr: string; sinceId: number }[]): Promise<Map<string, number>> {
  if (pairs.length === 0) return new Map();
  const rows = await sql<{ addr: string; seq: number | null }[]>`
    with wanted as (
      select w.addr, lower(w.addr) as key, w.since
      from unnest(${arrayLiteral(pairs.map((p) => p.addr))}::text[], ${arrayLiteral(pairs.map((p) => p.sinceId))}::int8[]) as w(addr, since))
    select w.addr, (select e.seq from fmsg_api_event e where lower(e.addr) = w.key and e.seq > w.since
                    order by lower(e.addr) desc, e.seq desc limit 1) as seq
    from wanted w`;
  const out = new Map<string, number>();
  for (const r of rows) if (r.seq !== null) out.set(r.addr, r.seq);
  return out;
}

/**
 * Removes the events older than `retentionDays`, a bounded batch per statement so no statement holds
 * many locks or runs long. The watermark moves first (in its own statement): should a batch fail, a
 * cursor below it is already told to re-list, never given a feed with a hole. Returns rows removed.
 */
export async function pruneEvents(sql: Sql, retentionDays: number, batch: number): Promise<number> {
  const [cut] = await sql<{ upto: number | null }[]>`
    select max(seq) as upto from fmsg_api_event
    where time < extract(epoch from now())::float8 - ${retentionDays * 86_400}::float8`;
  const upto = cut?.upto ?? null;
  if (upto === null) return 0;
  await sql`
    insert into fmsg_api_event_pruned (only_row, upto) values (true, ${upto}::int8)
    on conflict (only_row) do update set upto = greatest(fmsg_api_event_pruned.upto, excluded.upto)`;
  let removed = 0;
  for (;;) {
    const gone = await sql`
      delete from fmsg_api_event where seq in (
        select seq from fmsg_api_event where seq <= ${upto}::int8 order by seq limit ${batch})`;
    removed += gone.count;
    if (gone.count < batch) return removed;
  }
}
