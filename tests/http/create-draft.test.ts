// POST /fmsg: the rows and body file a draft leaves, and every refusal leaving nothing behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { stat } from "node:fs/promises";
import { ALICE, BOB, CAROL, createDraft, errorOf, sentMessage, snapshot } from "../helpers/messages.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "1", FMSG_API_MAX_MSG_SIZE: "2" } });
});
afterAll(() => s.stop());

describe("POST /fmsg success", () => {
  test("writes the msg row, recipients in order, and a body file of exactly `size` bytes", async () => {
    const data = "héllo wörld ✓\n";
    const to = ["@Bob@Example.com", CAROL, "@zed@example.com", "@amy@example.com"];
    const res = await s.request("POST", "/fmsg", { json: draft(ALICE, to, { data, size: 999_999, important: true }) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: number };
    expect(id).toBeGreaterThan(0);

    const [row] = await s.db.sql`select * from msg where id = ${id}`;
    expect(row!.version).toBe(1);
    expect(row!.time_sent).toBeNull();
    expect(row!.from_addr).toBe(ALICE);
    expect(row!.is_important).toBe(true);
    expect(row!.no_reply).toBe(false);
    expect(row!.is_deflate).toBe(false);
    expect(row!.sha256).toBeNull();
    expect(row!.psha256).toBeNull();
    expect(row!.size).toBe(Buffer.byteLength(data)); // computed, the client's 999999 ignored
    expect(row!.filepath.startsWith(`${s.dataDir}/example.com/alice/out/${id}/`)).toBe(true);
    expect(row!.filepath.endsWith("/data.txt")).toBe(true);
    expect(await Bun.file(row!.filepath).text()).toBe(data);
    expect((await stat(row!.filepath)).mode & 0o777).toBe(0o640);

    const rcpts = await s.db.sql`select addr from msg_to where msg_id = ${id} order by id`;
    expect(rcpts.map((r) => r.addr)).toEqual(to); // spelling kept, order kept
  });

  test("an empty body still gets an (empty) file; null optional fields count as absent", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: null, topic: null, pid: null, important: null, add_to: null });
    const [row] = await s.db.sql`select size, filepath, topic from msg where id = ${id}`;
    expect(row!.size).toBe(0);
    expect(row!.topic).toBe("");
    expect(await Bun.file(row!.filepath).exists()).toBe(true);
    expect(await Bun.file(row!.filepath).size).toBe(0);
  });

  test("the body file extension follows the media type", async () => {
    const id = await createDraft(s, ALICE, [BOB], { type: "text/markdown; charset=utf-8", data: "# hi" });
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    expect(row!.filepath.endsWith("/data.md")).toBe(true);
  });

  test("add_to is stored as the draft's pending batch", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL, "@dan@example.net"] });
    const batches = await s.db.sql`select id, add_to_from from msg_add_to_batch where msg_id = ${id}`;
    expect(batches.length).toBe(1);
    expect(batches[0]!.add_to_from).toBe(ALICE);
    const rcpts = await s.db.sql`select addr from msg_add_to where msg_id = ${id} order by id`;
    expect(rcpts.map((r) => r.addr)).toEqual([CAROL, "@dan@example.net"]);
    const notify = await s.db.sql`select * from msg_add_to_notify where batch_id = ${batches[0]!.id}`;
    expect(notify.length).toBe(0); // notify rows come at send
  });

  test("a reply to a sent message the author takes part in; psha256 left for the trigger", async () => {
    const parent = await sentMessage(s, BOB, [ALICE]);
    const id = await createDraft(s, ALICE, [BOB], { pid: parent, topic: "" });
    const [row] = await s.db.sql`select pid, psha256 from msg where id = ${id}`;
    expect(Number(row!.pid)).toBe(parent);
    expect(row!.psha256).toBeNull(); // the parent has no sha256 yet
  });

  test("charset parameter on the content type is accepted", async () => {
    const res = await s.request("POST", "/fmsg", {
      json: draft(ALICE, [BOB]),
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(res.status).toBe(201);
  });
});

describe("POST /fmsg refusals change nothing", () => {
  const cases: [string, Record<string, unknown>, number, string | RegExp][] = [
    ["version missing", { version: undefined }, 400, "version must be 1"],
    ["version 2", { version: 2 }, 400, "version must be 1"],
    ["version as string", { version: "1" }, 400, "version must be 1"],
    ["from missing", { from: undefined }, 400, /from/],
    ["from invalid", { from: "alice@example.com" }, 400, /from/],
    ["to missing", { to: undefined }, 400, "to list must not be empty"],
    ["to empty", { to: [] }, 400, "to list must not be empty"],
    ["to not a list", { to: BOB }, 400, /to must be a list/],
    ["to with a number", { to: [42] }, 400, /invalid address in to/],
    ["to hostile address", { to: ["@bob@exa mple.com"] }, 400, /invalid address in to/],
    ["to with a NUL", { to: ["@bob\u0000@example.com"] }, 400, /invalid address in to/],
    ["to duplicates (case-insensitive)", { to: [BOB, "@BOB@example.COM"] }, 400, "duplicate recipient: @BOB@example.COM"],
    ["to over 255", { to: Array.from({ length: 256 }, (_, i) => `@u${i}@example.com`) }, 400, /at most 255/],
    ["add_to overlapping to", { add_to: ["@bob@EXAMPLE.com"] }, 400, /duplicate recipient/],
    ["add_to not a list", { add_to: "x" }, 400, /add_to must be a list/],
    ["type missing", { type: undefined }, 400, /type/],
    ["type invalid", { type: "text plain" }, 400, /type/],
    ["type non-ascii", { type: "text/plaïn" }, 400, /type/],
    ["topic too long", { topic: "é".repeat(128) }, 400, /topic/],
    ["topic not a string", { topic: 5 }, 400, /topic/],
    ["topic with pid", { pid: 1, topic: "Re: x" }, 400, "topic must be empty when pid is given"],
    ["pid zero", { pid: 0, topic: "" }, 400, /pid/],
    ["pid negative", { pid: -1, topic: "" }, 400, /pid/],
    ["pid fraction", { pid: 1.5, topic: "" }, 400, /pid/],
    ["pid 2^63", { pid: 9223372036854775808, topic: "" }, 400, /pid/],
    ["pid string", { pid: "1", topic: "" }, 400, /pid/],
    ["pid unknown", { pid: 999999, topic: "" }, 400, "PID 999999 not found"],
    ["important not a boolean", { important: "yes" }, 400, /important/],
    ["no_reply not a boolean", { no_reply: 1 }, 400, /no_reply/],
    ["data not a string", { data: 5 }, 400, /data/],
    ["data with a lone surrogate", { data: "ok \ud800 no" }, 400, /data/],
    ["topic with a lone surrogate", { topic: "\udc00" }, 400, /topic/],
    ["topic with a NUL", { topic: "a\u0000b" }, 400, "topic must not contain the NUL character"],
    ["data with a NUL is fine, but not the topic", { data: "a\u0000b", topic: "\u0000" }, 400, "topic must not contain the NUL character"],
    ["from another user", { from: BOB }, 403, "from address must match authenticated user"],
    ["data over the limit", { data: "x".repeat(1024 * 1024 + 1) }, 413, "message data exceeds maximum size"],
  ];
  for (const [name, change, status, text] of cases) {
    test(name, async () => {
      const before = await snapshot(s);
      const body = { ...draft(ALICE, [BOB]), ...change };
      for (const [k, v] of Object.entries(change)) if (v === undefined) delete body[k];
      const res = await s.request("POST", "/fmsg", { json: body });
      const err = await errorOf(res);
      expect(err.status).toBe(status);
      if (typeof text === "string") expect(err.error).toBe(text);
      else expect(err.error).toMatch(text);
      expect(await snapshot(s)).toBe(before);
    });
  }

  test("a draft or a message the author does not take part in is not a valid pid", async () => {
    const draftId = await createDraft(s, BOB, [ALICE]);
    const foreign = await sentMessage(s, BOB, [CAROL]);
    for (const pid of [draftId, foreign]) {
      const res = await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { pid, topic: "" }) });
      expect(await errorOf(res)).toEqual({ status: 400, error: `PID ${pid} not found` });
    }
  });

  test("data just under the limit is accepted and stored byte-exact", async () => {
    const data = "y".repeat(1024 * 1024);
    const id = await createDraft(s, ALICE, [BOB], { data });
    const [row] = await s.db.sql`select size, filepath from msg where id = ${id}`;
    expect(row!.size).toBe(1024 * 1024);
    expect((await Bun.file(row!.filepath).text()) === data).toBe(true);
  });
});

describe("type's charset and the UTF-8 body", () => {
  const TEXT = "type's charset must be utf-8: data is stored as UTF-8";

  test.each([
    ["text/plain; charset=iso-8859-1", "café"],
    ["text/plain; charset=utf-16", "hi"],
    ['text/plain; charset="windows-1252"', "naïve"],
    ["text/plain; charset=us-ascii", "café"],
  ])("%s with %p → 400, nothing written; the same on PUT", async (type, data) => {
    const before = await snapshot(s);
    expect(await errorOf(await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { type, data }) }))).toEqual({ status: 400, error: TEXT });
    expect(await snapshot(s)).toBe(before);
    const id = await createDraft(s, ALICE, [BOB]);
    expect(await errorOf(await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { type, data }) }))).toEqual({ status: 400, error: TEXT });
  });

  test.each([
    ["text/plain; charset=UTF-8", "café"],
    ["text/plain; charset=utf8", "café"],
    ["text/plain; charset=us-ascii", "plain"],
    ["text/plain; charset=iso-8859-1", "plain ascii reads the same"],
    ["text/plain; charset=x-no-such-charset", "café"],
    ["text/markdown", "café"],
  ])("%s with %p → 201, served back as sent", async (type, data) => {
    const res = await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { type, data }) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: number };
    expect(await (await s.request("GET", `/fmsg/${id}/data`)).text()).toBe(data);
  });
});

describe("FMSG_DOMAIN", () => {
  let local: TestServer;
  beforeAll(async () => {
    local = await startTestServer({ env: { FMSG_DOMAIN: "example.com" } });
  });
  afterAll(() => local.stop());

  test("from must be on the host's domain", async () => {
    const res = await local.request("POST", "/fmsg", { as: CAROL, json: draft(CAROL, [BOB]) });
    expect(res.status).toBe(403);
    expect((await local.db.sql`select count(*)::int as n from msg`)[0]!.n).toBe(0);
    const ok = await local.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, [BOB]) });
    expect(ok.status).toBe(201);
  });
});
