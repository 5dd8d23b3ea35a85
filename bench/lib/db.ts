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

export async function createDatabase(name: string): Promise<string> {
  if (!/^fmsg_bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to create "${name}": bench databases are fmsg_bench_*`);
  const admin = connect(ADMIN_URL, { max: 1 });
  try {
    await admin.unsafe(`create database ${name}`);
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

/**
 * 200,000 sent messages with 5 msg_to rows each (1,000,000), 10,000 of them to SEED.target (half
 * spelled with capitals, so only a case-insensitive lookup finds them all). Set-based inserts; the
 * secondary indexes are dropped for the load and rebuilt from their own definitions, then the
 * schema is migrated again (a no-op that proves the schema is intact) and VACUUM ANALYZE runs
 * (the visibility map and statistics autovacuum would have produced on a live host).
 */
export async function seed(url: string): Promise<{ seconds: number; counts: Record<string, number> }> {
  const started = performance.now();
  const sql = connect(url, { max: 1 });
  try {
    const indexes = await sql<{ name: string; def: string }[]>`
      select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
      from pg_index i
      join pg_class t on t.oid = i.indrelid
      join pg_namespace n on n.oid = t.relnamespace
      where n.nspname = current_schema() and t.relname in ('msg', 'msg_to')
        and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)`;
    const { messages, recipientsPerMessage: per, users, targetEvery, addToEvery, target, domain } = SEED;
    const capitalised = target.replace("@inbox.target@", "@Inbox.Target@");
    await sql.begin(async (tx) => {
      // Bulk load: triggers (NOTIFYs meant for fmsgd) and FK checks off for this transaction only.
      await tx`set local session_replication_role = replica`;
      for (const ix of indexes) await tx.unsafe(`drop index ${ix.name}`);
      await tx.unsafe(`
        insert into msg (id, version, no_reply, is_important, is_deflate, time_sent, from_addr, topic, type, size, filepath)
        select g, 1, false, false, false, extract(epoch from now()) - (${messages} - g),
               '@user' || ((g * 7919) % ${users}) || '@${domain}', 'seed ' || g, 'text/plain', 12, '/bench-seed/none/' || g
        from generate_series(1, ${messages}) g`);
      await tx.unsafe(`select setval(pg_get_serial_sequence('msg', 'id'), ${messages})`);
      await tx.unsafe(`
        insert into msg_to (msg_id, addr, time_delivered)
        select g,
               case when r = 1 and g % ${targetEvery} = 0
                    then case when g % ${2 * targetEvery} = 0 then '${capitalised}' else '${target}' end
                    else '@user' || ((g * 31 + r * 10007) % ${users}) || '@${domain}' end,
               extract(epoch from now())
        from generate_series(1, ${messages}) g, generate_series(1, ${per}) r`);
      // A few add-to batches (none for the inbox identity), so msg_add_to is not empty and its
      // plans are real: 2,500 batches of 2 addresses.
      await tx.unsafe(`
        insert into msg_add_to_batch (msg_id, add_to_from, time_added)
        select g * ${addToEvery}, '@user' || ((g * 7919 * ${addToEvery}) % ${users}) || '@${domain}', extract(epoch from now())
        from generate_series(1, ${messages / addToEvery}) g`);
      await tx.unsafe(`
        insert into msg_add_to (msg_id, batch_id, addr, time_delivered)
        select b.msg_id, b.id, '@extra' || ((b.id * 13 + r * 101) % ${users}) || '@${domain}', extract(epoch from now())
        from msg_add_to_batch b, generate_series(1, 2) r`);
      await tx`set local maintenance_work_mem = '256MB'`;
      for (const ix of indexes) await tx.unsafe(ix.def);
    });
    await migrate(url);
    await sql.unsafe("vacuum analyze");
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
