// POST /fmsg/:id/send and /add-to: atomic decisions, batches, notify rows (the rows fmsgd reads, as sql/001_fmsgd.sql defines them).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { until } from "../helpers/poll.ts";
import { ALICE, BOB, CAROL, DAVE, EVE, createDraft, errorOf, sendDraft, sentMessage, snapshot } from "../helpers/messages.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

const notifyDomains = async (batchId: number) =>
  (await s.db.sql`select domain from msg_add_to_notify where batch_id = ${batchId} order by domain`).map((r) => r.domain);

describe("POST /fmsg/:id/send", () => {
  test("sets time_sent to now and answers {id, time}", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const res = await s.request("POST", `/fmsg/${id}/send`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { id: number; time: number };
    expect(body.id).toBe(id);
    const [row] = await s.db.sql`select time_sent from msg where id = ${id}`;
    expect(row!.time_sent).toBe(body.time);
    expect(Math.abs(body.time - Date.now() / 1000)).toBeLessThan(600);
  });

  test("the pending add-to batch gets the send time and its notify rows", async () => {
    const id = await createDraft(s, ALICE, [BOB, "@x@third.net", "@y@CAROL-host.org"], { add_to: [CAROL, "@z@third.net"] });
    const time = await sendDraft(s, ALICE, id);
    const [batch] = await s.db.sql`select id, time_added, add_to_from from msg_add_to_batch where msg_id = ${id}`;
    expect(batch!.time_added).toBe(time);
    expect(batch!.add_to_from).toBe(ALICE);
    // participant domains: example.com (sender, bob), third.net (hosts @z: excluded), carol-host.org
    expect(await notifyDomains(Number(batch!.id))).toEqual(["carol-host.org", "example.com"]);
  });

  // The embedded database has no second connection to LISTEN on, nor an fmsgd beside it.
  test.skipIf(EMBEDDED)("fmsgd is woken for each notify row of the sent draft's batch (its trigger sees the message sent)", async () => {
    // fmsgd's trigger on msg_add_to_notify raises new_msg_to only for a sent message: the send's
    // notify rows must be written where the trigger already sees time_sent.
    const listener = postgres(s.db.url, { max: 1, onnotice: () => {} });
    const heard: string[] = [];
    try {
      await listener.listen("new_msg_to", (payload) => heard.push(payload));
      const id = await createDraft(s, ALICE, [BOB, "@y@carol-host.org"], { add_to: ["@z@third.net"] });
      await sendDraft(s, ALICE, id);
      const domains = [`${id},carol-host.org`, `${id},example.com`];
      await until(() => domains.every((d) => heard.includes(d)), "new_msg_to for every notify row");
      expect(heard.filter((p) => !p.includes("@")).sort()).toEqual(domains);
    } finally {
      await listener.end({ timeout: 5 });
    }
  });

  test("two concurrent sends: exactly one 200, the other 409", async () => {
    for (let i = 0; i < 5; i++) {
      const id = await createDraft(s, ALICE, [BOB]);
      const results = await Promise.all([1, 2, 3].map(() => s.request("POST", `/fmsg/${id}/send`)));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 409, 409]);
      const conflict = results.find((r) => r.status === 409)!;
      expect(await conflict.json()).toEqual({ error: "message already sent" });
    }
  });

  test("only the owner may send; unknown → 404; sent → 409; nothing changes", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const sent = await sentMessage(s, ALICE, [BOB]);
    const before = await snapshot(s);
    for (const who of [BOB, EVE]) {
      expect(await errorOf(await s.request("POST", `/fmsg/${id}/send`, { as: who }))).toEqual({
        status: 403,
        error: "only the owner may send a message",
      });
    }
    expect(await errorOf(await s.request("POST", "/fmsg/777777/send"))).toEqual({ status: 404, error: "message not found" });
    expect(await errorOf(await s.request("POST", `/fmsg/${sent}/send`))).toEqual({ status: 409, error: "message already sent" });
    expect(await errorOf(await s.request("POST", "/fmsg/0/send"))).toEqual({ status: 400, error: "invalid message id" });
    expect(await snapshot(s)).toBe(before);
  });
});

describe("POST /fmsg/:id/add-to", () => {
  test("on a sent message: a new batch by the adder, its recipients and notify rows", async () => {
    const id = await sentMessage(s, ALICE, [BOB, "@q@far.example"]);
    const res = await s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: [CAROL, DAVE] } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id, added: 2 });
    const [batch] = await s.db.sql`select id, add_to_from, time_added from msg_add_to_batch where msg_id = ${id}`;
    expect(batch!.add_to_from).toBe(BOB);
    expect(typeof batch!.time_added).toBe("number");
    const rows = await s.db.sql`select addr, batch_id from msg_add_to where msg_id = ${id} order by id`;
    expect(rows.map((r) => r.addr)).toEqual([CAROL, DAVE]);
    expect(rows.every((r) => r.batch_id === batch!.id)).toBe(true);
    expect(await notifyDomains(Number(batch!.id))).toEqual(["example.com", "far.example"]);
  });

  test("a new recipient can then read the message", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    expect((await s.request("GET", `/fmsg/${id}`, { as: EVE })).status).toBe(403);
    await s.request("POST", `/fmsg/${id}/add-to`, { json: { add_to: [EVE] } });
    expect((await s.request("GET", `/fmsg/${id}`, { as: EVE })).status).toBe(200);
  });

  test("on a draft: joins the pending batch, no notify rows until send", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    const res = await s.request("POST", `/fmsg/${id}/add-to`, { json: { add_to: [DAVE] } });
    expect(await res.json()).toEqual({ id, added: 1 });
    const batches = await s.db.sql`select id from msg_add_to_batch where msg_id = ${id}`;
    expect(batches.length).toBe(1);
    const rows = await s.db.sql`select addr from msg_add_to where msg_id = ${id} order by id`;
    expect(rows.map((r) => r.addr)).toEqual([CAROL, DAVE]);
    expect(await notifyDomains(Number(batches[0]!.id))).toEqual([]);
  });

  test("who may add: owner or `to` recipient; not an add-to recipient, not a stranger, not on others' drafts", async () => {
    const sent = await sentMessage(s, ALICE, [BOB], { add_to: [CAROL] });
    const draftId = await createDraft(s, ALICE, [BOB]);
    const before = await snapshot(s);
    const denied = { status: 403, error: "only existing participants may add recipients" };
    expect(await errorOf(await s.request("POST", `/fmsg/${sent}/add-to`, { as: CAROL, json: { add_to: [EVE] } }))).toEqual(denied);
    expect(await errorOf(await s.request("POST", `/fmsg/${sent}/add-to`, { as: EVE, json: { add_to: [DAVE] } }))).toEqual(denied);
    expect(await errorOf(await s.request("POST", `/fmsg/${draftId}/add-to`, { as: BOB, json: { add_to: [DAVE] } }))).toEqual(denied);
    expect(await snapshot(s)).toBe(before);
  });

  test("bad lists → 400, nothing written", async () => {
    const id = await sentMessage(s, ALICE, [BOB], { add_to: [CAROL] });
    const before = await snapshot(s);
    const cases: [unknown, string | RegExp][] = [
      [{ add_to: [] }, "add_to list must not be empty"],
      [{}, "add_to list must not be empty"],
      [{ add_to: "x" }, /add_to must be a list/],
      [{ add_to: [DAVE, "@DAVE@third.net"] }, "duplicate recipient: @DAVE@third.net"],
      [{ add_to: ["@bob@EXAMPLE.com"] }, "duplicate recipient: @bob@example.com"],
      [{ add_to: ["@Carol@other.org"] }, "duplicate recipient: @carol@other.org"],
      [{ add_to: ["not-an-address"] }, /invalid address in add_to/],
      [{ add_to: Array.from({ length: 256 }, (_, i) => `@n${i}@x.org`) }, /at most 255/],
      [[DAVE], "request body must be a JSON object"],
    ];
    for (const [json, text] of cases) {
      const err = await errorOf(await s.request("POST", `/fmsg/${id}/add-to`, { json }));
      expect(err.status).toBe(400);
      if (typeof text === "string") expect(err.error).toBe(text);
      else expect(err.error).toMatch(text);
    }
    expect(await errorOf(await s.request("POST", "/fmsg/555555/add-to", { json: { add_to: [DAVE] } }))).toEqual({
      status: 404,
      error: "message not found",
    });
    expect(await snapshot(s)).toBe(before);
  });

  test("concurrent add-tos of one address: one succeeds, the other is a duplicate", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    const [a, b] = await Promise.all([
      s.request("POST", `/fmsg/${id}/add-to`, { json: { add_to: [DAVE] } }),
      s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: ["@dave@THIRD.net"] } }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 400]);
    expect((await s.db.sql`select count(*)::int as n from msg_add_to where msg_id = ${id}`)[0]!.n).toBe(1);
  });
});
