// FMSG_DOMAIN set: recipients on the host's own domain are resolved by the API at send and add-to.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ALICE, createDraft, sendDraft } from "../helpers/messages.ts";
import { startIdentityStub, type IdentityStub } from "../helpers/identity-stub.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { retryLocalDeliveries } from "../../src/delivery/local-delivery.ts";

let stub: IdentityStub;
let s: TestServer;
const KNOWN = "@bob@example.com";
const UNKNOWN = "@ghost@example.com";
const CLOSED = "@closed@example.com";
const DOWN = "@flaky@example.com";
const REMOTE = "@carol@other.org";

beforeAll(async () => {
  stub = startIdentityStub("accepting");
  stub.set(UNKNOWN, "unknown");
  stub.set(CLOSED, "not_accepting");
  stub.set(DOWN, "error");
  s = await startTestServer({ identityUrl: stub.url, env: { FMSG_DOMAIN: "example.com" } });
});
afterAll(async () => {
  await s.stop();
  await stub.stop();
});

const outcome = async (table: "msg_to" | "msg_add_to", id: number, addr: string) => {
  const [row] = await s.db.sql`select time_delivered, response_code from ${s.db.sql(table)} where msg_id = ${id} and addr = ${addr}`;
  return { delivered: row!.time_delivered !== null, code: row!.response_code };
};

test("send resolves local recipients: 200 delivered, 100 unknown, 102 not accepting, pending when unreachable", async () => {
  const id = await createDraft(s, ALICE, [KNOWN, UNKNOWN, CLOSED, DOWN, REMOTE]);
  await sendDraft(s, ALICE, id);
  expect(await outcome("msg_to", id, KNOWN)).toEqual({ delivered: true, code: 200 });
  expect(await outcome("msg_to", id, UNKNOWN)).toEqual({ delivered: false, code: 100 });
  expect(await outcome("msg_to", id, CLOSED)).toEqual({ delivered: false, code: 102 });
  expect(await outcome("msg_to", id, DOWN)).toEqual({ delivered: false, code: null });
  expect(await outcome("msg_to", id, REMOTE)).toEqual({ delivered: false, code: null }); // fmsgd's job
});

test("add-to on a sent message resolves the new local recipients", async () => {
  const id = await createDraft(s, ALICE, [REMOTE]);
  await sendDraft(s, ALICE, id);
  const res = await s.request("POST", `/fmsg/${id}/add-to`, { json: { add_to: ["@new@example.com"] } });
  expect(res.status).toBe(200);
  expect(await outcome("msg_add_to", id, "@new@example.com")).toEqual({ delivered: true, code: 200 });
});

test("an outcome fmsgd already recorded is never overwritten", async () => {
  const id = await createDraft(s, ALICE, [KNOWN]);
  // Play a concurrent writer: the row gets a code before the API resolves it.
  await s.db.sql`update msg_to set response_code = 5 where msg_id = ${id}`;
  await sendDraft(s, ALICE, id);
  expect(await outcome("msg_to", id, KNOWN)).toEqual({ delivered: false, code: 5 });
});

test("the periodic retry resolves what was pending once the identity service answers", async () => {
  const id = await createDraft(s, ALICE, [DOWN]);
  await sendDraft(s, ALICE, id);
  expect(await outcome("msg_to", id, DOWN)).toEqual({ delivered: false, code: null });
  stub.set(DOWN, "accepting");
  const resolved = await retryLocalDeliveries({ sql: s.server.sql, domain: "example.com", identity: s.server.identity!, log: () => {} });
  expect(resolved).toBeGreaterThanOrEqual(1);
  expect(await outcome("msg_to", id, DOWN)).toEqual({ delivered: true, code: 200 });
});

test("with the identity service failing, a send to many local recipients stops asking after the first failure", async () => {
  const many = Array.from({ length: 20 }, (_, i) => `@down${i}@example.com`);
  for (const a of many) stub.set(a, "error");
  const id = await createDraft(s, ALICE, many);
  await sendDraft(s, ALICE, id);
  const asked = many.reduce((n, a) => n + stub.requests(a), 0);
  expect(asked).toBeGreaterThanOrEqual(1);
  expect(asked).toBeLessThanOrEqual(8); // at most the look-ups already in flight, not one per recipient
  const [pending] = await s.db.sql`select count(*)::int as n from msg_to where msg_id = ${id} and response_code is null`;
  expect(pending!.n).toBe(20);
});
