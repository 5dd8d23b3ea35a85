// POST /fmsg/:id/read: recipients only, the identity's own rows only, once (docs/API.md §10.2).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, CAROL, DAVE, EVE, createDraft, errorOf, sentMessage } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

const ONLY_RECIPIENTS = "only recipients of a sent message may mark it read";

async function markRead(id: number, as: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await s.request("POST", `/fmsg/${id}/read`, { as });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** time_read of every recipient row of a message, by table and address as stored. */
async function readTimes(id: number): Promise<Record<string, number | null>> {
  const rows = await s.db.sql<{ key: string; time_read: number | null }[]>`
    select 'to ' || addr as key, time_read from msg_to where msg_id = ${id}
    union all
    select 'add_to ' || addr, time_read from msg_add_to where msg_id = ${id}`;
  return Object.fromEntries(rows.map((r) => [r.key, r.time_read]));
}

describe("who may mark a message read", () => {
  const who = { owner: ALICE, to: BOB, addTo: CAROL, stranger: EVE };
  const cases: [keyof typeof who, "draft" | "sent", number][] = [
    ["owner", "draft", 403],
    ["to", "draft", 403],
    ["addTo", "draft", 403],
    ["stranger", "draft", 403],
    ["owner", "sent", 403],
    ["to", "sent", 200],
    ["addTo", "sent", 200],
    ["stranger", "sent", 403],
  ];
  test.each(cases)("%s on a %s message → %d (a refusal writes nothing)", async (role, state, status) => {
    const id = state === "sent" ? await sentMessage(s, ALICE, [BOB], { add_to: [CAROL] }) : await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    const before = await readTimes(id);
    const res = await markRead(id, who[role]);
    expect(res.status).toBe(status);
    if (status === 403) {
      expect(res.body).toEqual({ error: ONLY_RECIPIENTS });
      expect(await readTimes(id)).toEqual(before);
    } else {
      expect(res.body).toEqual({ id, time_read: expect.any(Number) });
    }
  });

  test("an owner who also received the message may mark it", async () => {
    const id = await sentMessage(s, ALICE, [BOB, ALICE]);
    expect((await markRead(id, ALICE)).status).toBe(200);
  });

  test("no such message → 404; a bad id → 400", async () => {
    expect(await errorOf(await s.request("POST", "/fmsg/999999/read", { as: BOB }))).toEqual({ status: 404, error: "message not found" });
    expect(await errorOf(await s.request("POST", "/fmsg/abc/read", { as: BOB }))).toEqual({ status: 400, error: "invalid message id" });
  });
});

describe("what is written", () => {
  test("only the identity's own row gets the time, taken from PostgreSQL's clock after the send", async () => {
    const id = await sentMessage(s, ALICE, [BOB, DAVE], { add_to: [CAROL] });
    const res = await markRead(id, BOB);
    expect(res.status).toBe(200);
    const time = res.body.time_read as number;
    const [clock] = await s.db.sql<{ sent: number; now: number }[]>`
      select time_sent as sent, extract(epoch from clock_timestamp())::float8 as now from msg where id = ${id}`;
    expect(time).toBeGreaterThanOrEqual(clock!.sent);
    expect(time).toBeLessThanOrEqual(clock!.now);
    expect(await readTimes(id)).toEqual({ [`to ${BOB}`]: time, [`to ${DAVE}`]: null, [`add_to ${CAROL}`]: null });
  });

  test("an add-to recipient's mark lands on its msg_add_to row", async () => {
    const id = await sentMessage(s, ALICE, [BOB], { add_to: [CAROL] });
    const time = (await markRead(id, CAROL)).body.time_read as number;
    expect(await readTimes(id)).toEqual({ [`to ${BOB}`]: null, [`add_to ${CAROL}`]: time });
  });

  test("once: a repeat returns the first time and rewrites nothing; the message object shows it", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    const first = await markRead(id, BOB);
    const [row] = await s.db.sql<{ xmin: string }[]>`select xmin::text from msg_to where msg_id = ${id}`;
    const again = await markRead(id, BOB);
    expect(again).toEqual(first);
    const [after] = await s.db.sql<{ xmin: string }[]>`select xmin::text from msg_to where msg_id = ${id}`;
    expect(after!.xmin).toBe(row!.xmin); // the row version is the same: no second write
    const m = (await (await s.request("GET", `/fmsg/${id}`, { as: BOB })).json()) as Record<string, unknown>;
    expect(m).toMatchObject({ read: true, time_read: first.body.time_read });
  });

  test("concurrent first marks all answer the one time that was stored", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    const answers = await Promise.all(Array.from({ length: 5 }, () => markRead(id, BOB)));
    const stored = (await readTimes(id))[`to ${BOB}`];
    for (const a of answers) expect(a).toEqual({ status: 200, body: { id, time_read: stored } });
  });

  test("addresses match case-insensitively, both ways", async () => {
    const id = await sentMessage(s, ALICE, ["@Bob@Example.com", DAVE]);
    const res = await markRead(id, "@BOB@EXAMPLE.COM");
    expect(res.status).toBe(200);
    expect(await readTimes(id)).toEqual({ "to @Bob@Example.com": res.body.time_read as number, [`to ${DAVE}`]: null });
  });

  test("an identity in both `to` and an add-to batch (as fmsgd may store it) gets one time on both rows", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    const [batch] = await s.db.sql<{ id: number }[]>`
      insert into msg_add_to_batch (msg_id, add_to_from, time_added) values (${id}, ${ALICE}, extract(epoch from now())) returning id`;
    await s.db.sql`insert into msg_add_to (msg_id, batch_id, addr) values (${id}, ${batch!.id}, '@BOB@example.com')`;
    const time = (await markRead(id, BOB)).body.time_read as number;
    expect(await readTimes(id)).toEqual({ [`to ${BOB}`]: time, "add_to @BOB@example.com": time });
  });

  test("a row already marked (by another client of the same database) keeps its time, and the other row takes it", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    const [batch] = await s.db.sql<{ id: number }[]>`
      insert into msg_add_to_batch (msg_id, add_to_from, time_added) values (${id}, ${ALICE}, extract(epoch from now())) returning id`;
    await s.db.sql`insert into msg_add_to (msg_id, batch_id, addr, time_read) values (${id}, ${batch!.id}, ${BOB}, 1700000000.5)`;
    expect((await markRead(id, BOB)).body.time_read).toBe(1700000000.5);
    expect(await readTimes(id)).toEqual({ [`to ${BOB}`]: 1700000000.5, [`add_to ${BOB}`]: 1700000000.5 });
  });
});

describe("read state and `to` order in lists agree with the message itself", () => {
  /** The list item of message `id` in `as`'s inbox (first page), and the same message read alone. */
  async function listedAndAlone(id: number, as: string): Promise<[Record<string, unknown>, Record<string, unknown>]> {
    const list = (await (await s.request("GET", "/fmsg?limit=100", { as })).json()) as Record<string, unknown>[];
    const item = list.find((m) => m.id === id);
    const alone = (await (await s.request("GET", `/fmsg/${id}`, { as })).json()) as Record<string, unknown>;
    return [item!, alone];
  }

  // Rows written as fmsgd may store them: the identity in `to` and in an add-to batch, times differing.
  test.each([
    ["`to` row unread, add-to row read: the add-to row's time", null, 1700000100.25, 1700000100.25],
    ["both read: the `to` row's time", 1700000000.5, 1700000100.25, 1700000000.5],
    ["`to` row read, add-to row unread: the `to` row's time", 1700000000.5, null, 1700000000.5],
  ])("%s", async (_title, toRead, addToRead, shown) => {
    const id = await sentMessage(s, ALICE, ["@zed@example.com", BOB, "@amy@example.com"]);
    await s.db.sql`update msg_to set time_read = ${toRead} where msg_id = ${id} and addr = ${BOB}`;
    const [batch] = await s.db.sql<{ id: number }[]>`
      insert into msg_add_to_batch (msg_id, add_to_from, time_added) values (${id}, ${ALICE}, extract(epoch from now())) returning id`;
    await s.db.sql`insert into msg_add_to (msg_id, batch_id, addr, time_read) values (${id}, ${batch!.id}, '@BOB@example.com', ${addToRead})`;
    const [item, alone] = await listedAndAlone(id, BOB);
    expect(item.time_read).toBe(shown);
    expect(item.read).toBe(true);
    expect(alone.time_read).toBe(shown);
    // `to` in the order the message was written, not sorted by address.
    expect(item.to).toEqual(["@zed@example.com", BOB, "@amy@example.com"]);
    expect(item.to).toEqual(alone.to);
  });
});
