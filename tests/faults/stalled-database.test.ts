// A database that stops answering with its sockets open (SIGSTOP, a frozen VM, a partition without
// a reset). statement_timeout cannot fire in a server that does not run, so the client side bounds
// it: a query unanswered past statement_timeout + 5 s closes its connection, and the request is
// answered 503. Before, requests hung for the whole stall and were then cut off with no answer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, errorOf } from "../helpers/messages.ts";
import { until } from "../helpers/poll.ts";
import { serverBehindProxy, type BehindProxy, type CutProxy } from "../helpers/pg-cut-proxy.ts";
import { draft, EMBEDDED, type TestServer } from "../helpers/server.ts";

describe.skipIf(EMBEDDED)("a stalled database (PostgreSQL behind a proxy that stops passing bytes)", () => {
  let db: TestDatabase;
  let proxy: CutProxy;
  let s: TestServer;
  let setup: BehindProxy;
  beforeAll(async () => {
    setup = await serverBehindProxy({ FMSG_API_DB_STATEMENT_TIMEOUT_MS: "1000", FMSG_API_DB_LOCK_TIMEOUT_MS: "500" });
    ({ db, proxy, s } = setup);
  });
  afterAll(() => setup?.stop());

  test("a read and a write during the stall → 503 database unavailable, nothing saved; served again after it", async () => {
    expect((await s.request("GET", "/fmsg", { as: ALICE })).status).toBe(200);
    const resume = proxy.stall();
    try {
      const [read, write] = await Promise.all([
        s.request("GET", "/fmsg", { as: ALICE }),
        s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, [BOB], { topic: "during the stall" }) }),
      ]);
      expect(await errorOf(read)).toEqual({ status: 503, error: "database unavailable" });
      expect(read.headers.get("retry-after")).not.toBeNull();
      expect(await errorOf(write)).toEqual({ status: 503, error: "database unavailable" });
    } finally {
      resume();
    }
    await until(async () => (await s.request("GET", "/fmsg", { as: ALICE })).status === 200, "served again", 20_000);
    expect((await db.sql`select count(*)::int as n from msg where topic = 'during the stall'`)[0]!.n).toBe(0);
  }, 40_000);
});
