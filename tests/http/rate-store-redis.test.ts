// FMSG_API_RATE_STORE=redis://… (docs/OPERATIONS.md "Running several instances"): the buckets live in Redis
// for every instance, and while Redis is unreachable, hung or restarting each instance keeps limiting
// on its own, never failing a request, with one log line each way. Its own redis-server, so no other
// test file shares its keys.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { RedisClient } from "bun";
import { RedisRateStore, REDIS_KEY_PREFIX } from "../../src/http/rate-store-redis.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { freePort } from "../helpers/ports.ts";
import { startPrivateRedis, type PrivateRedis } from "../helpers/private-redis.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(30_000);

// Rate 1/s, burst 4. Requests come from 127.0.0.1, a trusted proxy, so each test names its own
// clients in X-Forwarded-For and gets fresh buckets.
const LIMITED = { FMSG_API_RATE_LIMIT: "1", FMSG_API_RATE_BURST: "4", FMSG_TRUSTED_PROXIES: "127.0.0.1/32", FMSG_API_METRICS: "true" };
const FELL_BACK = "rate limit store unreachable: counting in this instance only";
const CAME_BACK = "rate limit store reachable again: counting shared";

type Instance = { server: TestServer; logs: Record<string, unknown>[] };

let db: TestDatabase;
let redis: PrivateRedis;
const started: TestServer[] = [];

beforeAll(async () => {
  [db, redis] = await Promise.all([createTestDatabase(), startPrivateRedis()]);
});
afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
  redis?.resume();
  await redis?.stop();
  await db?.drop();
});

async function instance(storeUrl: string): Promise<Instance> {
  const logs: Record<string, unknown>[] = [];
  const server = await startTestServer({ database: db, env: { ...LIMITED, FMSG_API_RATE_STORE: storeUrl }, log: (line) => logs.push(line) });
  started.push(server);
  return { server, logs };
}

/** Two instances on one database and one store, as behind a proxy. */
const pair = (storeUrl: string) => Promise.all([instance(storeUrl), instance(storeUrl)]);

/** The status of one GET /fmsg from `client` (its X-Forwarded-For), body read. */
async function hit(i: Instance, client: string): Promise<number> {
  const res = await i.server.request("GET", "/fmsg", { headers: { "x-forwarded-for": client } });
  await res.arrayBuffer();
  return res.status;
}

async function statuses(sequence: Instance[], client: string): Promise<number[]> {
  const out: number[] = [];
  for (const i of sequence) out.push(await hit(i, client));
  return out;
}

const said = (i: Instance, msg: string) => i.logs.filter((l) => l.msg === msg).length;

async function gauge(i: Instance): Promise<string | undefined> {
  const text = await (await fetch(`${i.server.url}/metrics`)).text();
  return /^fmsg_api_rate_store_shared (\d)$/m.exec(text)?.[1];
}

describe("Redis reachable: one bucket per client across instances", () => {
  test("RateLimit-Remaining counts down across both instances; another client has its own bucket", async () => {
    const [a, b] = await pair(`${redis.url}/1`);
    const answers: Response[] = [];
    for (const i of [a, b, a, b, a]) {
      const res = await i.server.request("GET", "/fmsg", { headers: { "x-forwarded-for": "203.0.113.1" } });
      await res.arrayBuffer();
      answers.push(res);
    }
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
    expect(answers.map((r) => r.headers.get("ratelimit-remaining"))).toEqual(["3", "2", "1", "0", "0"]);
    expect(answers.every((r) => r.headers.get("ratelimit-limit") === "4")).toBe(true);
    expect(Number(answers[4]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Another client, and an IPv6 client keyed by its /64 across both instances.
    expect(await statuses([b], "203.0.113.2")).toEqual([200]);
    expect(await statuses([a, b, a, b, a], "2001:db8:77:1::1")).toEqual([200, 200, 200, 200, 429]);
    expect(await hit(b, "2001:db8:77:1::ffff")).toBe(429);
    expect(await gauge(a)).toBe("1");
    expect(said(a, FELL_BACK) + said(b, FELL_BACK)).toBe(0);
  });
});

describe("Redis unreachable (a closed port)", () => {
  test("requests are served and each instance limits on its own; one log line per instance; /readyz stays 200", async () => {
    const closed = `redis://127.0.0.1:${freePort()}`;
    const [a, b] = await pair(closed);
    expect(await statuses([a, a, a, a, a], "203.0.113.10")).toEqual([200, 200, 200, 200, 429]);
    // B counts on its own: the client's burst is whole there.
    expect(await statuses([b, b, b, b, b], "203.0.113.10")).toEqual([200, 200, 200, 200, 429]);
    for (const i of [a, b]) {
      expect(said(i, FELL_BACK)).toBe(1);
      expect((await fetch(`${i.server.url}/readyz`)).status).toBe(200);
      expect(await gauge(i)).toBe("0");
    }
    // The password of a URL never reaches the log.
    const withPassword = await instance(`redis://fmsg:s3cret@127.0.0.1:${freePort()}`);
    expect(JSON.stringify(withPassword.logs)).not.toContain("s3cret");
    expect(said(withPassword, FELL_BACK)).toBe(1);
  });
});

describe("Redis stops mid-run and comes back", () => {
  test("killed: each instance counts alone with one log line; restarted: shared again with one log line", async () => {
    const [a, b] = await pair(`${redis.url}/2`);
    expect(await statuses([a, b, a], "203.0.113.20")).toEqual([200, 200, 200]);

    await redis.stop();
    try {
      // Served from each instance's own buckets (full: they never counted this client), never a 500.
      expect(await statuses([a, a, a, a, a], "203.0.113.20")).toEqual([200, 200, 200, 200, 429]);
      expect(await statuses([b], "203.0.113.20")).toEqual([200]);
      for (const i of [a, b]) {
        expect(said(i, FELL_BACK)).toBe(1);
        expect(await gauge(i)).toBe("0");
      }
    } finally {
      await redis.start();
    }
    await until(() => said(a, CAME_BACK) === 1 && said(b, CAME_BACK) === 1, "both instances back on Redis");
    expect(await statuses([a, b, a, b, a, b], "203.0.113.21")).toEqual([200, 200, 200, 200, 429, 429]);
    for (const i of [a, b]) {
      expect(said(i, FELL_BACK)).toBe(1);
      expect(said(i, CAME_BACK)).toBe(1);
      expect(await gauge(i)).toBe("1");
    }
  });

  test("hung (no answer at all): requests are still answered, counted locally; resumed: shared again", async () => {
    const [a, b] = await pair(`${redis.url}/3`);
    redis.pause();
    try {
      // Without a bound on the Redis call these would wait as long as Redis does.
      expect(await statuses([a, a, a, a, a], "203.0.113.30")).toEqual([200, 200, 200, 200, 429]);
      expect(await statuses([b], "203.0.113.30")).toEqual([200]);
      expect(said(a, FELL_BACK)).toBe(1);
      expect(said(b, FELL_BACK)).toBe(1);
    } finally {
      redis.resume();
    }
    await until(() => said(a, CAME_BACK) === 1 && said(b, CAME_BACK) === 1, "both instances back on Redis");
    expect(await statuses([b, a, b, a, b], "203.0.113.31")).toEqual([200, 200, 200, 200, 429]);
  });
});

describe("Redis answering but refusing writes (out of memory)", () => {
  /** EVALSHA and EVAL calls Redis refused or failed so far (INFO commandstats). */
  async function refusedScripts(admin: RedisClient): Promise<number> {
    const info = String(await admin.send("INFO", ["commandstats"]));
    let total = 0;
    for (const m of info.matchAll(/^cmdstat_eval(?:sha)?:.*?rejected_calls=(\d+),failed_calls=(\d+)/gm)) total += Number(m[1]) + Number(m[2]);
    return total;
  }

  test("counted locally with one log line, and no flapping back while the bucket script still fails", async () => {
    const admin = new RedisClient(redis.url);
    await admin.connect();
    const a = await instance(`${redis.url}/5`);
    await admin.send("CONFIG", ["SET", "maxmemory", "1"]);
    try {
      expect(await statuses([a, a, a, a, a], "203.0.113.40")).toEqual([200, 200, 200, 200, 429]);
      // Redis still answers PING; the retries run the script and are refused, so the instance stays local.
      const before = await refusedScripts(admin);
      const deadline = Date.now() + 10_000;
      while ((await refusedScripts(admin)) < before + 2) {
        if (Date.now() > deadline) throw new Error("timed out waiting for two refused retries");
        await Bun.sleep(20);
      }
      expect(said(a, FELL_BACK)).toBe(1);
      expect(said(a, CAME_BACK)).toBe(0);
      expect(await gauge(a)).toBe("0");
    } finally {
      await admin.send("CONFIG", ["SET", "maxmemory", "0"]);
    }
    await until(() => said(a, CAME_BACK) === 1, "back on Redis once it takes writes");
    admin.close();
  });
});

describe("RedisRateStore against Redis itself", () => {
  let client: RedisClient;
  let store: RedisRateStore;
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    store = new RedisRateStore({ url: `${redis.url}/4`, rate: 2, burst: 3, log: (l) => logs.push(l) });
    await store.start();
    client = new RedisClient(`${redis.url}/4`);
    await client.connect();
  });
  afterAll(async () => {
    await store.close();
    client.close();
  });

  test("a bucket's key expires once the bucket would be full again, so Redis holds only active clients", async () => {
    expect((await store.increment("k1")).totalHits).toBe(1);
    const ttl = Number(await client.send("PTTL", [`${REDIS_KEY_PREFIX}k1`]));
    // One token used at 2/s: full again within 500 ms.
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(500);
  });

  test("burst admitted, then refused until the next token; resetKey forgets the client", async () => {
    const hits = [];
    for (let i = 0; i < 4; i++) hits.push((await store.increment("k2")).totalHits);
    expect(hits.slice(0, 3)).toEqual([1, 2, 3]);
    expect(hits[3]).toBeGreaterThan(3);
    await store.resetKey("k2");
    expect((await store.increment("k2")).totalHits).toBe(1);
  });

  test("after Redis forgets its scripts (as after a restart) the store loads it again and keeps counting shared", async () => {
    await client.send("SCRIPT", ["FLUSH"]);
    expect((await store.increment("k3")).totalHits).toBe(1);
    expect(store.isShared).toBe(true);
    expect(logs.filter((l) => l.msg === FELL_BACK)).toEqual([]);
  });
});
