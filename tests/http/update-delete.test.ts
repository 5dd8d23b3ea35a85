// PUT and DELETE /fmsg/:id: owner-only, draft-only, all-or-nothing (docs/API.md §2, §3; docs/design/file-writes.md).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import { dirname } from "node:path";
import { ALICE, BOB, CAROL, EVE, createDraft, errorOf, sentMessage, snapshot } from "../helpers/messages.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "1", FMSG_API_MAX_MSG_SIZE: "1" } });
});
afterAll(() => s.stop());

describe("PUT /fmsg/:id", () => {
  test("replaces every field, the recipients and the pending add-to list", async () => {
    const id = await createDraft(s, ALICE, [BOB, CAROL], { add_to: ["@x@example.org"], important: true });
    const res = await s.request("PUT", `/fmsg/${id}`, {
      json: draft(ALICE, [CAROL, "@new@example.com"], { topic: "Changed", type: "text/markdown", data: "# new", add_to: [EVE] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id });
    const m = (await (await s.request("GET", `/fmsg/${id}`)).json()) as Record<string, unknown>;
    expect(m.to).toEqual([CAROL, "@new@example.com"]);
    expect(m.add_to).toEqual([EVE]);
    expect(m.topic).toBe("Changed");
    expect(m.important).toBe(false);
    expect(m.size).toBe(5);
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    expect(row!.filepath.endsWith("/data.md")).toBe(true);
    expect(await Bun.file(row!.filepath).text()).toBe("# new");
    // the old data.txt is gone: the folder holds only the current body
    expect(await readdir(dirname(row!.filepath))).toEqual(["data.md"]);
    expect((await s.db.sql`select count(*)::int as n from msg_add_to_batch where msg_id = ${id}`)[0]!.n).toBe(1);
  });

  test("a stranger, and even a recipient, gets 403 only the owner may update a message", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const before = await snapshot(s);
    for (const who of [BOB, EVE]) {
      const res = await s.request("PUT", `/fmsg/${id}`, { as: who, json: draft(who, [ALICE]) });
      expect(await errorOf(res)).toEqual({ status: 403, error: "only the owner may update a message" });
    }
    expect(await snapshot(s)).toBe(before);
  });

  test("a sent message → 403 sent messages are immutable, body file untouched", async () => {
    const id = await sentMessage(s, ALICE, [BOB], { data: "original" });
    const before = await snapshot(s);
    const res = await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { data: "changed" }) });
    expect(await errorOf(res)).toEqual({ status: 403, error: "sent messages are immutable" });
    expect(await snapshot(s)).toBe(before);
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    expect(await Bun.file(row!.filepath).text()).toBe("original");
  });

  test("404, 400 and 413 leave the draft as it was", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "keep me" });
    const before = await snapshot(s);
    expect((await s.request("PUT", "/fmsg/987654", { json: draft(ALICE, [BOB]) })).status).toBe(404);
    expect((await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, []) })).status).toBe(400);
    expect((await s.request("PUT", `/fmsg/x`, { json: draft(ALICE, [BOB]) })).status).toBe(400);
    const big = await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { data: "z".repeat(1024 * 1024 + 1) }) });
    expect(await errorOf(big)).toEqual({ status: 413, error: "message data exceeds maximum size" });
    const other = await s.request("PUT", `/fmsg/${id}`, { json: draft(BOB, [ALICE]) });
    expect(await errorOf(other)).toEqual({ status: 403, error: "from address must match authenticated user" });
    expect(await snapshot(s)).toBe(before);
  });

  test("a bad id is refused before the body is looked at", async () => {
    expect(await errorOf(await s.request("PUT", "/fmsg/abc", { json: {} }))).toEqual({ status: 400, error: "invalid message id" });
    expect(await errorOf(await s.request("PUT", "/fmsg/0", { body: "x" }))).toEqual({ status: 400, error: "invalid message id" });
    expect(await errorOf(await s.request("POST", "/fmsg/-1/add-to", { body: "x" }))).toEqual({ status: 400, error: "invalid message id" });
  });

  test("body plus attachments over FMSG_API_MAX_MSG_SIZE → 413 total message size exceeds limit", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await s.db.sql`
      insert into msg_attachment (msg_id, position, type, filename, filesize, filepath)
      values (${id}, 0, 'application/octet-stream', 'big.bin', ${1024 * 1024 - 10}, ${s.dataDir + "/none"})`;
    const before = await snapshot(s);
    const res = await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { data: "x".repeat(11) }) });
    expect(await errorOf(res)).toEqual({ status: 413, error: "total message size exceeds limit" });
    expect(await snapshot(s)).toBe(before);
    const ok = await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { data: "x".repeat(10) }) });
    expect(ok.status).toBe(200);
  });

  test("racing a send: the update either wins before the send or loses with 403, never half", async () => {
    for (let i = 0; i < 5; i++) {
      const id = await createDraft(s, ALICE, [BOB], { data: "v1" });
      const [put, send] = await Promise.all([
        s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [CAROL], { data: "v2" }) }),
        s.request("POST", `/fmsg/${id}/send`),
      ]);
      expect(send.status).toBe(200);
      const m = (await (await s.request("GET", `/fmsg/${id}`)).json()) as { to: string[] };
      const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
      const body = await Bun.file(row!.filepath).text();
      if (put.status === 200) expect([m.to, body]).toEqual([[CAROL], "v2"]);
      else {
        expect(await errorOf(put)).toEqual({ status: 403, error: "sent messages are immutable" });
        expect([m.to, body]).toEqual([[BOB], "v1"]);
      }
    }
  });
});

describe("DELETE /fmsg/:id", () => {
  test("removes the draft, its recipients, batches, attachments and files", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    const res = await s.request("DELETE", `/fmsg/${id}`);
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    for (const table of ["msg_to", "msg_add_to", "msg_add_to_batch", "msg_attachment"]) {
      const [n] = await s.db.sql`select count(*)::int as n from ${s.db.sql(table)} where msg_id = ${id}`;
      expect(n!.n).toBe(0);
    }
    expect((await s.db.sql`select count(*)::int as n from msg where id = ${id}`)[0]!.n).toBe(0);
    expect(await Bun.file(row!.filepath).exists()).toBe(false);
    expect((await s.request("GET", `/fmsg/${id}`)).status).toBe(404);
  });

  test("non-owner → 403 only the owner may delete a message; sent → 403; unknown → 404", async () => {
    const draftId = await createDraft(s, ALICE, [BOB]);
    const sent = await sentMessage(s, ALICE, [BOB]);
    const before = await snapshot(s);
    expect(await errorOf(await s.request("DELETE", `/fmsg/${draftId}`, { as: BOB }))).toEqual({
      status: 403,
      error: "only the owner may delete a message",
    });
    expect(await errorOf(await s.request("DELETE", `/fmsg/${sent}`))).toEqual({ status: 403, error: "sent messages cannot be deleted" });
    expect(await errorOf(await s.request("DELETE", `/fmsg/${sent}`, { as: EVE }))).toEqual({
      status: 403,
      error: "only the owner may delete a message",
    });
    expect(await errorOf(await s.request("DELETE", "/fmsg/888888"))).toEqual({ status: 404, error: "message not found" });
    expect(await errorOf(await s.request("DELETE", "/fmsg/-5"))).toEqual({ status: 400, error: "invalid message id" });
    expect(await snapshot(s)).toBe(before);
  });

  test("delete racing send: exactly one wins", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const [del, send] = await Promise.all([s.request("DELETE", `/fmsg/${id}`), s.request("POST", `/fmsg/${id}/send`)]);
    const statuses = [del.status, send.status].sort();
    expect([[200, 403], [204, 404]]).toContainEqual(statuses);
  });
});
