// A message's reply chain: its ancestors by pid and itself, with who may see each, in one query.
import type { StoredMessage } from "../domain/message-json.ts";
import { messageColumns } from "./messages.ts";
import type { Sql, Tx } from "./pool.ts";

type Db = Sql | Tx;

/** Ancestors followed at most (docs/API.md §10.3). */
export const MAX_ANCESTORS = 100;

/** A chain entry; `visible`: the identity owns it, or received it and it is sent (decided in SQL). */
export type ThreadEntry = StoredMessage & { visible: boolean };

/**
 * The chain root first, message `id` last; [] when there is no such message. The walk stops after
 * MAX_ANCESTORS parents and at any message it has already passed, so a pid cycle (fmsgd's triggers
 * do not forbid one made by updates) ends too.
 */
export async function threadChain(sql: Db, id: number, identity: string): Promise<ThreadEntry[]> {
  return sql<ThreadEntry[]>`
    with recursive chain (id, pid, depth, seen) as (
      select m.id, m.pid, 0, array[m.id] from msg m where m.id = ${id}
      union all
      select p.id, p.pid, c.depth + 1, c.seen || p.id
      from chain c join msg p on p.id = c.pid
      where c.depth < ${MAX_ANCESTORS} and p.id <> all (c.seen)
    )
    select ${messageColumns(sql, identity)},
      lower(m.from_addr) = lower(${identity}::text)
        or (m.time_sent is not null and (
          exists (select 1 from msg_to t where t.msg_id = m.id and lower(t.addr) = lower(${identity}::text))
          or exists (select 1 from msg_add_to a where a.msg_id = m.id and lower(a.addr) = lower(${identity}::text))))
        as visible
    from chain c join msg m on m.id = c.id
    order by c.depth desc`;
}
