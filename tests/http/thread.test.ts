// GET /fmsg/:id/thread (text) and /thread/messages (JSON): the chain by pid, who sees what, the 100-ancestor bound (docs/API.md §10.3).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ALICE, BOB, CAROL, DAVE, EVE, READ_ACCESS, createDraft, errorOf, sentMessage } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const MIB = 1024 * 1024;

let s: TestServer;
beforeAll(async () => {
  // 1 MiB bodies at most, so a longer received body is cheap to write and shows the cut.
  s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "1" } });
});
afterAll(() => s.stop());

/** A message fmsgd received and stored: row already sent, body under the recipient's in/ folder. */
async function received(from: string, to: string, opts: { type: string; body: Uint8Array | string; deflate?: boolean; wireSize?: number }): Promise<number> {
  const dir = join(s.dataDir, "example.com", "in", crypto.randomUUID());
  await mkdir(dir, { recursive: true });
  const bytes = typeof opts.body === "string" ? new TextEncoder().encode(opts.body) : opts.body;
  await writeFile(join(dir, "body"), bytes);
  const [m] = await s.db.sql<{ id: number }[]>`
    insert into msg (version, is_deflate, time_sent, from_addr, topic, type, size, filepath)
    values (1, ${opts.deflate ?? false}, extract(epoch from now()), ${from}, 'from afar', ${opts.type}, ${opts.wireSize ?? bytes.length}, ${join(dir, "body")})
    returning id::int as id`;
  await s.db.sql`insert into msg_to (msg_id, addr) values (${m!.id}, ${to})`;
  return m!.id;
}

async function header(id: number): Promise<string> {
  const [m] = await s.db.sql<{ from_addr: string; time_sent: number | null }[]>`select from_addr, time_sent from msg where id = ${id}`;
  return `--- ${m!.from_addr} ${m!.time_sent === null ? "draft" : new Date(m!.time_sent * 1000).toISOString()} ---`;
}

async function threadText(id: number, as: string): Promise<string> {
  const res = await s.request("GET", `/fmsg/${id}/thread`, { as });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
  return res.text();
}

async function threadIds(id: number, as: string): Promise<number[]> {
  const res = await s.request("GET", `/fmsg/${id}/thread/messages`, { as });
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: number }[]).map((m) => m.id);
}

describe("a reply chain", () => {
  // fmsgd's received message (Latin-1, compressed on the wire) ← alice's reply ← bob's binary reply
  // (carol added) ← alice's reply with carol as add-to ← alice's draft.
  let fromAfar: number, root: number, binary: number, last: number, draftId: number;
  beforeAll(async () => {
    fromAfar = await received(DAVE, ALICE, { type: "text/plain; charset=iso-8859-1", body: new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a]), deflate: true, wireSize: 3 });
    root = await sentMessage(s, ALICE, [BOB], { pid: fromAfar, topic: "", data: "root line 1\nline 2\n" });
    binary = await sentMessage(s, BOB, [ALICE, CAROL], { pid: root, topic: "", type: "application/octet-stream", data: "four" });
    last = await sentMessage(s, ALICE, [BOB], { pid: binary, topic: "", add_to: [CAROL], data: "third\n" });
    draftId = await createDraft(s, ALICE, [BOB], { pid: last, topic: "", add_to: [CAROL], data: "not yet" });
  });

  test("as text, for the owner: every body, root first, a note for the binary one", async () => {
    expect(await threadText(last, ALICE)).toBe(
      [
        `${await header(fromAfar)}\ncafé`,
        `${await header(root)}\nroot line 1\nline 2`,
        `${await header(binary)}\n[non-text message: application/octet-stream, 4 bytes]`,
        `${await header(last)}\nthird`,
      ].join("\n\n") + "\n",
    );
  });

  test("as text, for an add-to recipient: ancestors it did not receive are noted, not shown", async () => {
    expect(await threadText(last, CAROL)).toBe(
      [
        `${await header(fromAfar)}\n[message not visible to you]`,
        `${await header(root)}\n[message not visible to you]`,
        `${await header(binary)}\n[non-text message: application/octet-stream, 4 bytes]`,
        `${await header(last)}\nthird`,
      ].join("\n\n") + "\n",
    );
  });

  test("times are RFC 3339 in UTC; the owner's own draft ends its thread as `draft`", async () => {
    const text = await threadText(draftId, ALICE);
    expect(text.split("\n")[0]).toMatch(/^--- @dave@third\.net \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ---$/);
    expect(text.endsWith(`\n\n--- ${ALICE} draft ---\nnot yet\n`)).toBe(true);
  });

  test("as JSON: only the messages the identity may see, root first", async () => {
    expect(await threadIds(last, ALICE)).toEqual([fromAfar, root, binary, last]);
    expect(await threadIds(last, BOB)).toEqual([root, binary, last]);
    expect(await threadIds(last, CAROL)).toEqual([binary, last]);
    expect(await threadIds(draftId, ALICE)).toEqual([fromAfar, root, binary, last, draftId]);
  });

  test("as JSON: the message objects of GET /fmsg/:id, in the request's profile", async () => {
    const seed = (await (await s.request("GET", `/fmsg/${last}/thread/messages`, { as: BOB })).json()) as Record<string, unknown>[];
    expect(seed.at(-1)).toEqual((await (await s.request("GET", `/fmsg/${last}`, { as: BOB })).json()) as Record<string, unknown>);
    expect(seed.at(-1)!.add_to).toEqual([CAROL]);
    const res = await s.request("GET", `/fmsg/${last}/thread/messages`, { as: BOB, headers: { "fmsg-profile": "fmsg-003" } });
    expect(res.headers.get("fmsg-profile")).toBe("fmsg-003");
    const fmsg003 = (await res.json()) as { add_to: { to: string[] }[] }[];
    expect(fmsg003.at(-1)!.add_to.map((b) => b.to)).toEqual([[CAROL]]);
  });

  const who = { owner: ALICE, to: BOB, addTo: CAROL, stranger: EVE };
  test.each(READ_ACCESS)("%s on a %s message → %d on both routes", async (role, state, status) => {
    const id = state === "draft" ? draftId : last;
    for (const path of [`/fmsg/${id}/thread`, `/fmsg/${id}/thread/messages`]) {
      const res = await s.request("GET", path, { as: who[role] });
      expect(res.status).toBe(status);
      if (status === 403) expect(await res.json()).toEqual({ error: "access denied" });
      else await res.arrayBuffer();
    }
  });
});

describe("refusals", () => {
  test.each(["/thread", "/thread/messages"])("%s: no such message → 404, a bad id → 400", async (suffix) => {
    expect(await errorOf(await s.request("GET", `/fmsg/999999${suffix}`))).toEqual({ status: 404, error: "message not found" });
    expect(await errorOf(await s.request("GET", `/fmsg/0${suffix}`))).toEqual({ status: 400, error: "invalid message id" });
  });
});

describe("bodies", () => {
  test("a body file gone from disk is said so; the thread is still answered", async () => {
    const parent = await sentMessage(s, ALICE, [BOB], { data: "soon gone" });
    const reply = await sentMessage(s, BOB, [ALICE], { pid: parent, topic: "", data: "still here" });
    const [row] = await s.db.sql<{ filepath: string }[]>`select filepath from msg where id = ${parent}`;
    await unlink(row!.filepath);
    expect(await threadText(reply, BOB)).toBe(`${await header(parent)}\n[message data not available]\n\n${await header(reply)}\nstill here\n`);
  });

  test("a received body over FMSG_API_MAX_DATA_SIZE is cut back to a whole character and marked", async () => {
    const long = new Uint8Array([...new TextEncoder().encode("a".repeat(MIB - 1) + "é"), 0x78, 0x79]);
    const id = await received(DAVE, BOB, { type: "text/plain", body: long });
    expect(await threadText(id, BOB)).toBe(`${await header(id)}\n${"a".repeat(MIB - 1)}\n[message truncated after ${MIB} bytes]\n`);
  });

  test("a non-text body fmsgd stored decompressed is noted with the length of its file", async () => {
    const id = await received(DAVE, BOB, { type: "application/pdf", body: "%PDF-1.7 twenty bytes", deflate: true, wireSize: 9 });
    expect(await threadText(id, BOB)).toBe(`${await header(id)}\n[non-text message: application/pdf, 21 bytes]\n`);
  });

  test("application/json bodies are shown; an empty body leaves the header alone", async () => {
    const parent = await sentMessage(s, ALICE, [BOB], { type: "application/json", data: '{"a":1}' });
    const reply = await sentMessage(s, BOB, [ALICE], { pid: parent, topic: "", data: "" });
    expect(await threadText(reply, ALICE)).toBe(`${await header(parent)}\n{"a":1}\n\n${await header(reply)}\n`);
  });
});

describe("cycles and the bound", () => {
  test("a pid cycle (made by updates, which fmsgd's triggers allow) is walked once", async () => {
    const a = await sentMessage(s, ALICE, [BOB], { data: "A" });
    const b = await sentMessage(s, BOB, [ALICE], { pid: a, topic: "", data: "B" });
    await s.db.sql`update msg set pid = ${b} where id = ${a}`;
    expect(await threadText(b, ALICE)).toBe(`${await header(a)}\nA\n\n${await header(b)}\nB\n`);
    expect(await threadIds(a, BOB)).toEqual([b, a]);
  });

  test("at most 100 ancestors: of a chain of 102, the root is left out", async () => {
    // As fmsgd stores received replies: each row sent, its pid the previous one.
    const ids = await s.db.sql.begin(async (tx) => {
      const out: number[] = [];
      for (let i = 0; i < 102; i++) {
        const [m] = await tx<{ id: number }[]>`
          insert into msg (version, pid, time_sent, from_addr, topic, type, size, filepath)
          values (1, ${out.at(-1) ?? null}, extract(epoch from now()), ${DAVE}, '', 'application/octet-stream', ${i}, '/nonexistent')
          returning id::int as id`;
        await tx`insert into msg_to (msg_id, addr) values (${m!.id}, ${BOB})`;
        out.push(m!.id);
      }
      return out;
    });
    const last = ids.at(-1)!;
    expect(await threadIds(last, BOB)).toEqual(ids.slice(1));
    const entries = (await threadText(last, BOB)).split("\n\n");
    expect(entries.length).toBe(101);
    expect(entries[0]).toBe(`${await header(ids[1]!)}\n[non-text message: application/octet-stream, 1 bytes]`);
    expect(entries[100]).toBe(`${await header(last)}\n[non-text message: application/octet-stream, 101 bytes]\n`);
  });
});
