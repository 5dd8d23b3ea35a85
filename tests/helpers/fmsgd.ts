// Plays fmsgd in tests and fault rounds: mail "received from another host", written as the daemon writes it.
import type postgres from "postgres";

/**
 * One received message per address (from a remote sender, already sent), all committed in one
 * transaction as fmsgd stores a delivery; returns the new ids in the order of `addresses`.
 */
export function deliverFromAfar(sql: postgres.Sql, addresses: readonly string[], topic: string): Promise<number[]> {
  return sql.begin(async (tx) => {
    const ids: number[] = [];
    for (const addr of addresses) {
      const [m] = await tx<{ id: string }[]>`
        insert into msg (version, from_addr, topic, type, size, filepath, time_sent)
        values (1, '@zed@remote.example', ${topic}, 'text/plain', 0, '/nonexistent', extract(epoch from now()))
        returning id::text as id`;
      ids.push(Number(m!.id));
      await tx`insert into msg_to (msg_id, addr) values (${Number(m!.id)}, ${addr})`;
    }
    return ids;
  });
}
