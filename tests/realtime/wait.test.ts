// GET /fmsg/wait end to end (docs/API.md §8): a real server, its own database, and fmsgd played through SQL.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import { openPool } from "../../src/db/pool.ts";
import { startInboxListener } from "../../src/realtime/inbox-listener.ts";
import { createTestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, CAROL, DAVE, createDraft, sentMessage } from "../helpers/messages.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";

// The long-poll tests wait up to 15 s by design (bunfig's [test] timeout is not applied by this Bun).
setDefaultTimeout(20_000);

const ADMIN_URL = process.env.FMSG_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

let s: TestServer;
let admin: postgres.Sql;

beforeAll(async () => {
  s = await startTestServer();
  admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await s.stop();
  await admin.end({ timeout: 5 });
});
afterEach(async () => {
  // Every test leaves no open wait behind (a stray one would confuse the next test's size checks).
  await until(() => s.server.waiters.size === 0, "no open waits left");
});

type WaitResult = { status: number; body: unknown; text: string };

async function result(res: Response): Promise<WaitResult> {
  const text = await res.text();
  let body: unknown = null;
  if (text !== "") body = JSON.parse(text);
  return { status: res.status, body, text };
}

function wait(t: TestServer, as: string, query: string): Promise<WaitResult> {
  return t.request("GET", `/fmsg/wait${query}`, { as }).then(result);
}

/**
 * Starts a wait and resolves once the registry holds `expectSize` waits. The response is wrapped:
 * an async function returning a bare promise would wait for the response itself.
 */
async function startWait(t: TestServer, as: string, query: string, expectSize = 1): Promise<{ done: Promise<WaitResult> }> {
  const done = wait(t, as, query);
  await until(() => t.server.waiters.size >= expectSize, `${expectSize} registered wait(s)`);
  return { done };
}

function has(id: number) {
  return { status: 200, body: { has_new: true, latest_id: id } };
}
const NOTHING = { status: 204, body: null, text: "" };

/** The highest message id in the database (drafts included): nothing for anyone lies above it. */
async function maxId(t: TestServer = s): Promise<number> {
  const [row] = await t.db.sql`select coalesce(max(id), 0)::text as id from msg`;
  return Number(row!.id);
}

/** Plays fmsgd: a received message inserted already sent, with its recipients, in one transaction. */
async function fmsgdDeliver(t: TestServer, to: string[], from = "@zed@remote.example"): Promise<number> {
  return t.db.sql.begin(async (tx) => {
    const [m] = await tx`
      insert into msg (version, from_addr, topic, type, size, filepath, time_sent)
      values (1, ${from}, 'from afar', 'text/plain', 0, '/nonexistent', extract(epoch from now()))
      returning id::text as id`;
    const id = Number(m!.id);
    for (const addr of to) await tx`insert into msg_to (msg_id, addr) values (${id}, ${addr})`;
    return id;
  });
}

async function addTo(t: TestServer, as: string, id: number, addrs: string[]): Promise<void> {
  const res = await t.request("POST", `/fmsg/${id}/add-to`, { as, json: { add_to: addrs } });
  expect({ status: res.status, body: await res.json() }).toEqual({ status: 200, body: { id, added: addrs.length } });
}

async function send(t: TestServer, as: string, id: number): Promise<void> {
  const res = await t.request("POST", `/fmsg/${id}/send`, { as });
  expect(res.status).toBe(200);
}

describe("GET /fmsg/wait: input", () => {
  for (const bad of ["-1", "abc", "1.5"]) {
    test(`since_id=${bad} → 400 invalid since_id`, async () => {
      expect(await wait(s, BOB, `?since_id=${bad}&timeout=1`)).toMatchObject({ status: 400, body: { error: "invalid since_id" } });
    });
  }
  for (const bad of ["0", "61", "abc"]) {
    test(`timeout=${bad} → 400 invalid timeout`, async () => {
      expect(await wait(s, BOB, `?since_id=0&timeout=${bad}`)).toMatchObject({ status: 400, body: { error: "invalid timeout" } });
    });
  }

  test("no token → 401, and nothing is registered", async () => {
    const res = await s.request("GET", "/fmsg/wait?timeout=1", { as: null });
    expect(res.status).toBe(401);
    expect(s.server.waiters.size).toBe(0);
  });

  test("defaults: no query at all answers from since_id 0 at once", async () => {
    const id = await sentMessage(s, ALICE, ["@defaults@example.com"]);
    expect(await wait(s, "@defaults@example.com", "")).toMatchObject(has(id));
  });

  test("default timeout (25 s) waits instead of answering 204 at once, and is answered by new mail", async () => {
    const since = await maxId();
    const { done: p } = await startWait(s, "@defaults2@example.com", `?since_id=${since}`);
    const id = await sentMessage(s, ALICE, ["@defaults2@example.com"]);
    expect(await p).toMatchObject(has(id));
  });

  test("timeout=60 is accepted", async () => {
    const id = await sentMessage(s, ALICE, ["@sixty@example.com"]);
    expect(await wait(s, "@sixty@example.com", `?since_id=${id - 1}&timeout=60`)).toMatchObject(has(id));
  });

  test("an identity with no mail at all: 204 at timeout with no body", async () => {
    expect(await wait(s, "@nobody@example.com", "?timeout=1")).toEqual(NOTHING);
  });
});

describe("GET /fmsg/wait: immediate answers", () => {
  test("200 with the highest sent id above since_id among to and add-to recipients; drafts and others' mail ignored", async () => {
    const viaTo = await sentMessage(s, ALICE, [BOB, CAROL]);
    const viaAddTo = await sentMessage(s, ALICE, [CAROL]);
    await addTo(s, ALICE, viaAddTo, [BOB]);
    const notBobs = await sentMessage(s, ALICE, [CAROL]);
    const draft = await createDraft(s, ALICE, [BOB]);
    expect(notBobs).toBeGreaterThan(viaAddTo);
    expect(draft).toBeGreaterThan(notBobs);

    expect(await wait(s, BOB, `?since_id=${viaTo - 1}&timeout=1`)).toMatchObject(has(viaAddTo));
    expect(await wait(s, BOB, `?since_id=${viaTo}&timeout=1`)).toMatchObject(has(viaAddTo));
    expect(await wait(s, BOB, "?since_id=0&timeout=1")).toMatchObject(has(viaAddTo));
    // The add-to message is bob's newest; the later one to carol and his draft do not count.
    expect(await wait(s, BOB, `?since_id=${viaAddTo}&timeout=1`)).toEqual(NOTHING);
    expect(await wait(s, CAROL, `?since_id=${viaAddTo}&timeout=1`)).toMatchObject(has(notBobs));
  });

  test("since_id at or above the newest id waits and answers 204 at timeout", async () => {
    const newest = await sentMessage(s, ALICE, [BOB]);
    expect(await wait(s, BOB, `?since_id=${newest}&timeout=1`)).toEqual(NOTHING);
    expect(await wait(s, BOB, `?since_id=${newest + 1000}&timeout=1`)).toEqual(NOTHING);
    expect(await wait(s, BOB, "?since_id=99999999999999999999&timeout=1")).toEqual(NOTHING);
  });

  test("the address is matched case-insensitively both ways", async () => {
    const id = await sentMessage(s, ALICE, ["@MiXeD@Example.com"]);
    expect(await wait(s, "@mixed@example.com", `?since_id=${id - 1}&timeout=1`)).toMatchObject(has(id));
    expect(await wait(s, "@MIXED@EXAMPLE.COM", `?since_id=${id - 1}&timeout=1`)).toMatchObject(has(id));
  });
});

describe("GET /fmsg/wait: woken while waiting", () => {
  test("by a send through the API", async () => {
    const since = await maxId();
    const id = await createDraft(s, ALICE, [BOB]);
    const { done: p } = await startWait(s, BOB, `?since_id=${since}&timeout=15`);
    await send(s, ALICE, id);
    expect(await p).toMatchObject(has(id));
  });

  // fmsgd writes through its own connection: PostgreSQL only (the embedded database has one).
  test.skipIf(EMBEDDED)("by a message fmsgd inserts already sent", async () => {
    const since = await maxId();
    const { done: p } = await startWait(s, BOB, `?since_id=${since}&timeout=15`);
    const id = await fmsgdDeliver(s, [BOB]);
    expect(await p).toMatchObject(has(id));
  });

  test("by an add-to that adds the identity to an older sent message", async () => {
    const old = await sentMessage(s, ALICE, [CAROL]);
    // `old` is the newest message of all, so bob has nothing above old - 1 until he is added.
    expect(await maxId()).toBe(old);
    const { done: p } = await startWait(s, BOB, `?since_id=${old - 1}&timeout=15`);
    await addTo(s, ALICE, old, [BOB]);
    expect(await p).toMatchObject(has(old));
  });

  test("case-insensitively: a wait by @Bob@Example.com is woken by mail to @bob@example.com", async () => {
    const since = await maxId();
    const { done: p } = await startWait(s, "@Bob@Example.com", `?since_id=${since}&timeout=15`);
    const id = await sentMessage(s, ALICE, [BOB]);
    expect(await p).toMatchObject(has(id));
  });

  // fmsgd writes through its own connection: PostgreSQL only (the embedded database has one).
  test.skipIf(EMBEDDED)("case-insensitively: a wait by @bob@example.com is woken by fmsgd mail to @BOB@EXAMPLE.COM", async () => {
    const since = await maxId();
    const { done: p } = await startWait(s, BOB, `?since_id=${since}&timeout=15`);
    const id = await fmsgdDeliver(s, ["@BOB@EXAMPLE.COM"]);
    expect(await p).toMatchObject(has(id));
  });

  test("20 waits for one address are all answered by one send", async () => {
    const since = await maxId();
    const waits = Array.from({ length: 20 }, () => wait(s, BOB, `?since_id=${since}&timeout=15`));
    await until(() => s.server.waiters.size === 20, "20 registered waits");
    const id = await sentMessage(s, ALICE, [BOB]);
    const results = await Promise.all(waits);
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    for (const r of results) expect(r.body).toEqual({ has_new: true, latest_id: id });
  });
});

describe("GET /fmsg/wait: no wake-up", () => {
  test("a draft addressed to the identity (created, not sent) → 204", async () => {
    const since = await maxId();
    const { done: p } = await startWait(s, BOB, `?since_id=${since}&timeout=1`);
    await createDraft(s, ALICE, [BOB]);
    expect(await p).toEqual(NOTHING);
  });

  test("mail sent to another identity → 204 for bob, 200 for the recipient", async () => {
    const since = await maxId();
    const bob = wait(s, BOB, `?since_id=${since}&timeout=1`);
    const carol = wait(s, CAROL, `?since_id=${since}&timeout=15`);
    await until(() => s.server.waiters.size === 2, "bob's and carol's waits");
    const id = await sentMessage(s, ALICE, [CAROL]);
    expect(await carol).toMatchObject(has(id));
    expect(await bob).toEqual(NOTHING);
  });

  test("a hint without new mail (someone else added to an older message of bob's) → 204", async () => {
    const older = await sentMessage(s, ALICE, [BOB]);
    const since = await maxId();
    const { done: p } = await startWait(s, BOB, `?since_id=${since}&timeout=1`);
    // recipients_added notifies every participant, bob included; his query still finds nothing new.
    await addTo(s, ALICE, older, [DAVE]);
    expect(await p).toEqual(NOTHING);
  });
});

describe("GET /fmsg/wait: an answer given after waiting", () => {
  // The wait's answer is built after its middleware chain has finished (src/http/parked.ts): it must
  // still carry what every answer carries, and be logged and counted with its real status.
  const lines: Record<string, unknown>[] = [];
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: { FMSG_API_LOG: "info", FMSG_API_METRICS: "true", FMSG_CORS_ORIGINS: "https://app.example" },
      log: (l) => lines.push(l),
    });
  });
  afterAll(() => t.stop());

  const headersOf = (res: Response) => ({
    requestId: res.headers.get("x-request-id"),
    profile: res.headers.get("fmsg-profile"),
    limit: res.headers.get("ratelimit-limit"),
    origin: res.headers.get("access-control-allow-origin"),
    vary: res.headers.get("vary"),
    type: res.headers.get("content-type"),
  });
  const request = (query: string, id: string, method = "GET") =>
    t.request(method, `/fmsg/wait${query}`, { as: BOB, headers: { "x-request-id": id, origin: "https://app.example", "fmsg-profile": "fmsg-003" } });

  test("woken: 200 with the JSON body, the client's request id, its profile, the limit and CORS headers; logged and counted as 200", async () => {
    const since = await maxId(t);
    const id = await createDraft(t, ALICE, [BOB]);
    const answer = request(`?since_id=${since}&timeout=15`, "late-200");
    await until(() => t.server.waiters.size === 1, "the wait registered");
    expect(lines.some((l) => l.request_id === "late-200")).toBe(false); // not logged before it is answered
    await send(t, ALICE, id);
    const res = await answer;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ has_new: true, latest_id: id });
    expect(headersOf(res)).toMatchObject({ requestId: "late-200", profile: "fmsg-003", origin: "https://app.example", vary: "Origin", type: "application/json" });
    expect(Number(headersOf(res).limit)).toBeGreaterThan(0);
    expect(lines.filter((l) => l.request_id === "late-200")).toMatchObject([{ msg: "request", method: "GET", path: "/fmsg/wait", status: 200 }]);
    const metrics = await (await t.request("GET", "/metrics", { as: null })).text();
    expect(metrics).toContain('fmsg_api_requests_total{method="GET",route="/fmsg/wait",status="200"} 1');
  });

  test("timed out: 204 with no body and no Content-Type, the same headers otherwise; logged as 204", async () => {
    const res = await request(`?since_id=${await maxId(t)}&timeout=1`, "late-204");
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    expect(headersOf(res)).toMatchObject({ requestId: "late-204", profile: "fmsg-003", origin: "https://app.example", type: null });
    expect(lines.filter((l) => l.request_id === "late-204")).toMatchObject([{ path: "/fmsg/wait", status: 204 }]);
  });

  test("HEAD waits too, and is answered by the wake-up", async () => {
    const since = await maxId(t);
    const id = await createDraft(t, ALICE, [BOB]);
    const answer = request(`?since_id=${since}&timeout=15`, "late-head", "HEAD");
    await until(() => t.server.waiters.size === 1, "the HEAD wait registered");
    await send(t, ALICE, id);
    const res = await answer;
    expect(res.status).toBe(200);
    expect(headersOf(res)).toMatchObject({ requestId: "late-head", type: "application/json" });
  });
});

describe("GET /fmsg/wait: resources", () => {
  test("a client that disconnects frees its waiter at once", async () => {
    const since = await maxId();
    const ac = new AbortController();
    const p = fetch(`${s.url}/fmsg/wait?since_id=${since}&timeout=30`, {
      headers: { authorization: `Bearer ${s.token(BOB)}` },
      signal: ac.signal,
    });
    const outcome = p.then(
      () => "answered",
      (err: unknown) => (err instanceof Error ? err.name : String(err)),
    );
    await until(() => s.server.waiters.size === 1, "the wait registered");
    ac.abort();
    expect(await outcome).toBe("AbortError");
    await until(() => s.server.waiters.size === 0, "the waiter freed after the disconnect");
  });

  // fmsgd writes through its own connection: PostgreSQL only (the embedded database has one).
  test.skipIf(EMBEDDED)("200 concurrent waits hold at most pool size + 1 listener connections, and one fmsgd message answers them all", async () => {
    const since = await maxId();
    const addrs = Array.from({ length: 200 }, (_, i) => `@many${i}@example.com`);
    const waits = addrs.map((a) => wait(s, a, `?since_id=${since}&timeout=30`));
    await until(() => s.server.waiters.size === 200, "200 registered waits", 15000);
    const rows = await admin<{ pid: number; query: string }[]>`
      select pid, query from pg_stat_activity
      where datname = ${s.db.name} and application_name = 'fmsg-webapi'`;
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(rows.length).toBeLessThanOrEqual(s.config.poolSize + 1);
    expect(s.config.poolSize).toBe(4);
    expect(rows.filter((r) => /^listen/i.test(r.query)).length).toBe(1);

    const id = await fmsgdDeliver(s, addrs);
    const results = await Promise.all(waits);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    for (const r of results) expect(r.body).toEqual({ has_new: true, latest_id: id });
  });
});

describe("GET /fmsg/wait: shutdown", () => {
  test("stopping the server answers open waits with 204 and does not hang on them", async () => {
    const t = await startTestServer();
    let stopped = false;
    try {
      const waits = [wait(t, BOB, "?since_id=0&timeout=60"), wait(t, CAROL, "?since_id=0&timeout=60")];
      await until(() => t.server.waiters.size === 2, "both waits registered");
      const stopping = t.stop().then(() => (stopped = true));
      expect(await Promise.all(waits)).toEqual([NOTHING, NOTHING]);
      expect(t.server.waiters.size).toBe(0);
      await stopping;
      expect(stopped).toBe(true);
    } finally {
      if (!stopped) await t.stop();
    }
  });
});

// The LISTEN connection exists only with PostgreSQL.
describe.skipIf(EMBEDDED)("GET /fmsg/wait: listener outage", () => {
  let o: TestServer;
  beforeAll(async () => {
    o = await startTestServer({ heartbeatMs: 100 });
  });
  afterAll(async () => {
    await admin.unsafe(`alter database "${o.db.name}" allow_connections true`);
    await o.stop();
  });
  afterEach(async () => {
    await until(() => o.server.waiters.size === 0, "no open waits left on the outage server");
  });

  /** Terminates the server's LISTEN connection (the one whose last query was LISTEN). */
  async function killListener(): Promise<number> {
    const rows = await admin<{ ok: boolean }[]>`
      select pg_terminate_backend(pid) as ok from pg_stat_activity
      where datname = ${o.db.name} and application_name = 'fmsg-webapi' and query ilike 'listen%'`;
    expect(rows.length).toBe(1);
    expect(rows.every((r) => r.ok)).toBe(true);
    return rows.length;
  }

  test("mail committed right after the listener's backend is killed still answers the wait", async () => {
    const since = await maxId(o);
    const { done: p } = await startWait(o, BOB, `?since_id=${since}&timeout=15`);
    expect(await killListener()).toBeGreaterThanOrEqual(1);
    const id = await fmsgdDeliver(o, [BOB]);
    expect(await p).toMatchObject(has(id));
  });

  test("while the listener cannot reconnect /readyz is 503; mail committed meanwhile is answered after it returns", async () => {
    expect(await o.request("GET", "/readyz", { as: null }).then(result)).toEqual({
      status: 200,
      body: { status: "ready", database: true, listener: true },
      text: expect.any(String),
    });
    const since = await maxId(o); // also keeps o.db.sql's connection open for the outage
    const { done: p } = await startWait(o, BOB, `?since_id=${since}&timeout=15`);
    await admin.unsafe(`alter database "${o.db.name}" allow_connections false`);
    try {
      await killListener();
      await until(() => o.server.listener?.connected() === false, "the heartbeat to notice the outage");
      const ready = await o.request("GET", "/readyz", { as: null }).then(result);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "not ready", listener: false });
      // Nobody listens now: this NOTIFY is lost, only the re-check on reconnect can find it.
      const id = await fmsgdDeliver(o, [BOB]);
      await admin.unsafe(`alter database "${o.db.name}" allow_connections true`);
      expect(await p).toMatchObject(has(id));
    } finally {
      await admin.unsafe(`alter database "${o.db.name}" allow_connections true`);
    }
    await until(async () => (await o.request("GET", "/readyz", { as: null })).status === 200, "/readyz 200 again");
    expect(o.server.listener?.connected()).toBe(true);
    // And it hears notifications again.
    const since2 = await maxId(o);
    const { done: p2 } = await startWait(o, BOB, `?since_id=${since2}&timeout=15`);
    const id2 = await fmsgdDeliver(o, [BOB]);
    expect(await p2).toMatchObject(has(id2));
  });
});

// The LISTEN connection exists only with PostgreSQL.
describe.skipIf(EMBEDDED)("inbox listener", () => {
  test("after outages each notification is handled once (no duplicate subscriptions)", async () => {
    const db = await createTestDatabase();
    const pool = openPool({ url: db.url, max: 2 });
    // Records each address a notification wakes; re-checks of everyone (wakeAll) are not counted.
    const woken: string[] = [];
    const waiters = {
      wake: (addresses: Iterable<string>) => void woken.push(...addresses),
      wakeAll: () => {},
      doubtAll: () => {},
      onCheckFailed: () => {},
      anyone: true,
    };
    const listener = await startInboxListener(pool, waiters, { heartbeatMs: 50 });
    try {
      await db.sql`select 1`; // open the helper connection before connections are refused
      for (let round = 0; round < 3; round++) {
        await admin.unsafe(`alter database "${db.name}" allow_connections false`);
        try {
          const rows = await admin`
            select pg_terminate_backend(pid) as ok from pg_stat_activity
            where datname = ${db.name} and application_name = 'fmsg-webapi' and query ilike 'listen%'`;
          expect(rows.length).toBe(1);
          await until(() => !listener.connected(), `outage ${round} noticed`);
        } finally {
          await admin.unsafe(`alter database "${db.name}" allow_connections true`);
        }
        await until(() => listener.connected(), `listener back after outage ${round}`);
      }
      // Two sent messages, one recipient each: the new_msg trigger raises a NOTIFY for each at its commit.
      for (const to of ["@x@example.com", "@y@example.com"]) {
        await db.sql.begin(async (tx) => {
          const [m] = await tx`
            insert into msg (version, from_addr, topic, type, size, filepath, time_sent)
            values (1, '@alice@example.com', 't', 'text/plain', 0, '/nonexistent', extract(epoch from now()))
            returning id::text as id`;
          await tx`insert into msg_to (msg_id, addr) values (${Number(m!.id)}, ${to})`;
        });
      }
      // NOTIFYs arrive in commit order and each is dispatched to all its listeners at once, so once
      // the second has been seen every duplicate of either has been seen too.
      await until(() => woken.includes("@y@example.com"), "the second new_msg notification");
      expect(woken).toEqual(["@x@example.com", "@y@example.com"]);
    } finally {
      await listener.stop();
      await pool.end({ timeout: 5 });
      await db.drop();
    }
  });
});
