// The patched postgres.js (patches/postgres@3.4.9.patch) across a connection lost mid-transaction:
// the transaction's later statements never run outside it, and the reconnected session answers
// every later query with its own result, promptly.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { openPool, type Sql } from "../../src/db/pool.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { within } from "../helpers/poll.ts";
import { EMBEDDED } from "../helpers/server.ts";

const APP = "fmsg-reconnect-test";
const ROUNDS = 15;

describe.skipIf(EMBEDDED)("postgres.js after a connection dies inside a transaction (PostgreSQL)", () => {
  let db: TestDatabase;
  let pool: Sql;
  let admin: postgres.Sql;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql`create table reconnect_probe (round int primary key)`;
    // One connection, as our pool looks to a transaction that holds it while other requests queue.
    pool = openPool({ url: db.url, max: 1, startupParams: { application_name: APP } });
    admin = postgres(db.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await pool.end({ timeout: 5 });
    await admin.end({ timeout: 5 });
    await db.drop();
  });

  test(`${ROUNDS} rounds: no statement escapes its transaction, no answer goes to the wrong query, nothing hangs`, async () => {
    const outcomes = { escaped: 0, wrongAnswers: 0, hung: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      let queued: Promise<unknown> = Promise.resolve();
      const tx = pool
        .begin(async (t) => {
          await t`select 1`;
          // A request waiting for the connection: when it drops, the pool reconnects it for this one.
          queued = pool`select 7 as seven`.catch(() => null);
          await admin`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${APP}`;
          // By now the pool may have reconnected for the queued query; the transaction is gone.
          await new Promise((resolve) => setTimeout(resolve, 150));
          await t`insert into reconnect_probe values (${round})`.catch(() => {});
          await t`select 2`.catch(() => {});
        })
        .catch(() => "failed");
      if ((await within(tx, 5000)) === "hung") outcomes.hung++;
      if ((await within(queued, 5000)) === "hung") outcomes.hung++;
      for (let i = 0; i < 3; i++) {
        const expected = round * 10 + i;
        const got = await within(
          pool<{ x: number }[]>`select ${expected}::int as x`.then((rows) => rows.map((r) => r.x), () => "error" as const),
          5000,
        );
        if (got === "hung") outcomes.hung++;
        else if (got !== "error" && !(got.length === 1 && got[0] === expected)) outcomes.wrongAnswers++;
      }
    }
    const [row] = await admin<{ n: string }[]>`select count(*)::text as n from reconnect_probe`;
    outcomes.escaped = Number(row!.n);
    expect(outcomes).toEqual({ escaped: 0, wrongAnswers: 0, hung: 0 });
  }, 120_000);
});
