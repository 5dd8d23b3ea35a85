// The API on a database whose tables fmsgd's own DDL created first (then `migrate` ran over it).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { migrate } from "../../src/db/schema.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, CAROL, createDraft, sendDraft } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let s: TestServer;
beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
  await db.sql.unsafe(await Bun.file(join(import.meta.dir, "../fixtures/fmsgd-ddl.sql")).text());
  await migrate(db.sql);
  s = await startTestServer({ database: db });
});
afterAll(async () => {
  await s.stop();
  await db.drop();
});

test("create, add-to, send, read and list work on fmsgd's tables, triggers included", async () => {
  const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
  await sendDraft(s, ALICE, id);
  const inbox = (await (await s.request("GET", "/fmsg", { as: CAROL })).json()) as { id: number }[];
  expect(inbox.map((m) => m.id)).toEqual([id]);
  const reply = await createDraft(s, BOB, [ALICE], { pid: id, topic: "" });
  const [row] = await db.sql`select pid, psha256 from msg where id = ${reply}`;
  expect(Number(row!.pid)).toBe(id);
  const wait = await s.request("GET", `/fmsg/wait?since_id=${id - 1}&timeout=1`, { as: BOB });
  expect(await wait.json()).toEqual({ has_new: true, latest_id: id });
});
