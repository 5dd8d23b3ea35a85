// The bench's own database: created from the admin URL, schema by `bun src/main.ts migrate`, seeded, dropped.
import postgres from "postgres";
import { log, run } from "./util.ts";

export const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Same int8 handling as the server's pool (ids are JSON numbers). */
export const INT8_AS_NUMBER = {
  int8: { to: 20, from: [20], serialize: (v: number | bigint | string) => String(v), parse: (v: string) => Number(v) },
};

export function urlFor(database: string, base = ADMIN_URL): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

export function connect(url: string, opts: { max?: number; app?: string } = {}) {
  return postgres(url, {
    max: opts.max ?? 2,
    onnotice: () => {},
    idle_timeout: 30,
    types: INT8_AS_NUMBER,
    connection: { application_name: opts.app ?? "fmsg-bench", jit: "off" },
  });
}

export type Sql = ReturnType<typeof connect>;

/** Databases this process created and has not dropped yet: what a cleanup after a failure or Ctrl-C drops. */
const created = new Set<string>();

export const createdDatabases = (): string[] => [...created];

export async function createDatabase(name: string): Promise<string> {
  if (!/^fmsg_bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to create "${name}": bench databases are fmsg_bench_*`);
  const admin = connect(ADMIN_URL, { max: 1 });
  try {
    await admin.unsafe(`create database ${name}`);
    created.add(name);
  } finally {
    await admin.end({ timeout: 5 });
  }
  return urlFor(name);
}

/** Drops a bench database (only fmsg_bench_*, never the test databases), ending its sessions first. */
export async function dropDatabase(name: string): Promise<void> {
  if (!/^fmsg_bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to drop "${name}": not a bench database`);
  const admin = connect(ADMIN_URL, { max: 1 });
  try {
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`;
    await admin.unsafe(`drop database if exists ${name}`);
    created.delete(name);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Applies the schema exactly as an operator would: `bun src/main.ts migrate` with DATABASE_URL. */
export async function migrate(url: string): Promise<void> {
  await run(["bun", "src/main.ts", "migrate"], { env: { DATABASE_URL: url } });
}

export const SEED = {
  messages: 200_000,
  recipientsPerMessage: 5,
  users: 50_000,
  /** Every 20th message names the inbox identity: 10,000 messages. */
  targetEvery: 20,
  /** Every 80th message also has an add-to batch of 2 (5,000 msg_add_to rows, none to the target). */
  addToEvery: 80,
  target: "@inbox.target@bench.example",
  domain: "bench.example",
};

/** The transaction a bulk load's fill runs in. */
export type Tx = postgres.TransactionSql<{ int8: number }>;

/** Rows a bulk load appends to the seeded tables; bulkLoad runs each fill in its own transaction. */
export type Fill = (tx: Tx) => Promise<void>;

/**
 * Messages number `from + 1` … `to` of the seed's shape (logical numbers: the formulas for senders,
 * recipients, the inbox identity and add-to batches are on these). A later load appends after rows
 * the bench wrote itself: `idShift` moves the msg ids, `toIdShift` gives msg_to explicit ids
 * (g - 1) × 5 + r + toIdShift (no sequence shared by parallel fills; bulkLoad moves the sequences
 * past them). Every 20th message up to SEED.messages names SEED.target, so its inbox stays at 10,000
 * however far the table grows; past SEED.messages that recipient slot may go to another identity
 * (`slot1`, an SQL expression of g giving the address, or null for the usual recipient). Message
 * `newest` is sent at `now` (default: the transaction's start; a load split over several
 * transactions passes one time to all), each one before it `spacing` seconds earlier.
 */
export async function insertMessages(
  tx: Tx,
  opts: { from: number; to: number; idShift?: number; toIdShift?: number; slot1?: string; newest?: number; spacing?: number; now?: number },
): Promise<void> {
  const { recipientsPerMessage: per, users, targetEvery, addToEvery, target, domain } = SEED;
  const { from, to, idShift = 0, newest = to, spacing = 1 } = opts;
  // g is int8: past 200,000 messages the sender formula (g * 7919 …) no longer fits an int4.
  const capitalised = target.replace("@inbox.target@", "@Inbox.Target@");
  const slot1 = opts.slot1 ? `when r = 1 and (${opts.slot1}) is not null then ${opts.slot1}` : "";
  const toId = opts.toIdShift === undefined ? null : `(g - 1) * ${per} + r + ${opts.toIdShift}`;
  const now = opts.now === undefined ? "extract(epoch from now())" : String(opts.now);
  await tx.unsafe(`
    insert into msg (id, version, no_reply, is_important, is_deflate, time_sent, from_addr, topic, type, size, filepath)
    select g + ${idShift}, 1, false, false, false, ${now} - (${newest} - g) * ${spacing},
           '@user' || ((g * 7919) % ${users}) || '@${domain}', 'seed ' || g, 'text/plain', 12, '/bench-seed/none/' || g
    from generate_series(${from + 1}::int8, ${to}) g`);
  await tx.unsafe(`
    insert into msg_to (${toId ? "id, " : ""}msg_id, addr, time_delivered)
    select ${toId ? `${toId}, ` : ""}g + ${idShift},
           case when r = 1 and g % ${targetEvery} = 0 and g <= ${SEED.messages}
                then case when g % ${2 * targetEvery} = 0 then '${capitalised}' else '${target}' end
                ${slot1}
                else '@user' || ((g * 31 + r * 10007) % ${users}) || '@${domain}' end,
           extract(epoch from now())
    from generate_series(${from + 1}::int8, ${to}) g, generate_series(1, ${per}) r`);
  // A few add-to batches (none for the inbox identity), so msg_add_to is not empty and its
  // plans are real: one batch of 2 addresses per 80 messages.
  await tx.unsafe(`
    insert into msg_add_to_batch (msg_id, add_to_from, time_added)
    select g * ${addToEvery} + ${idShift}, '@user' || ((g * 7919 * ${addToEvery}) % ${users}) || '@${domain}', extract(epoch from now())
    from generate_series(${Math.floor(from / addToEvery) + 1}::int8, ${Math.floor(to / addToEvery)}) g`);
  await tx.unsafe(`
    insert into msg_add_to (msg_id, batch_id, addr, time_delivered)
    select b.msg_id, b.id, '@extra' || ((b.id * 13 + r * 101) % ${users}) || '@${domain}', extract(epoch from now())
    from msg_add_to_batch b, generate_series(1, 2) r
    where b.msg_id > ${from + idShift} and b.msg_id <= ${to + idShift}`);
}

/** Runs `jobs` on `n` connections of their own, each job in a transaction; resolves when all are done. */
async function onConnections<T>(url: string, n: number, jobs: T[], run: (tx: Tx, job: T) => Promise<void>): Promise<void> {
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: Math.min(n, jobs.length) }, async () => {
      const sql = connect(url, { max: 1 });
      try {
        for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
          const next = job;
          await sql.begin((tx) => run(tx, next));
        }
      } finally {
        await sql.end({ timeout: 5 });
      }
    }),
  );
}

/**
 * One bulk load into msg and msg_to (the rest is small). Their secondary indexes and the unique
 * constraints no foreign key depends on (msg_to's (msg_id, addr): each of millions of inserts would
 * check and descend it) are dropped first and rebuilt afterwards from their own definitions: one
 * sort each. The fills run side by side on `parallel` connections (an INSERT … SELECT uses one core),
 * each with triggers (NOTIFYs meant for fmsgd, the event journal) and FK checks off; the rebuilds run
 * two at a time. Then the serial sequences move past the highest ids, `migrate` runs again (a no-op
 * that proves the schema intact: same names, same definitions) and VACUUM ANALYZE (the visibility
 * map and statistics autovacuum would have produced on a live host). Returns the seconds of each part.
 */
export async function bulkLoad(url: string, fills: Fill[], parallel = 2): Promise<{ load: number; indexes: number; vacuum: number }> {
  const sql = connect(url, { max: 1 });
  try {
    const tables = ["msg", "msg_to"];
    const indexes = await sql<{ name: string; def: string }[]>`
      select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
      from pg_index i
      join pg_class t on t.oid = i.indrelid
      join pg_namespace n on n.oid = t.relnamespace
      where n.nspname = current_schema() and t.relname in ${sql(tables)}
        and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
      order by pg_relation_size(t.oid) desc, i.indexrelid`;
    const uniques = await sql<{ table: string; name: string; def: string }[]>`
      select c.conrelid::regclass::text as table, c.conname as name, pg_get_constraintdef(c.oid) as def
      from pg_constraint c
      join pg_class t on t.oid = c.conrelid
      join pg_namespace n on n.oid = t.relnamespace
      where n.nspname = current_schema() and t.relname in ${sql(tables)} and c.contype = 'u'
        and not exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = c.conindid)
      order by pg_relation_size(t.oid) desc, c.oid`;
    const t0 = performance.now();
    await sql.begin(async (tx) => {
      for (const ix of indexes) await tx.unsafe(`drop index ${ix.name}`);
      for (const u of uniques) await tx.unsafe(`alter table ${u.table} drop constraint ${u.name}`);
    });
    await onConnections(url, parallel, fills, async (tx, fill) => {
      await tx`set local session_replication_role = replica`;
      await fill(tx);
    });
    const t1 = performance.now();
    const rebuild = [...uniques.map((u) => `alter table ${u.table} add constraint ${u.name} ${u.def}`), ...indexes.map((ix) => ix.def)];
    await onConnections(url, 2, rebuild, async (tx, ddl) => {
      await tx`set local maintenance_work_mem = '256MB'`;
      await tx.unsafe(ddl);
    });
    for (const table of ["msg", "msg_to", "msg_add_to_batch", "msg_add_to"]) {
      await sql.unsafe(`select setval(pg_get_serial_sequence('${table}', 'id'), greatest(1, (select max(id) from ${table})))`);
    }
    const t2 = performance.now();
    await migrate(url);
    await sql.unsafe("vacuum analyze");
    return { load: (t1 - t0) / 1000, indexes: (t2 - t1) / 1000, vacuum: (performance.now() - t2) / 1000 };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * 200,000 sent messages with 5 msg_to rows each (1,000,000), 10,000 of them to SEED.target (half
 * spelled with capitals, so only a case-insensitive lookup finds them all), 2,500 add-to batches.
 * Set-based inserts in one bulk load (see bulkLoad).
 */
export async function seed(url: string): Promise<{ seconds: number; counts: Record<string, number> }> {
  const started = performance.now();
  await bulkLoad(url, [(tx) => insertMessages(tx, { from: 0, to: SEED.messages })]);
  const sql = connect(url, { max: 1 });
  try {
    const { target } = SEED;
    const [c] = await sql<{ msg: number; msg_to: number; msg_add_to: number; target: number }[]>`
      select (select count(*) from msg)::int as msg, (select count(*) from msg_to)::int as msg_to,
             (select count(*) from msg_add_to)::int as msg_add_to,
             (select count(*) from msg_to where lower(addr) = lower(${target}))::int as target`;
    const seconds = (performance.now() - started) / 1000;
    log(`seeded ${c!.msg} messages, ${c!.msg_to} msg_to rows (${c!.target} for ${target}), ${c!.msg_add_to} msg_add_to rows in ${seconds.toFixed(1)} s`);
    return { seconds, counts: { ...c! } };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
