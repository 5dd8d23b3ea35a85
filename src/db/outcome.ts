// A COMMIT whose answer was lost (the connection cut after PostgreSQL committed, or before): the
// transaction is asked about afterwards, so a write that was saved is answered as saved, not as a
// 503 "nothing was saved" that a client would retry into a duplicate.
import { isDatabaseUnavailable, mayHaveCommitted } from "./errors.ts";
import type { Sql, Tx } from "./pool.ts";

/** How long the outcome is asked after: the pool reconnects within about half a second. */
const ASK_FOR_MS = 3_000;
const ASK_EVERY_MS = 100;

type Outcome = "committed" | "aborted" | "unknown";

/**
 * `ask`'s answer once the database answers, tried every ASK_EVERY_MS for up to ASK_FOR_MS while it
 * does not (the pool reconnects) or while `ask` answers undefined (not decided yet); undefined then.
 */
export async function askUntilAnswered<T>(ask: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + ASK_FOR_MS;
  for (;;) {
    try {
      const answer = await ask();
      if (answer !== undefined) return answer;
    } catch (err) {
      if (!isDatabaseUnavailable(err)) return undefined;
    }
    if (Date.now() >= deadline) return undefined;
    await Bun.sleep(ASK_EVERY_MS);
  }
}

/**
 * What became of transaction `xid` (txid_current()), asked on another connection of the pool:
 * "unknown" when the database does not answer in time, or no longer knows (wraparound). A
 * transaction still "in progress" (its backend has not finished the COMMIT) is asked about again.
 */
export async function outcomeOf(sql: Sql, xid: string): Promise<Outcome> {
  const status = await askUntilAnswered(async () => {
    const [row] = await sql<{ status: string | null }[]>`select txid_status(${xid}::int8) as status`;
    return row?.status === "in progress" ? undefined : (row?.status ?? "unknown");
  });
  return status === "committed" || status === "aborted" ? status : "unknown";
}

/**
 * For a single statement (no transaction id to ask about): whether the row it inserted under an id
 * chosen beforehand is there, once the database answers; false when that cannot be told in time.
 */
export async function messageRowExists(sql: Sql, id: number): Promise<boolean> {
  return (await askUntilAnswered(async () => (await sql`select 1 from msg where id = ${id}`).length > 0)) === true;
}

/**
 * `sql.begin(fn)`, except that when the connection is lost with the COMMIT possibly done, the
 * transaction's fate is asked: committed, and the write's own result is returned as if the answer
 * had come; otherwise the error stands (503: nothing was saved, or it cannot be told yet). The
 * transaction id is asked first, pipelined ahead of fn's first statement: no extra round trip.
 */
export async function beginKnown<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  let xid: string | null = null;
  let result: { value: T } | null = null;
  try {
    return (await sql.begin(async (tx) => {
      const asked = tx<{ xid: string }[]>`select txid_current()::text as xid`.execute();
      asked.catch(() => {}); // when fn fails first, its error is the one that counts
      const value = await fn(tx);
      xid = (await asked)[0]!.xid;
      result = { value };
      return value;
    })) as T;
  } catch (err) {
    if (result === null || xid === null || !mayHaveCommitted(err)) throw err;
    if ((await outcomeOf(sql, xid)) !== "committed") throw err;
    return (result as { value: T }).value;
  }
}
