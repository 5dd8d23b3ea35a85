// GET /fmsg, GET /fmsg/:id, GET /fmsg/:id/data: shapes, paging, and who may see what (docs/API.md §3, §5, §6).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ALICE, BOB, CAROL, DAVE, EVE, READ_ACCESS, createDraft, errorOf, sendDraft, sentMessage } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

describe("GET /fmsg/:id", () => {
  test("returns the message object of docs/API.md §3 exactly", async () => {
    const id = await createDraft(s, ALICE, [BOB, CAROL], { topic: "Shape", data: "twelve bytes", important: true });
    const before = await (await s.request("GET", `/fmsg/${id}`)).json();
    expect(before).toEqual({
      id,
      version: 1,
      has_pid: false,
      has_add_to: false,
      common_type: false,
      important: true,
      no_reply: false,
      deflate: false,
      pid: null,
      from: ALICE,
      to: [BOB, CAROL],
      add_to: [],
      add_to_from: null,
      time: null,
      topic: "Shape",
      type: "text/plain",
      size: 12,
      attachments: [],
      // The FMSG-003 additions (tests/http/standard-fields.test.ts covers them in depth).
      add_to_batches: [],
      to_delivery: [
        { addr: BOB, time_delivered: null, response_code: null },
        { addr: CAROL, time_delivered: null, response_code: null },
      ],
      short_text: "twelve bytes",
      read: false,
      time_read: null,
    });
    const time = await sendDraft(s, ALICE, id);
    const after = (await (await s.request("GET", `/fmsg/${id}`, { as: BOB })).json()) as Record<string, unknown>;
    expect(after.time).toBe(time);
    expect(typeof time).toBe("number");
    expect(Math.abs(time - Date.now() / 1000)).toBeLessThan(600);
  });

  test("add_to lists every batch in order; add_to_from is the latest adder", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    await sendDraft(s, ALICE, id);
    const res = await s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: [DAVE] } });
    expect(res.status).toBe(200);
    const m = (await (await s.request("GET", `/fmsg/${id}`, { as: CAROL })).json()) as Record<string, unknown>;
    expect(m.has_add_to).toBe(true);
    expect(m.add_to).toEqual([CAROL, DAVE]);
    expect(m.add_to_from).toBe(BOB);
  });

  test("a reply has has_pid and pid", async () => {
    const parent = await sentMessage(s, BOB, [ALICE]);
    const id = await createDraft(s, ALICE, [BOB], { pid: parent, topic: "" });
    const m = (await (await s.request("GET", `/fmsg/${id}`)).json()) as Record<string, unknown>;
    expect(m.has_pid).toBe(true);
    expect(m.pid).toBe(parent);
  });

  for (const bad of ["0", "-1", "1e3", "abc", "1.0", "01", "9223372036854775808", "99999999999999999999", "%20"]) {
    test(`id ${bad} → 400 invalid message id`, async () => {
      expect(await errorOf(await s.request("GET", `/fmsg/${bad}`))).toEqual({ status: 400, error: "invalid message id" });
    });
  }

  test("unknown ids → 404 message not found (also the largest bigint)", async () => {
    for (const id of ["999999", "9223372036854775807"]) {
      expect(await errorOf(await s.request("GET", `/fmsg/${id}`))).toEqual({ status: 404, error: "message not found" });
    }
  });
});

describe("who may see what", () => {
  let draftId: number;
  let sentId: number;
  beforeAll(async () => {
    draftId = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    sentId = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    await sendDraft(s, ALICE, sentId);
  });

  const who = { owner: "@ALICE@example.com", to: BOB, addTo: CAROL, stranger: EVE };
  for (const [role, state, status] of READ_ACCESS) {
    test(`${role} on a ${state} message: ${status} for the message and its body`, async () => {
      const id = state === "draft" ? draftId : sentId;
      for (const path of [`/fmsg/${id}`, `/fmsg/${id}/data`]) {
        const res = await s.request("GET", path, { as: who[role] });
        expect(res.status).toBe(status);
        if (status === 403) expect(await res.json()).toEqual({ error: "access denied" });
      }
      const inbox = (await (await s.request("GET", "/fmsg?limit=100", { as: who[role] })).json()) as { id: number }[];
      const listed = inbox.some((m) => m.id === id);
      expect(listed).toBe(state === "sent" && (role === "to" || role === "addTo"));
    });
  }
});

describe("GET /fmsg (inbox)", () => {
  let inbox: TestServer;
  const reader = "@reader@example.com";
  const ids: number[] = [];
  beforeAll(async () => {
    inbox = await startTestServer();
    for (let i = 0; i < 25; i++) ids.push(await sentMessage(inbox, ALICE, [i % 2 ? reader : BOB, i % 2 ? BOB : reader]));
    await createDraft(inbox, ALICE, [reader]); // a draft never shows
    await sentMessage(inbox, ALICE, [BOB]); // neither does mail to others
  });
  afterAll(() => inbox.stop());

  const page = async (query: string) => {
    const res = await inbox.request("GET", `/fmsg${query}`, { as: reader });
    expect(res.status).toBe(200);
    return ((await res.json()) as { id: number }[]).map((m) => m.id);
  };

  test("newest first, 20 by default, case-insensitive recipient match", async () => {
    const newest = [...ids].reverse();
    expect(await page("")).toEqual(newest.slice(0, 20));
    const upper = await inbox.request("GET", "/fmsg", { as: "@READER@EXAMPLE.COM" });
    expect(((await upper.json()) as { id: number }[]).length).toBe(20);
  });

  test("limit and offset page through; large limits clamp to 100", async () => {
    const newest = [...ids].reverse();
    expect(await page("?limit=5&offset=5")).toEqual(newest.slice(5, 10));
    expect(await page("?limit=1")).toEqual(newest.slice(0, 1));
    expect(await page("?limit=101")).toEqual(newest);
    expect(await page("?limit=100000000000000000000000")).toEqual(newest);
    expect(await page("?offset=24")).toEqual(newest.slice(24));
    expect(await page("?offset=25")).toEqual([]);
    expect(await page("?offset=99999999999999999999999")).toEqual([]);
    expect(await page(`?before_id=${newest[2]}&limit=2`)).toEqual(newest.slice(3, 5));
  });

  test("an empty inbox is []", async () => {
    const res = await inbox.request("GET", "/fmsg", { as: "@nobody@example.com" });
    expect(await res.json()).toEqual([]);
  });

  for (const [query, error] of [
    ["limit=0", "invalid limit"],
    ["limit=-1", "invalid limit"],
    ["limit=abc", "invalid limit"],
    ["limit=1.5", "invalid limit"],
    ["limit=", "invalid limit"],
    ["offset=-1", "invalid offset"],
    ["offset=x", "invalid offset"],
    ["offset=1e3", "invalid offset"],
  ] as const) {
    test(`${query} → 400 ${error}`, async () => {
      expect(await errorOf(await inbox.request("GET", `/fmsg?${query}`, { as: reader }))).toEqual({ status: 400, error });
    });
  }
});

describe("GET /fmsg/:id/data", () => {
  test("streams the body with safe download headers", async () => {
    const id = await sentMessage(s, ALICE, [BOB], { data: "hello body" });
    const res = await s.request("GET", `/fmsg/${id}/data`, { as: BOB });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello body");
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="message-${id}.txt"`);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toBe("sandbox");
  });

  test("active types are served as application/octet-stream", async () => {
    for (const type of ["text/html", "image/svg+xml", "application/xml", "text/javascript"]) {
      const id = await createDraft(s, ALICE, [BOB], { type, data: "<script>alert(1)</script>" });
      const res = await s.request("GET", `/fmsg/${id}/data`);
      expect(res.headers.get("content-type")).toBe("application/octet-stream");
      await res.arrayBuffer();
    }
  });

  test("an empty body is a 200 with zero bytes", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "" });
    const res = await s.request("GET", `/fmsg/${id}/data`);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  test("a body file missing on disk → JSON 404", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    await unlink(row!.filepath);
    expect(await errorOf(await s.request("GET", `/fmsg/${id}/data`))).toEqual({ status: 404, error: "message data not available" });
  });

  test("ETag and If-None-Match give 304; Range gives 206; unsatisfiable gives 416", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "0123456789" });
    const first = await s.request("GET", `/fmsg/${id}/data`);
    const etag = first.headers.get("etag")!;
    await first.arrayBuffer();
    expect(etag).toMatch(/^"[^"]+"$/); // strong
    const cached = await s.request("GET", `/fmsg/${id}/data`, { headers: { "if-none-match": etag } });
    expect(cached.status).toBe(304);
    const part = await s.request("GET", `/fmsg/${id}/data`, { headers: { range: "bytes=2-5" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 2-5/10");
    expect(await part.text()).toBe("2345");
    const suffix = await s.request("GET", `/fmsg/${id}/data`, { headers: { range: "bytes=-3" } });
    expect(await suffix.text()).toBe("789");
    const beyond = await s.request("GET", `/fmsg/${id}/data`, { headers: { range: "bytes=10-" } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe("bytes */10");
    expect(await beyond.json()).toEqual({ error: "range not satisfiable" });
  });

  test("a Range that is not one valid byte range is ignored: the whole body, 200", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "0123456789" });
    // Reversed (past the end, and inside), several ranges, another unit.
    for (const range of ["bytes=20-5", "bytes=5-3", "bytes=0-1,4-5", "items=0-1"]) {
      const res = await s.request("GET", `/fmsg/${id}/data`, { headers: { range } });
      expect({ range, status: res.status, contentRange: res.headers.get("content-range"), body: await res.text() }).toEqual({
        range,
        status: 200,
        contentRange: null,
        body: "0123456789",
      });
    }
  });

  test("If-Range: the range with the current ETag, the whole new body after the draft changed", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "0123456789" });
    const etag = (await s.request("HEAD", `/fmsg/${id}/data`)).headers.get("etag")!;
    const resumed = await s.request("GET", `/fmsg/${id}/data`, { headers: { range: "bytes=4-", "if-range": etag } });
    expect(resumed.status).toBe(206);
    expect(await resumed.text()).toBe("456789");
    const put = await s.request("PUT", `/fmsg/${id}`, { json: { version: 1, from: ALICE, to: [BOB], type: "text/plain", data: "abcdefghijklmnop" } });
    expect(put.status).toBe(200);
    // A resume with the old validator must not splice the new body onto the old one's first bytes.
    const stale = await s.request("GET", `/fmsg/${id}/data`, { headers: { range: "bytes=4-", "if-range": etag } });
    expect(stale.status).toBe(200);
    expect(stale.headers.get("content-range")).toBeNull();
    expect(await stale.text()).toBe("abcdefghijklmnop");
  });
});

describe("messages fmsgd received compressed", () => {
  test("size reports the length of the stored (decompressed) files", async () => {
    const dir = join(s.dataDir, "example.com", "bob", "in", "r1");
    await mkdir(join(dir, "a"), { recursive: true });
    await writeFile(join(dir, "body.txt"), "a decompressed body of 36 bytes ...");
    await writeFile(join(dir, "a", "x.txt"), "twenty bytes of text");
    const [m] = await s.db.sql`
      insert into msg (version, is_deflate, time_sent, from_addr, topic, type, size, filepath)
      values (1, true, extract(epoch from now()), ${CAROL}, 'zipped', 'text/plain', 7, ${join(dir, "body.txt")})
      returning id`;
    const id = Number(m!.id);
    await s.db.sql`insert into msg_to (msg_id, addr, response_code) values (${id}, ${BOB}, -2)`;
    await s.db.sql`
      insert into msg_attachment (msg_id, position, flags, type, filename, filesize, filepath)
      values (${id}, 0, 2, 'text/plain', 'x.txt', 3, ${join(dir, "a", "x.txt")})`;
    const res = await s.request("GET", `/fmsg/${id}`, { as: BOB });
    const body = (await res.json()) as { size: number; deflate: boolean; attachments: unknown[] };
    expect(body.deflate).toBe(true);
    expect(body.size).toBe(35);
    expect(body.attachments).toEqual([{ filename: "x.txt", size: 20 }]);
    const data = await s.request("GET", `/fmsg/${id}/data`, { as: BOB });
    expect(await data.text()).toBe("a decompressed body of 36 bytes ...");
  });
});

describe("the data directory moved under a running server", () => {
  test("a symlink to its new place: every file reads as before, and new ones too", async () => {
    const base = await mkdtemp(join(tmpdir(), "fmsg-moved-"));
    const dataDir = join(base, "data");
    await mkdir(dataDir);
    const t = await startTestServer({ env: { FMSG_DATA_DIR: dataDir } });
    try {
      const before = await createDraft(t, ALICE, [BOB], { data: "written before the move" });
      expect(await (await t.request("GET", `/fmsg/${before}/data`)).text()).toBe("written before the move");
      // What an operator does to give it a bigger disk: the folder moves, a link takes its name.
      await rename(dataDir, join(base, "bigger-disk"));
      await symlink(join(base, "bigger-disk"), dataDir);
      expect(await (await t.request("GET", `/fmsg/${before}/data`)).text()).toBe("written before the move");
      const after = await createDraft(t, ALICE, [BOB], { data: "written after the move" });
      expect(await (await t.request("GET", `/fmsg/${after}/data`)).text()).toBe("written after the move");
    } finally {
      await t.stop();
      await rm(base, { recursive: true, force: true });
    }
  });
});
