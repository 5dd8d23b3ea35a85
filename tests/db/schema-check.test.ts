// The start-up schema check: a missing table stops the server; a missing index, trigger or a trigger
// body that differs from sql/ (fmsgd's own DDL run after migrate) is named in the log and in /readyz.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { checkSchema } from "../../src/db/schema-check.ts";
import { openPool, type Sql } from "../../src/db/pool.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { EMBEDDED, startTestServer } from "../helpers/server.ts";

describe.skipIf(EMBEDDED)("checkSchema (PostgreSQL; the embedded database is migrated by the server itself)", () => {
  let db: TestDatabase;
  let sql: Sql;
  beforeAll(async () => {
    db = await createTestDatabase();
    sql = openPool({ url: db.url, max: 2 });
  });
  afterAll(async () => {
    await sql.end({ timeout: 5 });
    await db.drop();
  });

  test("a freshly migrated database: nothing to report", async () => {
    expect(await checkSchema(sql)).toEqual({ missingTables: [], warnings: [] });
  });

  test("a dropped index, a dropped trigger and a replaced trigger body are each named; the server starts and /readyz says so", async () => {
    await db.sql`drop index fmsg_api_msg_pid_idx`;
    await db.sql`drop trigger trg_msg_to_delivered on msg_to`;
    // What re-running fmsgd's own DDL after migrate does to one of the functions.
    await db.sql.unsafe(`
      create or replace function prevent_referenced_msg_from_becoming_unreferenceable() returns trigger
      language plpgsql as $$ begin return new; end $$`);
    const expected = [
      "missing index fmsg_api_msg_pid_idx",
      "missing trigger trg_msg_to_delivered",
      "function prevent_referenced_msg_from_becoming_unreferenceable differs from what migrate installs",
    ];
    expect(await checkSchema(sql)).toEqual({ missingTables: [], warnings: expected });

    const logged: Record<string, unknown>[] = [];
    const s = await startTestServer({ database: db, log: (line) => logged.push(line) });
    try {
      const ready = await (await s.request("GET", "/readyz", { as: null })).json();
      expect(ready).toEqual({ status: "ready", database: true, listener: true, schema: expected });
      expect(logged.filter((l) => l.msg === "schema differs from what migrate installs").map((l) => l.object)).toEqual(expected);
    } finally {
      await s.stop();
    }
  });

  test("a host upgraded without migrate (no API-key table): named at start, and /fmsg/token is a 503, never a 500", async () => {
    const other = await createTestDatabase();
    try {
      await other.sql`drop table fmsg_api_key`;
      const logged: Record<string, unknown>[] = [];
      const s = await startTestServer({ database: other, log: (line) => logged.push(line) });
      try {
        expect(logged.filter((l) => l.msg === "schema differs from what migrate installs").map((l) => l.object)).toContain("missing table fmsg_api_key");
        const res = await s.request("POST", "/fmsg/token", { as: null, headers: { authorization: `Bearer fmsgk_abcdefghijkl_${"A".repeat(43)}` } });
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({ error: "database unavailable" });
      } finally {
        await s.stop();
      }
    } finally {
      await other.drop();
    }
  });
});
