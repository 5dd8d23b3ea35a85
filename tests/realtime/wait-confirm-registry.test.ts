// InboxWaiters answering from notifications (docs/API.md §8): the real confirmation and catch-up queries on a real database, notifications handed in as the listener does.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { latestInboxIds } from "../../src/db/messages.ts";
import { openPool, type Sql } from "../../src/db/pool.ts";
import { confirmNotified } from "../../src/db/wake-confirm.ts";
import { InboxWaiters, type ConfirmNotified, type LatestIds } from "../../src/realtime/inbox-waiters.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, CAROL } from "../helpers/messages.ts";
import { EMBEDDED } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const LONG = 60_000;

/** Observes whether a promise has settled yet, without waiting for it. */
function track<T>(p: Promise<T>) {
  const state = { settled: false, value: undefined as T | undefined };
  void p.then((v) => {
    state.settled = true;
    state.value = v;
  });
  return state;
}

/** Polls a condition (never a fixed sleep as synchronisation), failing after `ms`. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

/** A message as fmsgd stores one: sent (or a draft when `sent` is false), with its `to` rows; returns its id. */
async function store(pool: Sql, to: string[], opts: { sent?: boolean; from?: string } = {}): Promise<number> {
  return pool.begin(async (tx) => {
    const [m] = await tx<{ id: number }[]>`
      insert into msg (version, from_addr, topic, type, size, filepath, time_sent)
      values (1, ${opts.from ?? ALICE}, 't', 'text/plain', 0, '/nonexistent',
        case when ${opts.sent ?? true} then extract(epoch from now()) end)
      returning id`;
    for (const addr of to) await tx`insert into msg_to (msg_id, addr) values (${m!.id}, ${addr})`;
    return m!.id;
  });
}

/** A registry on `pool` that counts its full per-address queries and its confirmations. */
function registry(pool: Sql, confirmFails = 0) {
  const full: Parameters<LatestIds>[0][] = [];
  const confirms: Parameters<ConfirmNotified>[0][] = [];
  let failures = confirmFails;
  const w = new InboxWaiters(
    (pairs) => (full.push(pairs), latestInboxIds(pool, pairs)),
    () => {},
    (candidates) => {
      confirms.push(candidates);
      if (failures > 0) {
        failures--;
        return Promise.reject(new Error("connection lost"));
      }
      return confirmNotified(pool, candidates);
    },
  );
  return { w, full, confirms };
}

/** The highest id in the database: nothing for anyone lies above it. */
async function maxId(pool: Sql): Promise<number> {
  const [row] = await pool<{ id: number }[]>`select coalesce(max(id), 0)::int8 as id from msg`;
  return row!.id;
}

describe.skipIf(EMBEDDED)("InboxWaiters answering from notifications (UTF-8 database)", () => {
  let db: TestDatabase;
  let pool: Sql;
  beforeAll(async () => {
    db = await createTestDatabase();
    pool = openPool({ url: db.url, max: 4 });
  });
  afterAll(async () => {
    await pool.end({ timeout: 5 });
    await db.drop();
  });

  test("a notification for mail sent to the address answers its waiter after one confirmation, without the full query", async () => {
    const { w, full, confirms } = registry(pool);
    const bob = track(w.wait(BOB, await maxId(pool), LONG));
    await w.idle();
    expect(full.length).toBe(1); // the catch-up at registration
    const id = await store(pool, [BOB]);
    w.wake([BOB], id);
    await until(() => bob.settled, "bob answered");
    expect(bob.value).toBe(id);
    expect(confirms.length).toBe(1);
    expect(full.length).toBe(1);
  });

  test("notifications for one address arriving out of id order: the highest confirmed id answers", async () => {
    const { w } = registry(pool);
    const bob = track(w.wait(BOB, await maxId(pool), LONG));
    await w.idle();
    const low = await store(pool, [BOB]);
    const high = await store(pool, [BOB]);
    expect(high).toBeGreaterThan(low);
    // As one read of the LISTEN connection delivers them: the higher id's NOTIFY first.
    w.wake([BOB], high);
    w.wake([BOB], low);
    await until(() => bob.settled, "bob answered");
    expect(bob.value).toBe(high);

    // In separate batches, low last: a waiter already past `high` is not answered by `low`.
    const past = track(w.wait(BOB, high, LONG));
    await w.idle();
    w.wake([BOB], high);
    await w.idle();
    w.wake([BOB], low);
    await w.idle();
    expect(past.settled).toBe(false);
    w.closeAll();
    await until(() => past.settled, "closed");
    expect(past.value).toBeNull();
  });

  test("a notification for a draft, or for mail to someone else, leaves the waiter waiting; real mail then answers it", async () => {
    const { w } = registry(pool);
    const bob = track(w.wait(BOB, await maxId(pool), LONG));
    await w.idle();
    const draft = await store(pool, [BOB], { sent: false });
    const carols = await store(pool, [CAROL]);
    w.wake([BOB], draft);
    w.wake([BOB], carols);
    await w.idle();
    expect(bob.settled).toBe(false);
    expect(w.size).toBe(1);
    const mail = await store(pool, [BOB]);
    w.wake([BOB], mail);
    await until(() => bob.settled, "bob answered");
    expect(bob.value).toBe(mail);
  });

  test("a notification wakes exactly the waiters of its identity, in every spelling lower() folds together, each above its own since_id", async () => {
    const { w } = registry(pool);
    const since = await maxId(pool);
    const waits = {
      exact: track(w.wait(BOB, since, LONG)),
      upper: track(w.wait("@BOB@EXAMPLE.COM", since, LONG)),
      mixed: track(w.wait("@Bob@Example.com", since, LONG)),
      carol: track(w.wait(CAROL, since, LONG)),
      near: track(w.wait("@bob@example.co", since, LONG)),
    };
    await w.idle();
    const id = await store(pool, [BOB]);
    const ahead = track(w.wait(BOB, id, LONG));
    await w.idle();
    w.wake([BOB], id);
    await w.idle();
    await until(() => waits.exact.settled && waits.upper.settled && waits.mixed.settled, "bob's three spellings answered");
    expect([waits.exact.value, waits.upper.value, waits.mixed.value]).toEqual([id, id, id]);
    expect([waits.carol.settled, waits.near.settled, ahead.settled]).toEqual([false, false, false]);
    w.closeAll();
  });

  test("other spellings only at the start of a batch (the array of them is cut short): every waiter answered by one query", async () => {
    const { w, confirms, full } = registry(pool);
    const since = await maxId(pool);
    // Registered first, so the batch's first candidate is the only one spelt unlike its notification.
    const upper = track(w.wait("@BOB@EXAMPLE.COM", since, LONG));
    const bob = track(w.wait(BOB, since, LONG));
    const carol = track(w.wait(CAROL, since, LONG));
    await w.idle();
    const fullBefore = full.length;
    const toBob = await store(pool, [BOB]);
    const toCarol = await store(pool, [CAROL]);
    w.wake([BOB], toBob);
    w.wake([CAROL], toCarol);
    await until(() => upper.settled && bob.settled && carol.settled, "all three answered");
    expect([upper.value, bob.value, carol.value]).toEqual([toBob, toBob, toCarol]);
    expect(confirms.length).toBe(1);
    expect(confirms[0]!.map((c) => c.addr)).toEqual(["@BOB@EXAMPLE.COM", BOB, CAROL]);
    expect(full.length).toBe(fullBefore);
  });

  test("PostgreSQL's lower() decides, not JavaScript's: @İsmail and @ismail are one identity here", async () => {
    // JavaScript lowers İ to "i̇" (with a combining dot), so its folding would keep these apart.
    expect("@İsmail@example.com".toLowerCase()).not.toBe("@ismail@example.com");
    const { w } = registry(pool);
    const since = await maxId(pool);
    const dotted = track(w.wait("@İsmail@example.com", since, LONG));
    const plain = track(w.wait("@ismail@example.com", since, LONG));
    await w.idle();
    const toPlain = await store(pool, ["@ismail@example.com"]);
    w.wake(["@ismail@example.com"], toPlain);
    await until(() => dotted.settled && plain.settled, "both spellings answered");
    expect([dotted.value, plain.value]).toEqual([toPlain, toPlain]);
  });

  test("many notifications arriving together are confirmed by one query and answer every waiter", async () => {
    const { w, confirms, full } = registry(pool);
    const since = await maxId(pool);
    const addrs = Array.from({ length: 300 }, (_, i) => `@many${i}@example.com`);
    const waits = addrs.map((a) => track(w.wait(a, since, LONG)));
    await w.idle();
    const fullBefore = full.length;
    const ids: number[] = [];
    for (const a of addrs) ids.push(await store(pool, [a]));
    addrs.forEach((a, i) => w.wake([a], ids[i]));
    await until(() => waits.every((t) => t.settled), "every waiter answered");
    expect(waits.map((t) => t.value)).toEqual(ids);
    expect(confirms.length).toBe(1);
    expect(full.length).toBe(fullBefore);
  });

  test("a notification spelling the address unlike the stored row is in doubt: the full query answers it", async () => {
    const { w, full } = registry(pool);
    const bob = track(w.wait(BOB, await maxId(pool), LONG));
    await w.idle();
    const id = await store(pool, [BOB]);
    const fullBefore = full.length;
    w.wake(["@BOB@EXAMPLE.COM"], id); // no trigger writes this spelling for the row "@bob@example.com"
    await until(() => bob.settled, "bob answered");
    expect(bob.value).toBe(id);
    expect(full.length).toBe(fullBefore + 1);
  });

  test("the sender told of an add-to to its own message is not concerned: no answer, no full query", async () => {
    const { w, full, confirms } = registry(pool);
    const alice = track(w.wait(ALICE, await maxId(pool), LONG));
    await w.idle();
    const fullBefore = full.length;
    // recipients_added names every participant, the sender too; her inbox holds nothing new.
    const id = await store(pool, [BOB], { from: ALICE });
    w.wake([ALICE], id);
    await w.idle();
    expect(confirms.length).toBe(1);
    expect(full.length).toBe(fullBefore);
    expect(alice.settled).toBe(false);
    w.closeAll();
  });

  test("a failed confirmation hands its waiters to the full query, which answers them", async () => {
    const { w, full } = registry(pool, 1);
    const bob = track(w.wait(BOB, await maxId(pool), LONG));
    await w.idle();
    const id = await store(pool, [BOB]);
    w.wake([BOB], id);
    await until(() => bob.settled, "bob answered by the retry");
    expect(bob.value).toBe(id);
    expect(full.length).toBe(2);
  });

  test("the catch-up and the re-check after lost notifications stay the full query", async () => {
    const { w, full, confirms } = registry(pool);
    const bob = track(w.wait(BOB, await maxId(pool), LONG));
    await w.idle();
    // Committed while nobody listened: no notification ever names it.
    const id = await store(pool, [BOB]);
    w.wakeAll();
    await until(() => bob.settled, "bob answered by the re-check");
    expect(bob.value).toBe(id);
    expect(full.length).toBe(2);
    expect(confirms.length).toBe(0);
    // A new waiter's catch-up finds it too.
    expect(await w.wait(BOB, id - 1, LONG)).toBe(id);
  });
});

describe.skipIf(EMBEDDED)("InboxWaiters answering from notifications (C ctype: lower() folds ASCII only)", () => {
  let db: TestDatabase;
  let pool: Sql;
  beforeAll(async () => {
    db = await createTestDatabase({ ctype: "C" });
    pool = openPool({ url: db.url, max: 2 });
  });
  afterAll(async () => {
    await pool.end({ timeout: 5 });
    await db.drop();
  });

  test("@Émile and @émile are two identities: mail to one does not answer the other", async () => {
    // JavaScript's folding would call them one.
    expect("@Émile@example.com".toLowerCase()).toBe("@émile@example.com");
    const { w } = registry(pool);
    const since = await maxId(pool);
    const upper = track(w.wait("@Émile@example.com", since, LONG));
    const lower = track(w.wait("@émile@EXAMPLE.com", since, LONG));
    await w.idle();
    const id = await store(pool, ["@émile@example.com"]);
    w.wake(["@émile@example.com"], id);
    await until(() => lower.settled, "@émile answered");
    await w.idle();
    expect(lower.value).toBe(id);
    expect(upper.settled).toBe(false);
    const other = await store(pool, ["@Émile@example.com"]);
    w.wake(["@Émile@example.com"], other);
    await until(() => upper.settled, "@Émile answered");
    expect(upper.value).toBe(other);
  });
});
