// FMSG_API_RATE_STORE=redis://… (docs/OPERATIONS.md "Running several instances"): the buckets live in Redis
// for every instance, and while Redis is unreachable, hung or restarting each instance keeps limiting
// on its own, never failing a request, with one log line each way. Its own redis-server, so no other
// test file shares its keys.
import { afterAll, beforeAll, describe as anyDescribe, expect, setDefaultTimeout, test as anyTest } from "bun:test";
import { RedisClient } from "bun";
import { leaseSize, RedisRateStore, REDIS_KEY_PREFIX } from "../../src/http/rate-store-redis.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { freePort } from "../helpers/ports.ts";
import { startPrivateRedis, type PrivateRedis } from "../helpers/private-redis.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";
import { toolsPresent } from "../helpers/tools.ts";

const HAS_TOOLS = toolsPresent(import.meta.path, ["redis-server"]);
const test = anyTest.skipIf(!HAS_TOOLS);
const describe = anyDescribe.skipIf(!HAS_TOOLS);

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
  if (!HAS_TOOLS) return;
  [db, redis] = await Promise.all([createTestDatabase(), startPrivateRedis()]);
});
afterAll(async () => {
  if (!HAS_TOOLS) return;
  await Promise.all(started.map((s) => s.stop()));
  redis?.resume();
  await redis?.stop();
  await db?.drop();
});

async function instance(storeUrl: string, env: Record<string, string> = {}): Promise<Instance> {
  const logs: Record<string, unknown>[] = [];
  const server = await startTestServer({ database: db, env: { ...LIMITED, ...env, FMSG_API_RATE_STORE: storeUrl }, log: (line) => logs.push(line) });
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

describe("token leases (a burst of 128 or more): several requests per Redis call, never more than the bucket", () => {
  // A burst of 640 leases 10 tokens per call. The stores are used directly, at a rate so low that no
  // token comes back during a test, so the counts are exact.
  const BURST = 640;
  const L = leaseSize(BURST);
  const stores: RedisRateStore[] = [];
  afterAll(() => Promise.all(stores.map((s) => s.close())));

  async function leasing(db: number, rate = 0.001): Promise<RedisRateStore> {
    const store = new RedisRateStore({ url: `${redis.url}/${db}`, rate, burst: BURST, log: () => {} });
    stores.push(store);
    await store.start();
    return store;
  }

  /** Requests from `client` alternating between the stores until each has refused one; totalHits of the admitted ones, per store. */
  async function untilRefused(pair: RedisRateStore[], client: string): Promise<number[][]> {
    const admitted: number[][] = pair.map(() => []);
    const refused = new Set<number>();
    for (let n = 0; refused.size < pair.length; n++) {
      if (n > 2 * BURST) break; // admitting far more than the burst: the counts below say so
      const i = n % pair.length;
      const { totalHits } = await pair[i]!.increment(client);
      if (totalHits <= BURST) admitted[i]!.push(totalHits);
      else refused.add(i);
    }
    return admitted;
  }

  const increasing = (hits: number[]) => hits.every((h, i) => i === 0 || h > hits[i - 1]!);

  async function admin(db = 0): Promise<RedisClient> {
    const client = new RedisClient(`${redis.url}/${db}`);
    await client.connect();
    return client;
  }

  /** EVALSHA and EVAL calls Redis has run (INFO commandstats): one per bucket call. */
  async function scriptCalls(client: RedisClient): Promise<number> {
    const info = String(await client.send("INFO", ["commandstats"]));
    let total = 0;
    for (const m of info.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)) total += Number(m[1]);
    return total;
  }

  test("two instances alternating for one client admit at most the burst together, then refuse on both", async () => {
    expect(L).toBe(10);
    const pair = [await leasing(6), await leasing(6)];
    const admitted = await untilRefused(pair, "203.0.113.60");
    const total = admitted[0]!.length + admitted[1]!.length;
    expect(total).toBeLessThanOrEqual(BURST);
    expect(total).toBeGreaterThanOrEqual(BURST - 2 * L);
    for (const store of pair) {
      for (let i = 0; i < 20; i++) expect((await store.increment("203.0.113.60")).totalHits).toBeGreaterThan(BURST);
    }
    // Each instance's totalHits (RateLimit-Remaining) counts on from its leases' grant figures.
    expect(admitted.map(increasing)).toEqual([true, true]);
    expect(admitted[0]!.slice(0, 3)).toEqual([1, 2, 3]);
  });

  test("Redis load: 100 requests with a lease of 10 take about 10 script calls; with burst 4 (lease 1) one per request, as before", async () => {
    const client = await admin();
    try {
      const big = await instance(`${redis.url}/7`, { FMSG_API_RATE_BURST: String(BURST) });
      let before = await scriptCalls(client);
      for (let i = 0; i < 100; i++) expect(await hit(big, "203.0.113.61")).toBe(200);
      const leased = (await scriptCalls(client)) - before;
      expect(leased).toBeGreaterThanOrEqual(100 / L);
      expect(leased).toBeLessThanOrEqual(100 / L + 1);

      const small = await instance(`${redis.url}/7`);
      before = await scriptCalls(client);
      expect(await statuses([small, small, small, small, small], "203.0.113.62")).toEqual([200, 200, 200, 200, 429]);
      expect((await scriptCalls(client)) - before).toBe(5);
    } finally {
      client.close();
    }
  });

  test("30 requests of one client at once on one instance: 3 lease calls, and exactly 30 tokens gone from the shared bucket", async () => {
    const client = await admin();
    try {
      const [a, b] = [await leasing(9), await leasing(9)];
      const before = await scriptCalls(client);
      const hits = await Promise.all(Array.from({ length: 30 }, async () => (await a!.increment("203.0.113.64")).totalHits));
      expect(hits.toSorted((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      expect((await scriptCalls(client)) - before).toBe(30 / L);
      // Not a lease per waiting request: the other instance finds 610 tokens, so this is the 31st hit.
      expect((await b!.increment("203.0.113.64")).totalHits).toBe(31);
    } finally {
      client.close();
    }
  });

  test("an expired lease's unused tokens go back to the bucket with the instance's next call, so idle leases do not drain it", async () => {
    // Rate 1000/s: a lease of 10 lives 10 ms; the bucket, drained to about 100, takes over 500 ms to refill.
    const [a, b] = [await leasing(10, 1000), await leasing(10, 1000)];
    const client = await admin(10);
    const bucket = async () => {
      const [tokens, at] = (await client.send("HMGET", [`${REDIS_KEY_PREFIX}203.0.113.65`, "tokens", "at"])) as [string, string];
      return { tokens: Number(tokens), at: Number(at) };
    };
    try {
      for (let i = 0; i < 540; i++) await b!.increment("203.0.113.65");
      await a!.increment("203.0.113.65"); // A leases 10 and spends 1
      const leasedAt = Date.now();
      await until(() => Date.now() > leasedAt + 10, "A's lease to expire");
      const before = await bucket();
      await a!.increment("203.0.113.65"); // gives back 9, leases 10
      const after = await bucket();
      const refilled = before.tokens + ((after.at - before.at) / 1000) * 1000;
      expect(after.tokens).toBeCloseTo(refilled + (L - 1) - L, 6);
    } finally {
      client.close();
    }
  });

  test("an instance holding a lease when Redis restarts (empty) drops it: after the return no more than the burst", async () => {
    const pair = [await leasing(8), await leasing(8)];
    expect((await pair[0]!.increment("203.0.113.63")).totalHits).toBe(1); // the first instance now holds L - 1 tokens
    await redis.stop();
    try {
      await until(() => pair.every((s) => !s.isShared), "both counting on their own");
    } finally {
      await redis.start();
    }
    await until(() => pair.every((s) => s.isShared), "both back on Redis");
    // The restarted Redis gives the client a whole burst; tokens leased before it are not on top of it.
    const admitted = await untilRefused(pair, "203.0.113.63");
    const total = admitted[0]!.length + admitted[1]!.length;
    expect(total).toBeLessThanOrEqual(BURST);
    expect(total).toBeGreaterThanOrEqual(BURST - 2 * L);
  });
});
