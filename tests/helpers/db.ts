// Per-test-file PostgreSQL databases: each file gets a fresh clone of a migrated template.
import postgres from "postgres";
import { migrate } from "../../src/db/schema.ts";
import { schemaFingerprint } from "../../src/db/schema.ts";

const ADMIN_URL = process.env.FMSG_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export type TestDatabase = {
  name: string;
  url: string;
  /** A small pool for assertions and for playing fmsgd in tests. */
  sql: postgres.Sql;
  drop: () => Promise<void>;
};

function urlFor(name: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

async function withAdmin<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    return await fn(admin);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Creates (once per schema version) a migrated template database and returns its name. */
async function ensureTemplate(): Promise<string> {
  const template = `fmsg_test_tpl_${schemaFingerprint()}`;
  await withAdmin(async (admin) => {
    // Serialise concurrent test processes building the same template.
    await admin`select pg_advisory_lock(4242)`;
    try {
      const [row] = await admin`select 1 as ok from pg_database where datname = ${template}`;
      if (row) return;
      await admin.unsafe(`create database "${template}_build"`).catch(async () => {
        await admin.unsafe(`drop database if exists "${template}_build"`);
        await admin.unsafe(`create database "${template}_build"`);
      });
      const build = postgres(urlFor(`${template}_build`), { max: 1, onnotice: () => {} });
      try {
        await migrate(build);
      } finally {
        await build.end({ timeout: 5 });
      }
      await admin.unsafe(`alter database "${template}_build" rename to "${template}"`);
    } finally {
      await admin`select pg_advisory_unlock(4242)`;
    }
  });
  return template;
}

/**
 * A fresh, migrated database for one test file. `ctype: "C"` builds one whose lower() folds ASCII
 * only (as on hosts initialised without a locale): created from template0 and migrated on its own.
 */
export async function createTestDatabase(opts: { migrated?: boolean; ctype?: "C" } = {}): Promise<TestDatabase> {
  const migrated = opts.migrated ?? true;
  const name = `fmsg_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  if (opts.ctype === "C") {
    await withAdmin((admin) =>
      admin.unsafe(`create database "${name}" template template0 encoding 'UTF8' lc_collate 'C' lc_ctype 'C'`),
    );
    if (migrated) {
      const build = postgres(urlFor(name), { max: 1, onnotice: () => {} });
      try {
        await migrate(build);
      } finally {
        await build.end({ timeout: 5 });
      }
    }
  } else if (migrated) {
    const template = await ensureTemplate();
    await withAdmin((admin) => admin.unsafe(`create database "${name}" template "${template}"`));
  } else {
    await withAdmin((admin) => admin.unsafe(`create database "${name}"`));
  }
  const url = urlFor(name);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  return {
    name,
    url,
    sql,
    drop: async () => {
      await sql.end({ timeout: 5 });
      await withAdmin((admin) => admin.unsafe(`drop database if exists "${name}" with (force)`));
    },
  };
}
