// A COMMIT done in PostgreSQL whose answer never reaches the server (the connection cut in between:
// a terminated backend, a restart, a network drop). The server asks what became of the write and
// answers it as saved; before, it answered 503 "nothing was saved", and a client's retry then made a
// second draft, or was refused as a duplicate add-to. A write cut off before its COMMIT is still 503
// with nothing saved.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { within } from "../helpers/poll.ts";
import type { TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, createDraft, errorOf, sentMessage } from "../helpers/messages.ts";
import { serverBehindProxy, type BehindProxy, type CutProxy } from "../helpers/pg-cut-proxy.ts";
import { draft, EMBEDDED, type TestServer } from "../helpers/server.ts";

describe.skipIf(EMBEDDED)("a lost COMMIT answer (PostgreSQL behind a proxy that cuts it)", () => {
  let db: TestDatabase;
  let proxy: CutProxy;
  let s: TestServer;
  let setup: BehindProxy;
  beforeAll(async () => {
    setup = await serverBehindProxy();
    ({ db, proxy, s } = setup);
  });
  afterAll(() => setup?.stop());

  /** `request` with the connection cut once `tag` has completed (see CutProxy.arm). */
  async function cutAfter(tag: string, request: () => Promise<Response>, opts: { skip?: number; marker?: string } = {}): Promise<Response> {
    const cut = proxy.arm(tag, opts);
    const res = await request();
    expect(await within(cut, 5000)).not.toBe("hung"); // the cut happened during the request
    return res;
  }

  test("send (one statement, completing as SELECT 1): 200 and sent", async () => {
    // A sender of its own: its address in the send's parameters marks the connection to cut.
    const sender = "@lost-send@example.com";
    const id = await createDraft(s, sender, [BOB]);
    const res = await cutAfter("SELECT 1", () => s.request("POST", `/fmsg/${id}/send`, { as: sender }), { marker: sender });
    expect(res.status).toBe(200);
    const [row] = await db.sql`select time_sent from msg where id = ${id}`;
    expect(row!.time_sent).not.toBeNull();
  });

  test("a keyed send cut off before its COMMIT: 503, not sent; the retry with its key sends it", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const send = () => s.request("POST", `/fmsg/${id}/send`, { as: ALICE, headers: { "idempotency-key": `send-${id}` } });
    // The connection is cut after the key's claim, inside the transaction: PostgreSQL rolls it back.
    const res = await cutAfter("INSERT", send);
    expect(await errorOf(res)).toEqual({ status: 503, error: "database unavailable" });
    expect((await db.sql`select time_sent from msg where id = ${id}`)[0]!.time_sent).toBeNull();
    expect((await send()).status).toBe(200);
  });

  test("a keyed send whose COMMIT answer is lost: 200; its retry is the same answer, replayed", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const send = () => s.request("POST", `/fmsg/${id}/send`, { as: ALICE, headers: { "idempotency-key": `kept-${id}` } });
    const first = await cutAfter("COMMIT", send);
    expect(first.status).toBe(200);
    const again = await send();
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.json()).toEqual(await first.json());
  });

  test("create (one statement): 201, the draft exactly once", async () => {
    const res = await cutAfter("INSERT", () => s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, [BOB], { topic: "lost-insert" }) }));
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: number };
    expect((await db.sql`select id from msg where topic = 'lost-insert'`).map((r) => Number(r.id))).toEqual([id]);
  });

  test("create with add_to (a transaction): 201, the draft exactly once", async () => {
    const res = await cutAfter("COMMIT", () =>
      s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, [BOB], { topic: "lost-tx", add_to: ["@carol@example.com"] }) }),
    );
    expect(res.status).toBe(201);
    expect((await db.sql`select count(*)::int as n from msg where topic = 'lost-tx'`)[0]!.n).toBe(1);
  });

  test("add-to: 200; the client has no reason to retry into a duplicate", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    const res = await cutAfter("COMMIT", () => s.request("POST", `/fmsg/${id}/add-to`, { as: ALICE, json: { add_to: ["@dave@example.com"] } }));
    expect(res.status).toBe(200);
    expect((await db.sql`select addr from msg_add_to where msg_id = ${id}`).map((r) => r.addr)).toEqual(["@dave@example.com"]);
  });

  test("attachment upload: 201, listed, its file in place", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const form = new FormData();
    form.append("file", new Blob(["hello"]), "ghost.txt");
    // The upload's first COMMIT is its read-only size check; the second is the write.
    const res = await cutAfter("COMMIT", () => s.request("POST", `/fmsg/${id}/attach`, { as: ALICE, body: form }), { skip: 1 });
    expect(res.status).toBe(201);
    const [row] = await db.sql`select filepath, filesize from msg_attachment where msg_id = ${id}`;
    expect(row!.filesize).toBe(5);
    expect(await Bun.file(row!.filepath).text()).toBe("hello");
  });

  test("mark read and delete a draft: answered as done", async () => {
    const sent = await sentMessage(s, ALICE, [BOB]);
    expect((await cutAfter("COMMIT", () => s.request("POST", `/fmsg/${sent}/read`, { as: BOB }))).status).toBe(200);
    expect((await db.sql`select time_read from msg_to where msg_id = ${sent}`)[0]!.time_read).not.toBeNull();
    const gone = await createDraft(s, ALICE, [BOB]);
    expect((await cutAfter("COMMIT", () => s.request("DELETE", `/fmsg/${gone}`, { as: ALICE }))).status).toBe(204);
    expect((await db.sql`select id from msg where id = ${gone}`).length).toBe(0);
  });
});
