// Several instances behind one proxy (README "Running several instances"): two servers on one PostgreSQL
// database, one data directory and one Redis share the rate limit, wake each other's waiters and
// WebSockets through PostgreSQL's NOTIFY, and replay each other's Idempotency-Key answers.
import { afterAll, beforeAll, describe as anyDescribe, expect, setDefaultTimeout, test as anyTest } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, createDraft, sendDraft } from "../helpers/messages.ts";
import { startPrivateRedis, type PrivateRedis } from "../helpers/private-redis.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";
import { toolsPresent } from "../helpers/tools.ts";

const HAS_TOOLS = toolsPresent(import.meta.path, ["redis-server"]);
const test = anyTest.skipIf(!HAS_TOOLS);
const describe = anyDescribe.skipIf(!HAS_TOOLS);

setDefaultTimeout(30_000);

let db: TestDatabase;
let redis: PrivateRedis;
let dataDir: string;
/** A and B as a proxy would see them: everything shared, limit generous (the wake-up and retry tests). */
let a: TestServer;
let b: TestServer;
/** Another two with a small limit (rate 1/s, burst 4), on their own Redis database so the two pairs' buckets never mix. */
let limitedA: TestServer;
let limitedB: TestServer;

beforeAll(async () => {
  if (!HAS_TOOLS) return;
  [db, redis, dataDir] = await Promise.all([createTestDatabase(), startPrivateRedis(), mkdtemp(join(tmpdir(), "fmsg-multi-data-"))]);
  const start = (env: Record<string, string>) => startTestServer({ database: db, env: { FMSG_DATA_DIR: dataDir, ...env } });
  a = await start({ FMSG_API_RATE_STORE: `${redis.url}/1` });
  b = await start({ FMSG_API_RATE_STORE: `${redis.url}/1` });
  const limited = { FMSG_API_RATE_STORE: `${redis.url}/2`, FMSG_API_RATE_LIMIT: "1", FMSG_API_RATE_BURST: "4" };
  limitedA = await start(limited);
  limitedB = await start(limited);
});
afterAll(async () => {
  if (!HAS_TOOLS) return;
  for (const s of [a, b, limitedA, limitedB]) await s?.stop();
  await redis?.stop();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("two instances, one PostgreSQL, one Redis", () => {
  test("the rate limit is shared: requests alternating between the instances get 429 after the burst, not twice it", async () => {
    const statuses: number[] = [];
    for (const s of [limitedA, limitedB, limitedA, limitedB, limitedA, limitedB]) {
      const res = await s.request("GET", "/fmsg");
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });

  test("a message sent through A answers a GET /fmsg/wait held on B", async () => {
    const id = await createDraft(a, ALICE, [BOB], { topic: "to the waiter on B" });
    // Nothing above id - 1 is in Bob's inbox until the draft is sent: the wait holds.
    const answer = b.request("GET", `/fmsg/wait?since_id=${id - 1}&timeout=20`, { as: BOB });
    await until(() => b.server.waiters.size === 1, "the wait registered on B");
    expect(a.server.waiters.size).toBe(0);
    await sendDraft(a, ALICE, id);
    const res = await answer;
    expect({ status: res.status, body: await res.json() }).toEqual({ status: 200, body: { has_new: true, latest_id: id } });
  });

  test("a message sent through A reaches a WebSocket open on B", async () => {
    const frames: { type: string; data: { id: number } }[] = [];
    const ws = new WebSocket(`${b.url.replace(/^http/, "ws")}/fmsg/ws`, { headers: { authorization: `Bearer ${b.token(BOB)}` } } as unknown as string[]);
    ws.addEventListener("message", (e) => frames.push(JSON.parse(String(e.data))));
    const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error("websocket did not open")));
    });
    try {
      await until(() => b.server.sockets.size === 1, "the socket registered on B");
      expect(a.server.sockets.size).toBe(0);
      const id = await createDraft(a, ALICE, [BOB], { topic: "to the socket on B" });
      await sendDraft(a, ALICE, id);
      await until(() => frames.some((f) => f.type === "new_msg" && f.data.id === id), "the new_msg frame on B's socket");
    } finally {
      ws.close();
      await closed;
    }
  });

  test("an Idempotency-Key retry sent to B replays A's answer and writes nothing", async () => {
    const key = crypto.randomUUID();
    const topic = `retried ${key}`;
    const post = (s: TestServer) => s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { topic }), headers: { "idempotency-key": key } });
    const first = await post(a);
    const firstBody = await first.text();
    expect(first.status).toBe(201);
    const retry = await post(b);
    expect({ status: retry.status, body: await retry.text(), replayed: retry.headers.get("idempotent-replayed") }).toEqual({
      status: 201,
      body: firstBody,
      replayed: "true",
    });
    const rows = await db.sql`select id from msg where topic = ${topic}`;
    expect(rows.map((r) => Number(r.id))).toEqual([(JSON.parse(firstBody) as { id: number }).id]);
  });

  test("the same key sent to A and B at once: one draft, the same answer from both", async () => {
    const key = crypto.randomUUID();
    const topic = `raced ${key}`;
    const post = (s: TestServer) => s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { topic }), headers: { "idempotency-key": key } });
    const answers = await Promise.all([post(a), post(b)]);
    const bodies = await Promise.all(answers.map((r) => r.text()));
    expect(answers.map((r) => r.status)).toEqual([201, 201]);
    expect(bodies[0]).toBe(bodies[1]!);
    expect(answers.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(1);
    expect(await db.sql`select id from msg where topic = ${topic}`).toHaveLength(1);
  });
});
