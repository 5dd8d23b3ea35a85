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
 * lower() says so (the folding of every inbox query); an identical spelling needs no lower() call
 * (and travels as NULL, so the third array is mostly empty, or not sent at all). Every table look-up is by key — msg by
 * id (LIMIT 1 keeps it a probe per candidate: as a plain join the planner may merge-join the whole
 * primary key from its start), msg_to and msg_add_to by their unique (msg_id, addr) with the address
 * exactly as the trigger wrote it — so the cost follows the batch, never an inbox's size. Each
 * candidate is looked at once and the answer is one array: position p confirmed as p, in doubt as
 * -1 - p, neither left out. A wake-up of thousands parses one array, not thousands of rows.
 */
export async function confirmNotified(sql: Sql, candidates: readonly NotifiedCandidate[]): Promise<NotifiedAnswer> {
  if (candidates.length === 0) return { confirmed: [], doubtful: [] };
  // The other spellings, cut after the last one: unnest pads a shorter array with NULLs, so a wave
  // whose waiters all spell their address as the trigger did sends no array of 10,000 NULLs.
  const others = candidates.map((c) => (c.addr === c.named ? null : c.addr));
  while (others.length > 0 && others[others.length - 1] === null) others.pop();
  const [row] = await sql<{ answer: number[] }[]>`
    select coalesce(array_remove(array_agg(case
        when exists (select 1 from msg_to t where t.msg_id = x.msg_id and t.addr = x.named)
          or exists (select 1 from msg_add_to a where a.msg_id = x.msg_id and a.addr = x.named) then x.n::int4 - 1
        when m.from_addr <> x.named then -x.n::int4 end), null), '{}') as answer
    from unnest(${arrayLiteral(candidates.map((c) => c.msgId))}::int8[],
                ${arrayLiteral(candidates.map((c) => c.named))}::text[],
                ${arrayLiteral(others)}::text[])
      with ordinality as x(msg_id, named, addr, n)
    cross join lateral (select m.from_addr from msg m where m.id = x.msg_id and m.time_sent is not null limit 1) m
    where x.addr is null or lower(x.addr) = lower(x.named)`;
  const confirmed: number[] = [];
  const doubtful: number[] = [];
  for (const v of row?.answer ?? []) {
    if (v >= 0) confirmed.push(v);
    else doubtful.push(-1 - v);
  }
  return { confirmed, doubtful };
}
