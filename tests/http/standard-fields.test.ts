// The FMSG-003 fields of every message object — to_delivery, add_to_batches, short_text, read, time_read —
// read from rows as fmsgd and local delivery write them, for each kind of reader and in both profiles.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ALICE, BOB, CAROL, DAVE, EVE, READ_ACCESS, createDraft, sendDraft, sentMessage } from "../helpers/messages.ts";
import { startIdentityStub, type IdentityStub } from "../helpers/identity-stub.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Json = Record<string, unknown>;
type Recipients = "msg_to" | "msg_add_to";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

/** POSIX seconds with a fraction, and the RFC 3339 UTC text clients must see for them. */
const T1 = 1767225600.5;
const T1_TEXT = "2026-01-01T00:00:00.500Z";
const T2 = 1767312000.25;
const T2_TEXT = "2026-01-02T00:00:00.250Z";

const pending = (addr: string) => ({ addr, time_delivered: null, response_code: null });

async function getMessage(server: TestServer, id: number, as: string, profile?: string): Promise<Json> {
  const res = await server.request("GET", `/fmsg/${id}`, { as, headers: profile ? { "fmsg-profile": profile } : {} });
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

async function list(server: TestServer, path: string, as: string, profile?: string): Promise<Json[]> {
  const res = await server.request("GET", path, { as, headers: profile ? { "fmsg-profile": profile } : {} });
  expect(res.status).toBe(200);
  return (await res.json()) as Json[];
}

/** What fmsgd records on a recipient row after an attempt (columns left out stay as they are). */
async function record(
  server: TestServer,
  table: Recipients,
  id: number,
  addr: string,
  row: { time_delivered?: number | null; response_code?: number | null; time_read?: number | null },
): Promise<void> {
  const sql = server.db.sql;
  const attempted = row.time_delivered !== undefined || row.response_code !== undefined;
  const updated = await sql`
    update ${sql(table)} set
      time_delivered = ${row.time_delivered === undefined ? sql`time_delivered` : row.time_delivered},
      response_code = ${row.response_code === undefined ? sql`response_code` : row.response_code},
      time_read = ${row.time_read === undefined ? sql`time_read` : row.time_read},
      time_last_attempt = ${attempted ? T1 : sql`time_last_attempt`},
      attempt_count = attempt_count + ${attempted ? 1 : 0}
    where msg_id = ${id} and addr = ${addr}`;
  expect(updated.count).toBe(1);
}

async function batchesOf(server: TestServer, id: number): Promise<{ id: number; time_added: number }[]> {
  const rows = await server.db.sql`select id, time_added from msg_add_to_batch where msg_id = ${id} order by id`;
  return rows.map((r) => ({ id: Number(r.id), time_added: Number(r.time_added) }));
}

describe("to_delivery: one entry per to address, as fmsgd recorded it", () => {
  // Not in alphabetical order: the list follows the message's to order.
  const outcomes: [string, Parameters<typeof record>[4] | null, unknown][] = [
    ["@zoe@one.example", { time_delivered: T1, response_code: 200 }, { time_delivered: T1_TEXT, response_code: null }],
    ["@amy@two.example", { time_delivered: T2, response_code: 11 }, { time_delivered: T2_TEXT, response_code: null }],
    ["@max@three.example", null, { time_delivered: null, response_code: null }],
    ["@kim@four.example", { response_code: 102 }, { time_delivered: null, response_code: 102 }],
    ["@bo@five.example", { response_code: 100 }, { time_delivered: null, response_code: 100 }],
    ["@lu@six.example", { response_code: 3 }, { time_delivered: null, response_code: 3 }],
    ["@ann@seven.example", { response_code: -1 }, { time_delivered: null, response_code: null }],
    ["@ed@eight.example", { response_code: -2 }, { time_delivered: null, response_code: null }],
  ];

  test("delivered (200, 11) → RFC 3339 time and no code; pending → nulls; failed → its code; sentinels -1/-2 → no code", async () => {
    const to = outcomes.map(([addr]) => addr);
    const id = await sentMessage(s, ALICE, to);
    for (const [addr, row] of outcomes) if (row) await record(s, "msg_to", id, addr, row);
    const m = await getMessage(s, id, ALICE);
    expect(m.to).toEqual(to);
    expect(m.to_delivery).toEqual(outcomes.map(([addr, , shown]) => ({ addr, ...(shown as object) })));
  });

  test("a new message: every recipient pending, addresses as spelled", async () => {
    const id = await sentMessage(s, ALICE, ["@Bob@Example.com", CAROL]);
    expect((await getMessage(s, id, BOB)).to_delivery).toEqual([pending("@Bob@Example.com"), pending(CAROL)]);
  });

  test("a draft's recipients are pending", async () => {
    const id = await createDraft(s, ALICE, [BOB, CAROL]);
    expect((await getMessage(s, id, ALICE)).to_delivery).toEqual([pending(BOB), pending(CAROL)]);
  });
});

describe("add_to_batches", () => {
  test("every batch in order, with its adder, recipients, their delivery and its time", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    const time = await sendDraft(s, ALICE, id);
    expect((await s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: [DAVE, "@fay@far.example"] } })).status).toBe(200);
    expect((await s.request("POST", `/fmsg/${id}/add-to`, { as: ALICE, json: { add_to: ["@gus@near.example"] } })).status).toBe(200);
    await record(s, "msg_add_to", id, CAROL, { time_delivered: T1, response_code: 200 });
    await record(s, "msg_add_to", id, DAVE, { response_code: 101 });
    await record(s, "msg_add_to", id, "@fay@far.example", { response_code: -1 });
    const [first, second, third] = await batchesOf(s, id);
    expect(first!.time_added).toBe(time); // the draft's pending batch takes the send time

    const m = await getMessage(s, id, CAROL);
    expect(m.add_to_batches).toEqual([
      { batch_id: first!.id, add_to_from: ALICE, to: [CAROL], to_delivery: [{ addr: CAROL, time_delivered: T1_TEXT, response_code: null }], time },
      {
        batch_id: second!.id,
        add_to_from: BOB,
        to: [DAVE, "@fay@far.example"],
        to_delivery: [
          { addr: DAVE, time_delivered: null, response_code: 101 },
          { addr: "@fay@far.example", time_delivered: null, response_code: null },
        ],
        time: second!.time_added,
      },
      { batch_id: third!.id, add_to_from: ALICE, to: ["@gus@near.example"], to_delivery: [pending("@gus@near.example")], time: third!.time_added },
    ]);
    // The seed keys are the same batches flattened.
    expect(m.add_to).toEqual([CAROL, DAVE, "@fay@far.example", "@gus@near.example"]);
    expect(m.add_to_from).toBe(ALICE);
    expect(m.has_add_to).toBe(true);
  });

  test("a list shows the same batches and recipients in the order written, however the rows lie on disk", async () => {
    const id = await sentMessage(s, ALICE, ["@zed@example.com", BOB, "@amy@example.com"]);
    expect((await s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: ["@yan@far.example", "@abe@far.example"] } })).status).toBe(200);
    expect((await s.request("POST", `/fmsg/${id}/add-to`, { as: ALICE, json: { add_to: ["@mo@near.example"] } })).status).toBe(200);
    // Rewrite each table in address order, so index walks meet the rows sorted by address, not as written.
    await s.db.sql`create index test_batch_by_adder on msg_add_to_batch (msg_id, add_to_from)`;
    await s.db.sql`cluster msg_add_to_batch using test_batch_by_adder`;
    await s.db.sql`drop index test_batch_by_adder`;
    await s.db.sql`cluster msg_add_to using msg_add_to_msg_id_addr_key`;
    await s.db.sql`cluster msg_to using msg_to_msg_id_addr_key`;

    const alone = await getMessage(s, id, BOB);
    const list = (await (await s.request("GET", "/fmsg?limit=100", { as: BOB })).json()) as Json[];
    const item = list.find((m) => m.id === id)!;
    const shown = (m: Json) => ({
      to: m.to,
      batches: (m.add_to_batches as Json[]).map((b) => [b.add_to_from, b.to]),
    });
    const written = {
      to: ["@zed@example.com", BOB, "@amy@example.com"],
      batches: [
        [BOB, ["@yan@far.example", "@abe@far.example"]],
        [ALICE, ["@mo@near.example"]],
      ],
    };
    expect(shown(alone)).toEqual(written);
    expect(shown(item)).toEqual(written);
    expect(item.add_to_batches).toEqual(alone.add_to_batches);
  });

  test("a draft's pending batch has time null; a draft without one has []", async () => {
    const withBatch = await createDraft(s, ALICE, [BOB], { add_to: [CAROL, DAVE] });
    const [batch] = await batchesOf(s, withBatch);
    expect((await getMessage(s, withBatch, ALICE)).add_to_batches).toEqual([
      { batch_id: batch!.id, add_to_from: ALICE, to: [CAROL, DAVE], to_delivery: [pending(CAROL), pending(DAVE)], time: null },
    ]);
    const without = await createDraft(s, ALICE, [BOB]);
    expect((await getMessage(s, without, ALICE)).add_to_batches).toEqual([]);
  });
});

describe("a message fmsgd received", () => {
  test("size and short_text come from the decompressed file; delivery and batches from fmsgd's rows", async () => {
    const dir = join(s.dataDir, "example.com", "bob", "in", "r-standard");
    await mkdir(dir, { recursive: true });
    const text = "Grüße aus der Ferne — received compressed.\n";
    await writeFile(join(dir, "body.txt"), text);
    const [row] = await s.db.sql`
      insert into msg (version, is_deflate, time_sent, from_addr, topic, type, size, filepath)
      values (1, true, ${T1}, ${CAROL}, 'from afar', 'text/plain; charset=utf-8', 9, ${join(dir, "body.txt")})
      returning id`;
    const id = Number(row!.id);
    await s.db.sql`insert into msg_to (msg_id, addr, time_delivered, response_code) values (${id}, ${BOB}, ${T1}, 200)`;
    await s.db.sql`insert into msg_to (msg_id, addr, response_code) values (${id}, ${DAVE}, -2)`;
    const [batch] = await s.db.sql`
      insert into msg_add_to_batch (msg_id, add_to_from, time_added) values (${id}, ${CAROL}, ${T2}) returning id`;
    const batchId = Number(batch!.id);
    await s.db.sql`
      insert into msg_add_to (msg_id, batch_id, addr, time_delivered, response_code)
      values (${id}, ${batchId}, '@gus@example.com', ${T2}, 200)`;
    await s.db.sql`insert into msg_add_to (msg_id, batch_id, addr, response_code) values (${id}, ${batchId}, '@hal@far.example', -2)`;

    const expected = {
      id,
      version: 1,
      has_pid: false,
      has_add_to: true,
      common_type: false,
      important: false,
      no_reply: false,
      deflate: true,
      pid: null,
      from: CAROL,
      to: [BOB, DAVE],
      add_to: ["@gus@example.com", "@hal@far.example"],
      add_to_from: CAROL,
      time: T1,
      topic: "from afar",
      type: "text/plain; charset=utf-8",
      size: new TextEncoder().encode(text).length,
      attachments: [],
      add_to_batches: [
        {
          batch_id: batchId,
          add_to_from: CAROL,
          to: ["@gus@example.com", "@hal@far.example"],
          to_delivery: [
            { addr: "@gus@example.com", time_delivered: T2_TEXT, response_code: null },
            pending("@hal@far.example"),
          ],
          time: T2,
        },
      ],
      to_delivery: [{ addr: BOB, time_delivered: T1_TEXT, response_code: null }, pending(DAVE)],
      short_text: text,
      read: false,
      time_read: null,
    };
    expect(await getMessage(s, id, BOB)).toEqual(expected);
    expect((await list(s, "/fmsg?limit=1", BOB))[0]).toEqual(expected);
  });

  test("bytes that are not UTF-8 show as U+FFFD", async () => {
    const dir = join(s.dataDir, "example.com", "bob", "in", "r-latin1");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "body.txt"), new Uint8Array([0x68, 0xe9, 0x6c, 0x6c, 0x6f])); // "héllo" in ISO-8859-1
    const [row] = await s.db.sql`
      insert into msg (version, time_sent, from_addr, topic, type, size, filepath)
      values (1, ${T1}, ${CAROL}, 'mislabelled', 'text/plain', 5, ${join(dir, "body.txt")}) returning id`;
    const id = Number(row!.id);
    await s.db.sql`insert into msg_to (msg_id, addr, time_delivered, response_code) values (${id}, ${BOB}, ${T1}, 200)`;
    expect((await getMessage(s, id, BOB)).short_text).toBe("h\uFFFDllo");
  });
});

describe("short_text", () => {
  const a = (n: number) => "a".repeat(n);
  test.each([
    ["a short body, whole", "text/plain", "hello world\n", "hello world\n"],
    ["exactly 768 bytes, whole", "text/plain", a(768), a(768)],
    ["769 bytes: the first 768", "text/plain", a(769), a(768)],
    ["768 bytes ending in a whole 3-byte character, whole", "text/plain", `${a(765)}€`, `${a(765)}€`],
    ["byte 768 is the first of a 3-byte character: cut before it", "text/plain", `${a(767)}€x`, a(767)],
    ["byte 768 is the second of a 3-byte character: cut before it", "text/plain", `${a(766)}€x`, a(766)],
    ["byte 768 is the first of a 2-byte character: cut before it", "text/plain", `${a(767)}éx`, a(767)],
    ["byte 768 is the third of a 4-byte character: cut before it", "text/plain", `${a(765)}😀x`, a(765)],
    ["a 4-byte character ending at byte 768 stays", "text/plain", `${a(764)}😀x`, `${a(764)}😀`],
    ["text/markdown", "text/markdown", "# Title\n", "# Title\n"],
    ["charset=UTF-8 named", "text/plain; charset=UTF-8", "ünïcode", "ünïcode"],
    ["charset=us-ascii named", "text/plain; charset=us-ascii", "plain", "plain"],
  ])("%s", async (_name, type, data, expected) => {
    const id = await createDraft(s, ALICE, [BOB], { type, data });
    expect((await getMessage(s, id, ALICE)).short_text).toBe(expected);
  });

  test.each([
    ["an empty body", "text/plain", ""],
    ["a non-text type", "application/octet-stream", "binary-ish"],
    ["application/json (not text/*)", "application/json", '{"a":1}'],
    ["another charset (not guessed)", "text/plain; charset=iso-8859-1", "plain ascii even"],
  ])("%s: the key is absent", async (_name, type, data) => {
    const id = await createDraft(s, ALICE, [BOB], { type, data });
    expect(Object.keys(await getMessage(s, id, ALICE))).not.toContain("short_text");
  });

  test("a body file missing on disk: no short_text, the message and the inbox still answer", async () => {
    const id = await sentMessage(s, ALICE, ["@lost@example.com"], { data: "gone" });
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    await unlink(row!.filepath);
    const m = await getMessage(s, id, ALICE);
    expect(Object.keys(m)).not.toContain("short_text");
    expect(m.size).toBe(4);
    const inbox = await list(s, "/fmsg", "@lost@example.com");
    expect(inbox.map((x) => x.id)).toEqual([id]);
    expect(Object.keys(inbox[0]!)).not.toContain("short_text");
  });

  test("a draft's short_text follows every replacement of its body", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "first words" });
    expect((await getMessage(s, id, ALICE)).short_text).toBe("first words");
    for (const data of ["second words", "third"]) {
      const res = await s.request("PUT", `/fmsg/${id}`, { as: ALICE, json: { version: 1, from: ALICE, to: [BOB], type: "text/plain", topic: "Hello", data } });
      expect(res.status).toBe(200);
      expect((await getMessage(s, id, ALICE)).short_text).toBe(data);
    }
    await sendDraft(s, ALICE, id);
    expect((await getMessage(s, id, BOB)).short_text).toBe("third");
  });

  test("a sent body missing at one read and back at the next: the next read shows its short_text", async () => {
    const id = await sentMessage(s, ALICE, ["@late@example.com"], { data: "here now" });
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    const kept = await Bun.file(row!.filepath).bytes();
    await unlink(row!.filepath);
    expect(Object.keys(await getMessage(s, id, "@late@example.com"))).not.toContain("short_text");
    await writeFile(row!.filepath, kept);
    expect((await getMessage(s, id, "@late@example.com")).short_text).toBe("here now");
    expect((await list(s, "/fmsg", "@late@example.com"))[0]!.short_text).toBe("here now");
  });

  test("sent messages read again and again, alone and in pages, keep each their own short_text", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await sentMessage(s, ALICE, ["@many@example.com"], { data: `message number ${i}` }));
    for (let round = 0; round < 3; round++) {
      for (const [i, id] of ids.entries()) expect((await getMessage(s, id, "@many@example.com")).short_text).toBe(`message number ${i}`);
      const page = await list(s, "/fmsg?limit=5", "@many@example.com");
      expect(page.map((m) => m.short_text)).toEqual([4, 3, 2, 1, 0].map((i) => `message number ${i}`));
    }
  });

  test("FMSG_API_SHORT_TEXT_SIZE sets the length (0: never)", async () => {
    const [off, four] = await Promise.all([
      startTestServer({ env: { FMSG_API_SHORT_TEXT_SIZE: "0" } }),
      startTestServer({ env: { FMSG_API_SHORT_TEXT_SIZE: "4" } }),
    ]);
    try {
      const id = await createDraft(off, ALICE, [BOB], { data: "hello" });
      expect(Object.keys(await getMessage(off, id, ALICE))).not.toContain("short_text");
      // "ñ" is 2 bytes: it fits in "aañ" (4 bytes) and not after "aaa".
      for (const [data, expected] of [["aañb", "aañ"], ["aañ", "aañ"], ["aaañ", "aaa"]]) {
        const at = await createDraft(four, ALICE, [BOB], { data });
        expect((await getMessage(four, at, ALICE)).short_text).toBe(expected!);
      }
    } finally {
      await Promise.all([off.stop(), four.stop()]);
    }
  });
});

describe("read and time_read: the reading identity's own recipient row", () => {
  test("set on one recipient's row: that reader alone sees read true and the time", async () => {
    const id = await createDraft(s, ALICE, [BOB, DAVE], { add_to: [CAROL, "@ivy@far.example"] });
    await sendDraft(s, ALICE, id);
    await record(s, "msg_to", id, BOB, { time_read: T1 });
    await record(s, "msg_add_to", id, CAROL, { time_read: T2 });
    const seen = async (as: string) => {
      const m = await getMessage(s, id, as);
      return { read: m.read, time_read: m.time_read };
    };
    expect(await seen(BOB)).toEqual({ read: true, time_read: T1 });
    expect(await seen("@BOB@EXAMPLE.COM")).toEqual({ read: true, time_read: T1 });
    expect(await seen(CAROL)).toEqual({ read: true, time_read: T2 });
    expect(await seen(DAVE)).toEqual({ read: false, time_read: null });
    expect(await seen("@ivy@far.example")).toEqual({ read: false, time_read: null });
    expect(await seen(ALICE)).toEqual({ read: false, time_read: null });
    // Lists answer for their reader too.
    expect((await list(s, "/fmsg?limit=100", BOB)).find((m) => m.id === id)).toMatchObject({ read: true, time_read: T1 });
    expect((await list(s, "/fmsg?limit=100", DAVE)).find((m) => m.id === id)).toMatchObject({ read: false, time_read: null });
    expect((await list(s, "/fmsg/sent?limit=100", ALICE)).find((m) => m.id === id)).toMatchObject({ read: false, time_read: null });
  });
});

describe("local delivery (FMSG_DOMAIN set)", () => {
  let stub: IdentityStub;
  let local: TestServer;
  beforeAll(async () => {
    stub = startIdentityStub("accepting");
    stub.set("@ghost@example.com", "unknown");
    stub.set("@closed@example.com", "not_accepting");
    local = await startTestServer({ identityUrl: stub.url, env: { FMSG_DOMAIN: "example.com" } });
  });
  afterAll(async () => {
    await local.stop();
    await stub.stop();
  });

  const deliveredAt = async (table: Recipients, id: number, addr: string) => {
    const [row] = await local.db.sql`select time_delivered from ${local.db.sql(table)} where msg_id = ${id} and addr = ${addr}`;
    return new Date(Number(row!.time_delivered) * 1000).toISOString();
  };

  test("local recipients show delivered with the time; refusals show their code; remote ones stay pending", async () => {
    const to = [BOB, "@ghost@example.com", "@closed@example.com", CAROL];
    const id = await sentMessage(local, ALICE, to);
    expect((await local.request("POST", `/fmsg/${id}/add-to`, { as: ALICE, json: { add_to: ["@new@example.com"] } })).status).toBe(200);
    const m = await getMessage(local, id, ALICE);
    const bobAt = await deliveredAt("msg_to", id, BOB);
    expect(bobAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(m.to_delivery).toEqual([
      { addr: BOB, time_delivered: bobAt, response_code: null },
      { addr: "@ghost@example.com", time_delivered: null, response_code: 100 },
      { addr: "@closed@example.com", time_delivered: null, response_code: 102 },
      pending(CAROL),
    ]);
    const batches = m.add_to_batches as { to_delivery: unknown }[];
    expect(batches.map((b) => b.to_delivery)).toEqual([
      [{ addr: "@new@example.com", time_delivered: await deliveredAt("msg_add_to", id, "@new@example.com"), response_code: null }],
    ]);
  });
});

describe("who sees what: owner, to, add-to and stranger on a draft and a sent message", () => {
  const who = { owner: "@ALICE@example.com", to: BOB, addTo: CAROL, stranger: EVE };
  let draftId: number;
  let sentId: number;
  let expected: { draft: Json; sent: Json };
  beforeAll(async () => {
    draftId = await createDraft(s, ALICE, [BOB], { add_to: [CAROL], topic: "Roles" });
    sentId = await createDraft(s, ALICE, [BOB], { add_to: [CAROL], topic: "Roles" });
    const time = await sendDraft(s, ALICE, sentId);
    await record(s, "msg_to", sentId, BOB, { time_delivered: T1, response_code: 200, time_read: T2 });
    await record(s, "msg_add_to", sentId, CAROL, { response_code: 102 });
    const [draftBatch] = await batchesOf(s, draftId);
    const [sentBatch] = await batchesOf(s, sentId);
    const common = {
      version: 1,
      has_pid: false,
      has_add_to: true,
      common_type: false,
      important: false,
      no_reply: false,
      deflate: false,
      pid: null,
      from: ALICE,
      to: [BOB],
      add_to: [CAROL],
      add_to_from: ALICE,
      topic: "Roles",
      type: "text/plain",
      size: 12,
      attachments: [],
      short_text: "hello world\n",
      read: false,
      time_read: null,
    };
    expected = {
      draft: {
        ...common,
        id: draftId,
        time: null,
        to_delivery: [pending(BOB)],
        add_to_batches: [{ batch_id: draftBatch!.id, add_to_from: ALICE, to: [CAROL], to_delivery: [pending(CAROL)], time: null }],
      },
      sent: {
        ...common,
        id: sentId,
        time,
        to_delivery: [{ addr: BOB, time_delivered: T1_TEXT, response_code: null }],
        add_to_batches: [
          { batch_id: sentBatch!.id, add_to_from: ALICE, to: [CAROL], to_delivery: [{ addr: CAROL, time_delivered: null, response_code: 102 }], time },
        ],
      },
    };
  });

  /** The object each reader gets: the same message, with read/time_read its own. */
  const seenBy = (role: keyof typeof who, state: "draft" | "sent"): Json =>
    role === "to" ? { ...expected[state], read: true, time_read: T2 } : expected[state];

  test.each(READ_ACCESS)("%s on a %s message → %d", async (role, state, status) => {
    const id = state === "draft" ? draftId : sentId;
    for (const profile of ["seed", "fmsg-003"]) {
      const res = await s.request("GET", `/fmsg/${id}`, { as: who[role], headers: { "fmsg-profile": profile } });
      expect(res.status).toBe(status);
      if (status === 403) {
        expect(await res.json()).toEqual({ error: "access denied" });
        continue;
      }
      const shown = seenBy(role, state);
      if (profile === "seed") {
        expect(await res.json()).toEqual(shown);
      } else {
        // fmsg-003: the same fields; add_to is the batch list and the seed-only keys are gone.
        const { add_to_from: _f, common_type: _c, add_to_batches, add_to: _a, ...rest } = shown;
        expect(await res.json()).toEqual({ ...rest, add_to: add_to_batches });
      }
    }
  });

  test.each(["seed", "fmsg-003"])("lists carry the same object (%s)", async (profile) => {
    const inboxOf = async (as: string) => (await list(s, "/fmsg?limit=100", as, profile)).find((m) => m.id === sentId);
    const single = async (as: string) => getMessage(s, sentId, as, profile);
    expect(await inboxOf(BOB)).toEqual(await single(BOB));
    expect(await inboxOf(CAROL)).toEqual(await single(CAROL));
    const sent = await list(s, "/fmsg/sent?limit=100", ALICE, profile);
    expect(sent.find((m) => m.id === sentId)).toEqual(await single(ALICE));
    expect(sent.find((m) => m.id === draftId)).toEqual(await getMessage(s, draftId, ALICE, profile));
  });
});
