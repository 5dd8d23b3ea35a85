// Confirming inbox notifications: which waiting identities a batch of (message, address) NOTIFYs really concerns.
import { arrayLiteral } from "./arrays.ts";
import type { Sql } from "./pool.ts";

/** One notification ("<msg_id>,<addr>" as the trigger spelt it) and one waiting identity it may concern. */
export type NotifiedCandidate = { msgId: number; named: string; addr: string };

/**
 * What a batch of candidates comes to, by their positions in it. Confirmed: the message is sent and
 * the named address is stored among its `to` or add-to recipients. Doubtful: the message is sent but
 * the named address is stored neither there nor as its sender — a spelling no trigger writes, which
 * this check cannot vouch for either way. Every other candidate is not concerned: an unsent or
 * absent message, a sender told of an add-to, or an identity lower() tells apart from the named one.
 */
export type NotifiedAnswer = { confirmed: number[]; doubtful: number[] };

/**
 * One query for a batch of notifications. A candidate is the named address only where PostgreSQL's
 * lower() says so (the folding of every inbox query); an identical spelling needs no lower() call.
 * Every table look-up is by key — msg by id, msg_to and msg_add_to by their unique (msg_id, addr) with
 * the address exactly as the trigger wrote it — so the cost follows the batch, never an inbox's size.
 * Both steps are materialized so each look-up runs once per candidate as such a probe (inlined, the
 * recipient test was evaluated twice). Positions come back as two arrays in one row: a wake-up of
 * thousands parses two arrays, not thousands of rows.
 */
export async function confirmNotified(sql: Sql, candidates: readonly NotifiedCandidate[]): Promise<NotifiedAnswer> {
  if (candidates.length === 0) return { confirmed: [], doubtful: [] };
  const [row] = await sql<NotifiedAnswer[]>`
    with c as materialized (
      select x.n::int4 - 1 as n, x.msg_id, x.named,
        (select m.from_addr from msg m where m.id = x.msg_id and m.time_sent is not null) as sender
      from unnest(${arrayLiteral(candidates.map((c) => c.msgId))}::int8[],
                  ${arrayLiteral(candidates.map((c) => c.named))}::text[],
                  ${arrayLiteral(candidates.map((c) => c.addr))}::text[]) with ordinality as x(msg_id, named, addr, n)
      where case when x.addr = x.named then true else lower(x.addr) = lower(x.named) end),
    k as materialized (
      select c.n, c.sender = c.named as is_sender,
        exists (select 1 from msg_to t where t.msg_id = c.msg_id and t.addr = c.named)
          or exists (select 1 from msg_add_to a where a.msg_id = c.msg_id and a.addr = c.named) as recipient
      from c where c.sender is not null)
    select coalesce(array_agg(k.n) filter (where k.recipient), '{}') as confirmed,
      coalesce(array_agg(k.n) filter (where not k.recipient and not k.is_sender), '{}') as doubtful
    from k`;
  return { confirmed: row?.confirmed ?? [], doubtful: row?.doubtful ?? [] };
}
