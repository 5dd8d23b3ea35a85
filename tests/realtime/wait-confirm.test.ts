// GET /fmsg/wait answered from the trigger channels' notifications (docs/API.md §8), end to end: NOTIFYs out of id order, for drafts, for others' mail.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ALICE, BOB, CAROL, DAVE, createDraft, sentMessage } from "../helpers/messages.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(30_000);

type WaitResult = { status: number; latestId: number | null };

/** Polls a condition (never a fixed sleep as synchronisation), failing after `ms`. */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

// The trigger channels and a second writer's connection exist only with PostgreSQL.
describe.skipIf(EMBEDDED)("GET /fmsg/wait answered from notifications", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s.stop();
  });
  afterEach(async () => {
    await until(() => s.server.waiters.size === 0, "no open waits left");
  });

  /**
   * Starts waits and resolves once the registry holds them all and their catch-up queries are done,
   * so whatever answers them afterwards is a notification. The answers are wrapped: an async
   * function returning bare promises would wait for them.
   */
  async function startWaits(waits: { as: string; since: number; timeout: number }[]): Promise<{ done: Promise<WaitResult>[] }> {
    const before = s.server.waiters.size;
    const done = waits.map(async (w) => {
      const res = await s.request("GET", `/fmsg/wait?since_id=${w.since}&timeout=${w.timeout}`, { as: w.as });
      const text = await res.text();
      return { status: res.status, latestId: text === "" ? null : (JSON.parse(text) as { latest_id: number }).latest_id };
    });
    await until(() => s.server.waiters.size === before + waits.length, `${waits.length} registered wait(s)`);
    await s.server.waiters.idle();
    return { done };
  }

  async function maxId(): Promise<number> {
    const [row] = await s.db.sql<{ id: string }[]>`select coalesce(max(id), 0)::text as id from msg`;
    return Number(row!.id);
  }

  /** A message stored as fmsgd stores one, still unsent (no NOTIFY yet); returns its id. */
  async function storeUnsent(to: string[]): Promise<number> {
    return s.db.sql.begin(async (tx) => {
      const [m] = await tx<{ id: string }[]>`
        insert into msg (version, from_addr, topic, type, size, filepath)
        values (1, '@zed@remote.example', 'from afar', 'text/plain', 0, '/nonexistent')
        returning id::text as id`;
      for (const addr of to) await tx`insert into msg_to (msg_id, addr) values (${Number(m!.id)}, ${addr})`;
      return Number(m!.id);
    });
  }

  const answered = (id: number): WaitResult => ({ status: 200, latestId: id });
  const NOTHING: WaitResult = { status: 204, latestId: null };

  test("two messages sent in one commit whose NOTIFYs arrive higher id first: the wait answers the higher id", async () => {
    const low = await storeUnsent([BOB]);
    const high = await storeUnsent([BOB]);
    expect(high).toBeGreaterThan(low);
    const { done } = await startWaits([{ as: BOB, since: low - 1, timeout: 15 }]);
    // The deferred new_msg trigger fires in the order the rows were sent: high's NOTIFY, then low's.
    await s.db.sql.begin(async (tx) => {
      await tx`update msg set time_sent = extract(epoch from now()) where id = ${high}`;
      await tx`update msg set time_sent = extract(epoch from now()) where id = ${low}`;
    });
    expect(await done[0]!).toEqual(answered(high));
  });

  test("the higher id committed first answers at once; the lower one committed later does not answer a wait already past it", async () => {
    const since = await maxId();
    const { done: first } = await startWaits([{ as: BOB, since, timeout: 15 }]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let low = 0;
    let lowStored!: () => void;
    const stored = new Promise<void>((r) => (lowStored = r));
    // The lower id is taken first and committed last.
    const lowCommit = s.db.sql.begin(async (tx) => {
      const [m] = await tx<{ id: string }[]>`
        insert into msg (version, from_addr, topic, type, size, filepath, time_sent)
        values (1, '@zed@remote.example', 'slow', 'text/plain', 0, '/nonexistent', extract(epoch from now()))
        returning id::text as id`;
      low = Number(m!.id);
      await tx`insert into msg_to (msg_id, addr) values (${low}, ${BOB})`;
      lowStored();
      await gate;
    });
    await stored;
    const high = await sentMessage(s, ALICE, [BOB]);
    expect(high).toBeGreaterThan(low);
    expect(await first[0]!).toEqual(answered(high));

    const { done: second } = await startWaits([{ as: BOB, since: high, timeout: 1 }]);
    release();
    await lowCommit;
    expect(await second[0]!).toEqual(NOTHING);
  });

  test("a NOTIFY naming a draft addressed to the identity does not answer its wait", async () => {
    const draft = await createDraft(s, ALICE, [BOB]);
    const { done } = await startWaits([{ as: BOB, since: draft - 1, timeout: 1 }]);
    await s.db.sql`select pg_notify('new_msg', ${`${draft},${BOB}`})`;
    expect(await done[0]!).toEqual(NOTHING);
  });

  test("a NOTIFY naming an address that is not among the message's recipients does not answer its wait", async () => {
    const carols = await sentMessage(s, ALICE, [CAROL]);
    const { done } = await startWaits([{ as: BOB, since: carols - 1, timeout: 1 }]);
    await s.db.sql`select pg_notify('new_msg', ${`${carols},${BOB}`})`;
    expect(await done[0]!).toEqual(NOTHING);
  });

  test("mail delivered to one address answers exactly that identity's waits, whatever their case, and nobody else's", async () => {
    const since = await maxId();
    const { done } = await startWaits([
      { as: "@Bob@Example.COM", since, timeout: 15 },
      { as: BOB, since, timeout: 15 },
      { as: CAROL, since, timeout: 1 },
      { as: DAVE, since, timeout: 1 },
    ]);
    const id = await storeUnsent(["@BOB@example.com"]);
    await s.db.sql`update msg set time_sent = extract(epoch from now()) where id = ${id}`;
    expect(await Promise.all(done)).toEqual([answered(id), answered(id), NOTHING, NOTHING]);
  });
});
