// GET /fmsg/events: every event kind, from our routes and from fmsgd's writes; long poll and SSE; nothing lost or repeated
// across restarts, listener outages and pruning; commit order of interleaved transactions.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import { pruneEvents } from "../../src/db/events.ts";
import { CURSOR_AHEAD } from "../../src/http/routes/events.ts";
import { deliverFromAfar } from "../helpers/fmsgd.ts";
import { startIdentityStub, type IdentityStub } from "../helpers/identity-stub.ts";
import { ALICE, BOB, CAROL, createDraft, DAVE, errorOf, sendDraft, sentMessage } from "../helpers/messages.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(60_000);

const ADMIN_URL = process.env.FMSG_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

type Event = { seq: number; kind: string; id: number };
type Page = { events: Event[]; next: number };

/** One long-poll answer; without a timeout in `query`, one that answers at once. */
async function feed(s: TestServer, as: string, query: string): Promise<Page> {
  const res = await s.request("GET", `/fmsg/events?${query}${query.includes("timeout=") ? "" : "&timeout=0"}`, { as });
  expect(res.status).toBe(200);
  return (await res.json()) as Page;
}

/** The identity's current head: where a new reader starts. */
async function head(s: TestServer, as: string): Promise<number> {
  return (await feed(s, as, "timeout=0")).next;
}

/** (kind, id) pairs of a page, for comparisons that do not depend on seq numbers. */
const kinds = (events: Event[]) => events.map((e) => [e.kind, e.id]);

let stub: IdentityStub;
let s: TestServer;
beforeAll(async () => {
  stub = startIdentityStub("accepting");
  // FMSG_DOMAIN: the API delivers to example.com itself at send, so "delivered" comes from our own route too.
  s = await startTestServer({ identityUrl: stub.url, env: { FMSG_DOMAIN: "example.com" }, log: process.env.EVLOG ? (l) => console.log(Date.now(), JSON.stringify(l)) : undefined });
});
afterAll(async () => {
  await s.stop();
  await stub.stop();
});

describe("every event kind, from our routes", () => {
  test("send → new_msg to each recipient and delivered to the sender; read → read; add-to → new_msg and recipients_added", async () => {
    const [a, b, c, d] = [await head(s, ALICE), await head(s, BOB), await head(s, CAROL), await head(s, DAVE)];
    const id = await sentMessage(s, ALICE, [BOB, CAROL]);
    expect(kinds((await feed(s, BOB, `since=${b}`)).events)).toEqual([["new_msg", id]]);
    expect(kinds((await feed(s, CAROL, `since=${c}`)).events)).toEqual([["new_msg", id]]);
    // BOB is on FMSG_DOMAIN: delivered locally at send; CAROL waits for fmsgd.
    expect(kinds((await feed(s, ALICE, `since=${a}`)).events)).toEqual([["delivered", id]]);

    expect((await s.request("POST", `/fmsg/${id}/read`, { as: BOB })).status).toBe(200);
    const afterRead = await feed(s, ALICE, `since=${a}`);
    expect(kinds(afterRead.events)).toEqual([["delivered", id], ["read", id]]);

    expect((await s.request("POST", `/fmsg/${id}/add-to`, { as: ALICE, json: { add_to: [DAVE] } })).status).toBe(200);
    expect(kinds((await feed(s, DAVE, `since=${d}`)).events)).toEqual([["new_msg", id]]);
    expect(kinds((await feed(s, BOB, `since=${b}`)).events)).toEqual([["new_msg", id], ["recipients_added", id]]);
    expect(kinds((await feed(s, ALICE, `since=${afterRead.next}`)).events)).toEqual([["recipients_added", id]]);
    // Seqs only grow, and `next` is the last one returned.
    const all = await feed(s, BOB, `since=${b}`);
    expect(all.events[0]!.seq).toBeLessThan(all.events[1]!.seq);
    expect(all.next).toBe(all.events[1]!.seq);
  });

  test("a draft sent after newer mail arrived is announced (what /wait cannot see)", async () => {
    const cursor = await head(s, BOB);
    const old = await createDraft(s, ALICE, [BOB]);
    const newer = await sentMessage(s, ALICE, [BOB]);
    await sendDraft(s, ALICE, old);
    expect(kinds((await feed(s, BOB, `since=${cursor}`)).events)).toEqual([["new_msg", newer], ["new_msg", old]]);
  });

  test("another identity's events and a draft's pending add-to are never shown", async () => {
    const cursor = await head(s, DAVE);
    await createDraft(s, ALICE, [BOB], { add_to: [DAVE] });
    await createDraft(s, ALICE, [DAVE]);
    await sentMessage(s, ALICE, [BOB]);
    expect((await feed(s, DAVE, `since=${cursor}&timeout=0`)).events).toEqual([]);
  });

  test("addresses are matched case-insensitively", async () => {
    const cursor = await head(s, BOB);
    const id = await sentMessage(s, ALICE, ["@Bob@Example.com"]);
    expect(kinds((await feed(s, "@BOB@EXAMPLE.COM", `since=${cursor}`)).events)).toEqual([["new_msg", id]]);
  });
});

describe("every event kind, from rows written as fmsgd writes them", () => {
  test("a received message → new_msg; a delivery report → delivered; an add-to batch → new_msg and recipients_added", async () => {
    const [a, b] = [await head(s, ALICE), await head(s, BOB)];
    const [received] = await deliverFromAfar(s.db.sql, [BOB], "from afar");
    expect(kinds((await feed(s, BOB, `since=${b}`)).events)).toEqual([["new_msg", received!]]);

    const id = await sentMessage(s, ALICE, [CAROL]);
    await s.db.sql`update msg_to set time_delivered = extract(epoch from now()), response_code = 200 where msg_id = ${id}`;
    expect(kinds((await feed(s, ALICE, `since=${a}`)).events)).toEqual([["delivered", id]]);

    const c = await head(s, CAROL);
    // Another host added CAROL to the received message: fmsgd stores the batch and its rows in one transaction.
    await s.db.sql.begin(async (tx) => {
      const [batch] = await tx<{ id: number }[]>`
        insert into msg_add_to_batch (msg_id, add_to_from, time_added) values (${received!}, '@zed@remote.example', extract(epoch from now()))
        returning id`;
      await tx`insert into msg_add_to (msg_id, addr, batch_id) values (${received!}, ${CAROL}, ${batch!.id})`;
    });
    expect(kinds((await feed(s, CAROL, `since=${c}`)).events)).toEqual([["new_msg", received!]]);
    expect(kinds((await feed(s, BOB, `since=${b}`)).events)).toEqual([["new_msg", received!], ["recipients_added", received!]]);
  });
});

describe("cursor rules", () => {
  test.each([
    ["since=-1", "invalid since"],
    ["since=abc", "invalid since"],
    ["timeout=61", "invalid timeout"],
    ["timeout=x", "invalid timeout"],
  ])("%s → 400 %s", async (query, error) => {
    expect(await errorOf(await s.request("GET", `/fmsg/events?${query}`, { as: BOB }))).toEqual({ status: 400, error });
  });

  test("without since the reader starts at the head; timeout=0 answers at once with next = since", async () => {
    const now = await head(s, BOB);
    expect(await feed(s, BOB, `since=${now}&timeout=0`)).toEqual({ events: [], next: now });
    const id = await sentMessage(s, ALICE, [BOB]);
    expect(await head(s, BOB)).toBeGreaterThan(now);
    expect(kinds((await feed(s, BOB, `since=${now}`)).events)).toEqual([["new_msg", id]]);
  });

  test("a long poll waits for the next event and answers it", async () => {
    const cursor = await head(s, CAROL);
    const answer = feed(s, CAROL, `since=${cursor}&timeout=30`);
    await until(() => s.server.feed.size === 1, "the registered reader");
    await s.server.feed.idle();
    const id = await sentMessage(s, ALICE, [CAROL]);
    expect(kinds((await answer).events)).toEqual([["new_msg", id]]);
  });

  test("a long poll that hears nothing answers an empty page and the same cursor", async () => {
    const cursor = await head(s, "@nobody@example.com");
    expect(await feed(s, "@nobody@example.com", `since=${cursor}&timeout=1`)).toEqual({ events: [], next: cursor });
  });
});

/** The Server-Sent Events of one stream, parsed as they come. */
async function openStream(s: TestServer, as: string, headers: Record<string, string>) {
  const gone = new AbortController();
  const res = await fetch(`${s.url}/fmsg/events`, {
    headers: { authorization: `Bearer ${s.token(as)}`, accept: "text/event-stream", ...headers },
    signal: gone.signal,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/event-stream");
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    /** The next event (comments skipped): id, event and data lines. */
    async next(): Promise<{ id: string; event: string; data: Event }> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(block.split("\n").filter((l) => !l.startsWith(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]));
          if (fields.id === undefined) continue;
          return { id: fields.id, event: fields.event!, data: JSON.parse(fields.data!) as Event };
        }
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buffer += decoder.decode(value, { stream: true });
      }
    },
    /** Resolves when the server ends the stream. */
    async ended(): Promise<void> {
      for (;;) if ((await reader.read()).done) return;
    },
    close: () => gone.abort(),
  };
}

describe("Server-Sent Events", () => {
  test("id is the seq; a reconnect with Last-Event-ID resumes after it, missing nothing and repeating nothing", async () => {
    const cursor = await head(s, DAVE);
    const first = await sentMessage(s, ALICE, [DAVE]);
    const stream = await openStream(s, DAVE, { "last-event-id": String(cursor) });
    const e1 = await stream.next();
    expect([e1.event, e1.data.id]).toEqual(["new_msg", first]);
    expect(e1.id).toBe(String(e1.data.seq));
    // Live: an event committed while the stream is open arrives on it.
    const second = await sentMessage(s, BOB, [DAVE]);
    const e2 = await stream.next();
    expect([e2.event, e2.data.id]).toEqual(["new_msg", second]);
    stream.close();
    await until(() => s.server.feed.size === 0, "the stream's reader freed");

    const third = await sentMessage(s, ALICE, [DAVE]);
    const again = await openStream(s, DAVE, { "last-event-id": e2.id });
    const e3 = await again.next();
    expect([e3.event, e3.data.id]).toEqual(["new_msg", third]);
    again.close();
  });

  test("Last-Event-ID must be a seq", async () => {
    const res = await s.request("GET", "/fmsg/events", { as: DAVE, headers: { accept: "text/event-stream", "last-event-id": "x" } });
    expect(await errorOf(res)).toEqual({ status: 400, error: "invalid Last-Event-ID" });
  });
});

describe("retention", () => {
  test("a cursor below pruned events gets 410; one above them reads on; pruning goes in bounded batches", async () => {
    const cursor = await head(s, "@old@example.com");
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await sentMessage(s, ALICE, ["@old@example.com"]));
    const page = await feed(s, "@old@example.com", `since=${cursor}`);
    expect(page.events.map((e) => e.id)).toEqual(ids);
    const third = page.events[2]!.seq;
    // Everything up to the third event is older than the retention period.
    await s.db.sql`update fmsg_api_event set time = time - 31 * 86400 where seq <= ${third}`;
    expect(await pruneEvents(s.db.sql, 30, 2)).toBeGreaterThanOrEqual(3);
    const gone = await s.request("GET", `/fmsg/events?since=${cursor}`, { as: "@old@example.com" });
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { error: string }).error).toContain("re-list");
    expect((await s.request("GET", "/fmsg/events?since=0", { as: "@old@example.com" })).status).toBe(410);
    // A cursor at the pruned boundary or above it misses nothing.
    expect((await feed(s, "@old@example.com", `since=${third}`)).events.map((e) => e.id)).toEqual(ids.slice(3));
    // The head never goes back, even when everything was pruned.
    expect(await head(s, "@old@example.com")).toBeGreaterThanOrEqual(page.next);
  });
});

describe("a cursor beyond the head", () => {
  test("gets 410 telling the client to re-list (JSON and stream, however large); the head itself reads on", async () => {
    const now = await head(s, DAVE);
    for (const since of [String(now + 1), "99999999999999999999"]) {
      const res = await s.request("GET", `/fmsg/events?since=${since}&timeout=0`, { as: DAVE });
      expect(await errorOf(res)).toEqual({ status: 410, error: CURSOR_AHEAD });
      const stream = await s.request("GET", "/fmsg/events", { as: DAVE, headers: { accept: "text/event-stream", "last-event-id": since } });
      expect(await errorOf(stream)).toEqual({ status: 410, error: CURSOR_AHEAD });
    }
    const id = await sentMessage(s, ALICE, [DAVE]);
    expect((await feed(s, DAVE, `since=${now}`)).events.map((e) => e.id)).toEqual([id]);
  });
});

describe.skipIf(EMBEDDED)("PostgreSQL only: restart, listener outage, commit order", () => {
  test("a reader resuming with since after a server restart gets exactly what happened meanwhile", async () => {
    const db = s.db;
    const other = await startTestServer({ database: db });
    const cursor = await head(other, BOB);
    const before = await sentMessage(other, ALICE, [BOB]);
    const read = await feed(other, BOB, `since=${cursor}`);
    await other.stop(); // the database stays (it is the main server's)
    const [during] = await deliverFromAfar(db.sql, [BOB], "while the server was down");
    const again = await startTestServer({ database: db });
    try {
      const after = await feed(again, BOB, `since=${read.next}`);
      expect(kinds(read.events)).toEqual([["new_msg", before]]);
      expect(kinds(after.events)).toEqual([["new_msg", during!]]);
    } finally {
      await again.stop();
    }
  });

  test("a long poll open while the LISTEN connection is down is answered with the event committed meanwhile", async () => {
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      await s.db.sql`select 1`; // opens the connection that commits the mail during the outage
      const cursor = await head(s, CAROL);
      const answer = feed(s, CAROL, `since=${cursor}&timeout=60`);
      await until(() => s.server.feed.size === 1, "the registered reader");
      await s.server.feed.idle();
      await admin.unsafe(`alter database "${s.db.name}" allow_connections false`);
      let id: number | undefined;
      try {
        const killed = await admin<{ ok: boolean }[]>`
          select pg_terminate_backend(pid) as ok from pg_stat_activity
          where datname = ${s.db.name} and application_name = 'fmsg-webapi' and query ilike 'listen%'`;
        expect(killed.map((r) => r.ok)).toEqual([true]);
        [id] = await deliverFromAfar(s.db.sql, [CAROL], "during the outage");
        await until(() => s.server.feed.size === 0, "the reader answered", 70_000);
      } finally {
        await admin.unsafe(`alter database "${s.db.name}" allow_connections true`);
      }
      const page = await answer;
      expect(kinds(page.events)).toEqual([["new_msg", id!]]);
      // Read on from there: nothing twice.
      expect((await feed(s, CAROL, `since=${page.next}&timeout=0`)).events).toEqual([]);
    } finally {
      await admin.end({ timeout: 5 });
    }
  }, 90_000); // the wait may run its full 60 s: an empty answer then can only mean a lost event

  test("of two interleaved transactions, a read in between never returns the later seq and then misses the earlier one", async () => {
    const cursor = await head(s, "@order@example.com");
    const first = await createDraft(s, ALICE, ["@order@example.com"]);
    const second = await createDraft(s, ALICE, ["@order@example.com"]);
    const c1 = postgres(s.db.url, { max: 1, onnotice: () => {} });
    const c2 = postgres(s.db.url, { max: 1, onnotice: () => {} });
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let tookSeq!: () => void;
      const took = new Promise<void>((r) => (tookSeq = r));
      // The first transaction sends and runs its deferred triggers now (it has its seq), then stays open.
      const t1 = c1.begin(async (tx) => {
        await tx`update msg set time_sent = extract(epoch from now()) where id = ${first}`;
        await tx`set constraints all immediate`;
        tookSeq();
        await held;
      });
      await took;
      // The second sends and commits (or waits to).
      let t2done = false;
      const t2 = c2`update msg set time_sent = extract(epoch from now()) where id = ${second}`.then(() => (t2done = true));
      await until(
        async () => t2done || (await s.db.sql`select 1 from pg_locks where locktype = 'advisory' and not granted`).length > 0,
        "the second transaction committed or waiting",
      );
      const between = await feed(s, "@order@example.com", `since=${cursor}&timeout=0`);
      release();
      await t1;
      await t2;
      const after = await feed(s, "@order@example.com", `since=${between.next}&timeout=0`);
      // Read as a client reads: whatever the first answer held, the two together hold both, once each.
      expect([...between.events, ...after.events].map((e) => e.id).sort((x, y) => x - y)).toEqual([first, second]);
    } finally {
      await c1.end({ timeout: 5 });
      await c2.end({ timeout: 5 });
    }
  });
});

test("server shutdown ends an open event stream", async () => {
  const own = await startTestServer();
  const stream = await openStream(own, BOB, {});
  await own.stop();
  await stream.ended();
});
