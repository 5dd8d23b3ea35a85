// Idempotency-Key on POST /fmsg, send, add-to and attach: retries replay the first answer and change
// nothing, a reused key with another request is 422, keys are per identity, concurrent requests with
// one key make one effect, an upload cut off mid-body leaves the key free, and answers expire after 24 h.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { mintToken } from "../../src/lib/jwt.ts";
import { pruneExpiredAnswers } from "../../src/messages/idempotency.ts";
import { ALICE, BOB, CAROL, createDraft, DAVE, errorOf, sentMessage, snapshot } from "../helpers/messages.ts";
import { openSocket } from "../helpers/raw-socket.ts";
import { draft, startTestServer, TEST_KEY, type TestServer } from "../helpers/server.ts";

let s: TestServer;
let keys = 0;
/** A key no other test uses (they share one database). */
const freshKey = () => `key-${++keys}-${crypto.randomUUID()}`;

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

function attachmentForm(content: string, name = "a.txt"): FormData {
  const form = new FormData();
  form.append("file", new Blob([content], { type: "text/plain" }), name);
  return form;
}

type Answer = { status: number; body: string; replayed: string | null };
async function answer(res: Response): Promise<Answer> {
  return { status: res.status, body: await res.text(), replayed: res.headers.get("idempotent-replayed") };
}

/** One keyed write: `prepare` makes what it needs; `call` makes the request; `other` is a different request. */
type Write = {
  name: string;
  status: number;
  prepare: () => Promise<number>;
  call: (id: number, key: string, as?: string) => Promise<Response>;
  other: (id: number, key: string) => Promise<Response>;
};

const keyed = (key: string) => ({ "idempotency-key": key });

const WRITES: Write[] = [
  {
    name: "POST /fmsg",
    status: 201,
    prepare: async () => 0,
    call: (_id, key, as = ALICE) => s.request("POST", "/fmsg", { as, json: draft(as, [BOB], { topic: `once ${key}` }), headers: keyed(key) }),
    other: (_id, key) => s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { topic: "another" }), headers: keyed(key) }),
  },
  {
    name: "POST /fmsg/{id}/send",
    status: 200,
    prepare: () => createDraft(s, ALICE, [BOB]),
    call: (id, key, as = ALICE) => s.request("POST", `/fmsg/${id}/send`, { as, headers: keyed(key) }),
    other: async (id, key) => s.request("POST", `/fmsg/${await createDraft(s, ALICE, [BOB])}/send`, { headers: keyed(key) }),
  },
  {
    name: "POST /fmsg/{id}/add-to",
    status: 200,
    prepare: () => sentMessage(s, ALICE, [BOB]),
    call: (id, key, as = ALICE) => s.request("POST", `/fmsg/${id}/add-to`, { as, json: { add_to: [CAROL] }, headers: keyed(key) }),
    other: (id, key) => s.request("POST", `/fmsg/${id}/add-to`, { json: { add_to: [DAVE] }, headers: keyed(key) }),
  },
  {
    name: "POST /fmsg/{id}/attach",
    status: 201,
    prepare: () => createDraft(s, ALICE, [BOB]),
    call: (id, key, as = ALICE) => s.request("POST", `/fmsg/${id}/attach`, { as, body: attachmentForm("the attachment"), headers: keyed(key) }),
    other: (id, key) => s.request("POST", `/fmsg/${id}/attach`, { body: attachmentForm("other bytes, same name"), headers: keyed(key) }),
  },
];

describe.each(WRITES.map((w) => [w.name, w] as const))("%s", (_name, w) => {
  test("a retry with the same key gets the first answer again and changes nothing", async () => {
    const id = await w.prepare();
    const key = freshKey();
    const first = await answer(await w.call(id, key));
    expect(first).toMatchObject({ status: w.status, replayed: null });
    const before = await snapshot(s);
    const again = await answer(await w.call(id, key));
    expect(again).toEqual({ ...first, replayed: "true" });
    expect(await snapshot(s)).toBe(before);
  });

  test("the same key with a different request → 422, nothing changed", async () => {
    const id = await w.prepare();
    const key = freshKey();
    expect((await w.call(id, key)).status).toBe(w.status);
    const before = await snapshot(s);
    expect(await errorOf(await w.other(id, key))).toEqual({ status: 422, error: "Idempotency-Key already used for a different request" });
    if (w.name !== "POST /fmsg/{id}/send") expect(await snapshot(s)).toBe(before); // its "other" made a draft first
  });

  test("concurrent requests with one key: one effect, every answer the same", async () => {
    const id = await w.prepare();
    const key = freshKey();
    const before = await snapshot(s);
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => w.call(id, key).then(answer)));
    const first = answers.find((a) => a.replayed === null)!;
    expect(first.status).toBe(w.status);
    expect(answers.filter((a) => a.replayed === null)).toHaveLength(1);
    for (const a of answers) expect({ status: a.status, body: a.body }).toEqual({ status: first.status, body: first.body });
    expect(await snapshot(s)).not.toBe(before);
    expect(await effectCount(w, id, key)).toBe(1);
  });
});

/** How many times the write's effect is in the database. */
async function effectCount(w: Write, id: number, key: string): Promise<number> {
  const sql = s.db.sql;
  const count = async (q: Promise<{ n: number }[]>) => (await q)[0]!.n;
  switch (w.name) {
    case "POST /fmsg":
      return count(sql`select count(*)::int as n from msg where topic = ${`once ${key}`}`);
    case "POST /fmsg/{id}/send":
      return count(sql`select count(*)::int as n from msg where id = ${id} and time_sent is not null`);
    case "POST /fmsg/{id}/add-to":
      return count(sql`select count(*)::int as n from msg_add_to_batch where msg_id = ${id}`);
    default:
      return count(sql`select count(*)::int as n from msg_attachment where msg_id = ${id}`);
  }
}

test("keys are per identity: another identity's same key is independent", async () => {
  const key = freshKey();
  const alice = await answer(await WRITES[0]!.call(0, key, ALICE));
  const bob = await answer(await WRITES[0]!.call(0, key, BOB));
  expect(alice).toMatchObject({ status: 201, replayed: null });
  expect(bob).toMatchObject({ status: 201, replayed: null });
  expect(bob.body).not.toBe(alice.body);
  // …and the same identity spelled in another case is the same identity.
  const shouted = await answer(await s.request("POST", "/fmsg", { as: "@ALICE@example.com", json: draft(ALICE, [BOB], { topic: `once ${key}` }), headers: keyed(key) }));
  expect(shouted).toEqual({ ...alice, replayed: "true" });
});

test("a refused request does not use up its key", async () => {
  const id = await sentMessage(s, ALICE, [BOB]);
  const key = freshKey();
  expect((await s.request("POST", `/fmsg/${id}/send`, { headers: keyed(key) })).status).toBe(409);
  expect(await answer(await WRITES[0]!.call(0, key))).toMatchObject({ status: 201, replayed: null });
});

test.each([
  ["empty", ""],
  ["with a space", "a b"],
  ["non-ASCII", "schlüssel"],
  ["256 characters", "k".repeat(256)],
])("a key %s → 400", async (_label, key) => {
  const res = await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB]), headers: keyed(key) });
  expect(await errorOf(res)).toEqual({ status: 400, error: "invalid Idempotency-Key: 1 to 255 visible ASCII characters" });
});

test("a key of 255 visible characters is taken", async () => {
  const res = await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB]), headers: keyed(`~${"k".repeat(253)}!`) });
  expect(res.status).toBe(201);
});

test("after 24 h a key's answer is forgotten: the request runs again; expired answers are pruned", async () => {
  const key = freshKey();
  const first = await answer(await WRITES[0]!.call(0, key));
  // The clock is the database's: move the answer 24 h and a second into the past.
  await s.db.sql`update fmsg_api_idempotency set created_at = created_at - interval '24 hours 1 second' where key = ${key}`;
  const later = await answer(await WRITES[0]!.call(0, key));
  expect(later).toMatchObject({ status: 201, replayed: null });
  expect(later.body).not.toBe(first.body);
  expect(await answer(await WRITES[0]!.call(0, key))).toEqual({ ...later, replayed: "true" });

  const old = freshKey();
  await WRITES[0]!.call(0, old);
  await s.db.sql`update fmsg_api_idempotency set created_at = now() - interval '25 hours' where key = ${old}`;
  expect(await pruneExpiredAnswers(s.db.sql)).toBeGreaterThanOrEqual(1);
  const left = await s.db.sql<{ key: string }[]>`select key from fmsg_api_idempotency where key in (${key}, ${old})`;
  expect(left.map((r) => r.key)).toEqual([key]);
});

describe("an upload cut off mid-body, retried with the same key", () => {
  const BOUNDARY = "----idempotencyboundary";
  const FILE = "z".repeat(256 * 1024);
  const body = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n${FILE}\r\n--${BOUNDARY}--\r\n`;

  async function tempFiles(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (d: string) => {
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
        if (e.name === "pglite") continue;
        if (e.isDirectory()) await walk(join(d, e.name));
        else if (e.name.startsWith(".tmp-")) out.push(e.name);
      }
    };
    await walk(s.dataDir);
    return out;
  }

  test("the first never completed: the retry stores the file once, a second retry replays", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const key = freshKey();
    const socket = await openSocket(s.url);
    const before = new Set(await tempFiles());
    socket.write(
      `POST /fmsg/${id}/attach HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${mintToken(ALICE, TEST_KEY, 600)}\r\n` +
        `Idempotency-Key: ${key}\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n` +
        body.slice(0, body.length / 2),
    );
    // Wait (on the condition, not a clock) until the server is writing the upload, then drop the connection.
    for (let i = 0; !(await tempFiles()).some((n) => !before.has(n)); i++) {
      if (i > 600) throw new Error("the server never started writing the upload");
      await Bun.sleep(25);
    }
    socket.destroy();

    const retry = () =>
      fetch(`${s.url}/fmsg/${id}/attach`, {
        method: "POST",
        headers: { authorization: `Bearer ${mintToken(ALICE, TEST_KEY, 600)}`, "content-type": `multipart/form-data; boundary=${BOUNDARY}`, ...keyed(key) },
        body,
      }).then(answer);
    const first = await retry();
    expect(first).toEqual({ status: 201, body: JSON.stringify({ filename: "big.bin", size: FILE.length }), replayed: null });
    expect(await retry()).toEqual({ ...first, replayed: "true" });
    const rows = await s.db.sql`select filename, filesize from msg_attachment where msg_id = ${id}`;
    expect(rows.map((r) => [r.filename, r.filesize])).toEqual([["big.bin", FILE.length]]);
  });
});

test("a replayed attach needs no draft any more: after the send the retry still gets 201", async () => {
  const id = await createDraft(s, ALICE, [BOB]);
  const key = freshKey();
  const first = await answer(await WRITES[3]!.call(id, key));
  expect(first.status).toBe(201);
  expect((await s.request("POST", `/fmsg/${id}/send`)).status).toBe(200);
  expect(await answer(await WRITES[3]!.call(id, key))).toEqual({ ...first, replayed: "true" });
  expect((await WRITES[3]!.other(id, key)).status).toBe(422);
});
