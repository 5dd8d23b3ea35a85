// Growing a seeded bench database in place (the growth scenario): more messages of the seed's shape,
// appended with set-based SQL, one of them in every so many going to an identity with a big inbox.
import { availableParallelism } from "node:os";
import { bulkLoad, connect, insertMessages, SEED, type Tx } from "./db.ts";
import { log } from "./util.ts";

/** The identity whose inbox the growth adds (half spelled with capitals, like SEED.target). */
export const BIG_INBOX = "@inbox.big@bench.example";

export type Growth = {
  /** Wall time of the whole growth, and its parts: inserts, index rebuilds, migrate + VACUUM ANALYZE. */
  seconds: number;
  load: number;
  indexes: number;
  vacuum: number;
  added: number;
  counts: { msg: number; msg_to: number; msg_add_to: number; target: number; big: number };
};

/** Row counts of the tables the scenarios read, and the two benchmarked inboxes. */
export async function seedCounts(url: string): Promise<Growth["counts"]> {
  const sql = connect(url, { max: 1 });
  try {
    const [c] = await sql<Growth["counts"][]>`
      select (select count(*) from msg)::int as msg, (select count(*) from msg_to)::int as msg_to,
             (select count(*) from msg_add_to)::int as msg_add_to,
             (select count(*) from msg_to where lower(addr) = lower(${SEED.target}))::int as target,
             (select count(*) from msg_to where lower(addr) = lower(${BIG_INBOX}))::int as big`;
    return c!;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Appends messages to a database seeded by `seed` until it holds `total` (whatever the bench wrote
 * meanwhile counts): logical numbers SEED.messages + 1 … onwards, so senders, recipients and add-to
 * batches follow the seed's formulas, stored after the highest id present. SEED.target gets none of
 * them (its inbox stays at 10,000: the table grows, the inbox does not); instead `bigInbox` of them,
 * evenly spread, name BIG_INBOX in the recipient slot the target has in the seed. Their times
 * continue from the newest message to the start of the growth, so time and id still rise together.
 */
export async function growSeed(url: string, opts: { total: number; bigInbox: number }): Promise<Growth> {
  const started = performance.now();
  const sql = connect(url, { max: 1 });
  type Present = { n: number; max_id: number; max_to_id: number; newest: number; now: number };
  let present: Present;
  try {
    const [row] = await sql<Present[]>`
      select count(*)::int as n, max(id) as max_id, (select max(id) from msg_to) as max_to_id,
             max(time_sent) as newest, extract(epoch from now())::float8 as now
      from msg`;
    present = row!;
  } finally {
    await sql.end({ timeout: 5 });
  }
  const added = opts.total - present.n;
  if (added < opts.bigInbox) throw new Error(`cannot grow ${present.n} messages to ${opts.total} with an inbox of ${opts.bigInbox}`);
  const from = SEED.messages;
  // Message g is the k-th of the big inbox when floor((g - from) × big ÷ added) steps up to k there:
  // exactly `big` of them, evenly spread, the last one the newest message.
  const k = (g: string) => `((${g} - ${from}) * ${opts.bigInbox} / ${added})`;
  const capitalised = BIG_INBOX.replace("@inbox.big@", "@Inbox.Big@");
  const slot1 = `case when ${k("g")} > ${k("(g - 1)")}
                      then case when ${k("g")} % 2 = 0 then '${capitalised}' else '${BIG_INBOX}' end end`;
  const to = from + added;
  const spacing = Math.max(0, (present.now - present.newest) / (added + 1));
  const common = { idShift: present.max_id - from, toIdShift: present.max_to_id - from * SEED.recipientsPerMessage, slot1, newest: to, spacing, now: present.now };
  // One slice per core: each INSERT … SELECT runs on one.
  const slices = Math.max(1, Math.min(4, availableParallelism()));
  const bounds = Array.from({ length: slices + 1 }, (_, i) => from + Math.round((added * i) / slices));
  const fills = bounds.slice(1).map((end, i) => (tx: Tx) => insertMessages(tx, { ...common, from: bounds[i]!, to: end }));
  const parts = await bulkLoad(url, fills, slices);
  const counts = await seedCounts(url);
  const seconds = (performance.now() - started) / 1000;
  log(
    `grew to ${counts.msg} messages, ${counts.msg_to} msg_to rows (${counts.big} for ${BIG_INBOX}, ${counts.target} for ${SEED.target}) in ${seconds.toFixed(1)} s` +
      ` (inserts ${parts.load.toFixed(1)} s, indexes ${parts.indexes.toFixed(1)} s, migrate + vacuum analyze ${parts.vacuum.toFixed(1)} s)`,
  );
  return { seconds, ...parts, added, counts };
}
