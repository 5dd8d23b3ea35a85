// InboxWaiters on its own: a plain latestIds function stands in for the catch-up query.
import { describe, expect, test } from "bun:test";
import { IN_DOUBT, InboxWaiters, LEFT, type LatestIds } from "../../src/realtime/inbox-waiters.ts";
import { until } from "../helpers/poll.ts";

const BOB = "@bob@example.com";
const CAROL = "@carol@other.org";
const DAVE = "@dave@third.net";
const LONG = 60_000;

type Pairs = Parameters<LatestIds>[0];

/** A controllable latestIds: `inbox` holds the newest id per lower-cased address. */
function fakeInbox() {
  const inbox = new Map<string, number>();
  const calls: Pairs[] = [];
  const answer = (pairs: Pairs) => {
    const out = new Map<string, number>();
    for (const p of pairs) {
      const id = inbox.get(p.addr);
      if (id !== undefined && id > p.sinceId) out.set(p.addr, id);
    }
    return out;
  };
  return { inbox, calls, answer };
}

/** A promise that can be settled from outside. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Observes whether a promise has settled yet, without waiting for it. */
function track<T>(p: Promise<T>) {
  const state = { settled: false, value: undefined as T | undefined };
  p.then((v) => {
    state.settled = true;
    state.value = v;
  });
  return state;
}

describe("InboxWaiters", () => {
  test("answers at once when the first check finds a newer id, and frees the waiter", async () => {
    const f = fakeInbox();
    f.inbox.set(BOB, 7);
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    expect(await w.wait(BOB, 6, LONG)).toBe(7);
    expect(f.calls).toEqual([[{ addr: BOB, sinceId: 6 }]]);
    expect(w.size).toBe(0);
  });

  test("the check asks for the address as the waiter spelled it (SQL decides who is who); a hint in another case wakes it", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    const bob = track(w.wait("@Bob@Example.COM", 0, LONG));
    await w.idle();
    expect(f.calls).toEqual([[{ addr: "@Bob@Example.COM", sinceId: 0 }]]);
    f.inbox.set("@Bob@Example.COM", 3);
    w.wake([BOB]);
    await until(() => bob.settled, "bob answered");
    expect(bob.value).toBe(3);
    expect(f.calls[1]).toEqual([{ addr: "@Bob@Example.COM", sinceId: 0 }]);
  });

  test("registers before the first check; a wake during that check leads to a second check", async () => {
    const f = fakeInbox();
    let w: InboxWaiters;
    const sizesSeen: number[] = [];
    w = new InboxWaiters(async (pairs) => {
      f.calls.push(pairs);
      sizesSeen.push(w.size);
      if (f.calls.length === 1) {
        // The query's snapshot is taken now; mail then commits and its NOTIFY wakes us mid-check.
        const snapshot = f.answer(pairs);
        f.inbox.set(BOB, 11);
        w.wake([BOB]);
        return snapshot;
      }
      return f.answer(pairs);
    });
    const answer = await w.wait(BOB, 10, LONG);
    expect(answer).toBe(11);
    expect(sizesSeen).toEqual([1, 1]);
    expect(f.calls).toEqual([[{ addr: BOB, sinceId: 10 }], [{ addr: BOB, sinceId: 10 }]]);
    expect(w.size).toBe(0);
  });

  test("concurrent wakes coalesce: many hints during a running check cost one more query", async () => {
    const f = fakeInbox();
    const gate = deferred();
    const w = new InboxWaiters(async (pairs) => {
      f.calls.push(pairs);
      const snapshot = f.answer(pairs); // taken when the query starts
      if (f.calls.length === 1) await gate.promise;
      return snapshot;
    });
    const bob = track(w.wait(BOB, 0, LONG));
    const carol = track(w.wait(CAROL, 0, LONG));
    const dave = track(w.wait(DAVE, 0, LONG));
    expect(w.size).toBe(3);
    expect(f.calls.length).toBe(1); // the first check (bob's) is still running
    for (let i = 0; i < 50; i++) w.wake([BOB, CAROL, "@DAVE@third.net"]);
    f.inbox.set(BOB, 5);
    f.inbox.set(DAVE, 6);
    gate.resolve();
    await w.idle();
    expect(f.calls.length).toBe(2);
    const second = [...f.calls[1]!].sort((a, b) => a.addr.localeCompare(b.addr));
    expect(second).toEqual([
      { addr: BOB, sinceId: 0 },
      { addr: CAROL, sinceId: 0 },
      { addr: DAVE, sinceId: 0 },
    ]);
    await until(() => bob.settled && dave.settled, "bob and dave answered");
    expect(bob.value).toBe(5);
    expect(dave.value).toBe(6);
    expect(carol.settled).toBe(false);
    expect(w.size).toBe(1);
    w.closeAll();
    await until(() => carol.settled, "carol answered");
    expect(carol.value).toBeNull();
  });

  test("waiters of one address with different since_ids: one query, each answered only above its own since_id", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    const low = track(w.wait(BOB, 5, LONG));
    const high = track(w.wait(BOB, 10, LONG));
    await w.idle();
    expect(w.size).toBe(2);
    f.calls.length = 0;
    f.inbox.set(BOB, 8);
    w.wake([BOB]);
    await w.idle();
    expect(f.calls).toEqual([[{ addr: BOB, sinceId: 5 }]]);
    await until(() => low.settled, "low answered");
    expect(low.value).toBe(8);
    expect(high.settled).toBe(false);
    expect(w.size).toBe(1);
    f.inbox.set(BOB, 12);
    w.wake([BOB]);
    await until(() => high.settled, "high answered");
    expect(high.value).toBe(12);
    expect(w.size).toBe(0);
  });

  test("a timeout says 'nothing new' only when a check answered and nothing was doubted since", async () => {
    const f = fakeInbox();
    let down = false;
    const w = new InboxWaiters(async (pairs) => {
      if (down) throw new Error("database unavailable");
      return f.answer(pairs);
    });
    // Its catch-up check answered: a plain timeout.
    expect(await w.wait(BOB, 0, 20)).toBeNull();
    // Its catch-up check failed: the timeout cannot say.
    down = true;
    expect(await w.wait(CAROL, 0, 20)).toBe(IN_DOUBT);
    // Checked while up, then the listener said notifications may be lost: in doubt until checked again.
    down = false;
    const dave = w.wait(DAVE, 0, 50);
    await w.idle();
    w.doubtAll();
    expect(await dave).toBe(IN_DOUBT);
    const again = w.wait(DAVE, 0, 50);
    await w.idle();
    w.doubtAll();
    w.wakeAll(); // the re-check that follows a heard heartbeat
    await w.idle();
    expect(await again).toBeNull();
  });

  test("a wake for an address nobody waits for runs no query", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    w.wake([BOB, CAROL]);
    await w.idle();
    expect(f.calls).toEqual([]);
  });

  test("closeAll answers every open wait with null, and later waits get null at once", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    const waits = [w.wait(BOB, 0, LONG), w.wait(BOB, 0, LONG), w.wait(CAROL, 0, LONG)];
    await w.idle();
    expect(w.size).toBe(3);
    w.closeAll();
    expect(await Promise.all(waits)).toEqual([null, null, null]);
    expect(w.size).toBe(0);
    const callsBefore = f.calls.length;
    f.inbox.set(BOB, 99);
    expect(await w.wait(BOB, 0, LONG)).toBeNull();
    expect(w.size).toBe(0);
    expect(f.calls.length).toBe(callsBefore);
  });

  test("abort frees the waiter at once and answers LEFT (the client went away); an already aborted signal registers nothing", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    const ac = new AbortController();
    const p = w.wait(BOB, 0, LONG, ac.signal);
    const other = track(w.wait(BOB, 0, LONG));
    expect(w.size).toBe(2);
    ac.abort();
    expect(w.size).toBe(1);
    expect(await p).toBe(LEFT);
    expect(other.settled).toBe(false);

    await w.idle();
    const gone = new AbortController();
    gone.abort();
    const callsBefore = f.calls.length;
    expect(await w.wait(CAROL, 0, LONG, gone.signal)).toBe(LEFT);
    expect(w.size).toBe(1);
    expect(f.calls.length).toBe(callsBefore);
    w.closeAll();
  });

  test("one signal for many waits (the event stream's): aborting it ends the open ones, never a settled one or someone else's", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    const stream = new AbortController();
    // Ten waits in a row on the same signal, each answered by mail before the next starts.
    for (let id = 1; id <= 10; id++) {
      const p = w.wait(BOB, id - 1, LONG, stream.signal);
      await w.idle();
      f.inbox.set(BOB, id);
      w.wake([BOB]);
      expect(await p).toBe(id);
    }
    const timedOut = await w.wait(BOB, 10, 10, stream.signal);
    expect(timedOut).toBeNull();
    // Two open at once on it, one on another signal, one on none.
    const a = track(w.wait(BOB, 10, LONG, stream.signal));
    const b = track(w.wait(CAROL, 0, LONG, stream.signal));
    const elsewhere = new AbortController();
    const c = track(w.wait(CAROL, 0, LONG, elsewhere.signal));
    const d = track(w.wait(DAVE, 0, LONG));
    await w.idle();
    expect(w.size).toBe(4);
    stream.abort();
    expect(w.size).toBe(2);
    await until(() => a.settled && b.settled, "both waits on the aborted signal answered");
    expect([a.value, b.value]).toEqual([LEFT, LEFT]);
    expect([c.settled, d.settled]).toEqual([false, false]);
    elsewhere.abort();
    expect(w.size).toBe(1);
    w.closeAll();
    expect(w.size).toBe(0);
  });

  test("timeout answers null and frees the waiter", async () => {
    const w = new InboxWaiters(async () => new Map());
    expect(await w.wait(BOB, 0, 20)).toBeNull();
    expect(w.size).toBe(0);
  });

  test("wakeAll re-checks every waiting address in one query", async () => {
    const f = fakeInbox();
    const w = new InboxWaiters(async (pairs) => (f.calls.push(pairs), f.answer(pairs)));
    const waits = [BOB, CAROL, DAVE].map((a, i) => w.wait(a, i, LONG));
    await w.idle();
    expect(w.size).toBe(3);
    f.calls.length = 0;
    f.inbox.set(BOB, 10).set(CAROL, 20).set(DAVE, 30);
    w.wakeAll();
    expect(await Promise.all(waits)).toEqual([10, 20, 30]);
    expect(f.calls.length).toBe(1);
    expect([...f.calls[0]!].sort((a, b) => a.addr.localeCompare(b.addr))).toEqual([
      { addr: BOB, sinceId: 0 },
      { addr: CAROL, sinceId: 1 },
      { addr: DAVE, sinceId: 2 },
    ]);
    expect(w.size).toBe(0);
  });

  test("a failing latestIds (rejecting or throwing) never throws out of wake(); waits survive and are answered later", async () => {
    const f = fakeInbox();
    const logs: Record<string, unknown>[] = [];
    let mode: "reject" | "throw" | "ok" = "reject";
    const w = new InboxWaiters(
      (pairs) => {
        f.calls.push(pairs);
        if (mode === "reject") return Promise.reject(new Error("connection refused"));
        if (mode === "throw") throw new Error("synchronous failure");
        return Promise.resolve(f.answer(pairs));
      },
      (line) => logs.push(line),
    );
    const bob = track(w.wait(BOB, 0, LONG));
    await w.idle();
    expect(bob.settled).toBe(false);
    expect(w.size).toBe(1);
    mode = "throw";
    expect(() => w.wake([BOB])).not.toThrow();
    await w.idle();
    expect(() => w.wakeAll()).not.toThrow();
    await w.idle();
    expect(bob.settled).toBe(false);
    expect(logs.length).toBeGreaterThanOrEqual(2);
    expect(logs.every((l) => l.level === "error" && l.msg === "inbox check failed")).toBe(true);
    expect(String(logs[0]!.error)).toContain("connection refused");
    expect(logs.some((l) => String(l.error).includes("synchronous failure"))).toBe(true);

    mode = "ok";
    f.inbox.set(BOB, 4);
    w.wake([BOB]);
    await until(() => bob.settled, "bob answered after the database came back");
    expect(bob.value).toBe(4);
    expect(w.size).toBe(0);
  });

  test("after a failed check the same waiters are re-checked by themselves", async () => {
    const f = fakeInbox();
    let fail = true;
    const w = new InboxWaiters(async (pairs) => {
      f.calls.push(pairs);
      if (fail) {
        fail = false;
        f.inbox.set(BOB, 9);
        throw new Error("transient");
      }
      return f.answer(pairs);
    });
    // No wake-up is sent: only the registry's own retry can answer this wait.
    expect(await w.wait(BOB, 0, LONG)).toBe(9);
    expect(f.calls.length).toBe(2);
  });
});
