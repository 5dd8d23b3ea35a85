// Rate limiting (docs/API.md "Rate limit"): per-client token bucket before authentication, health checks exempt,
// RateLimit-* headers on every limited response, X-Forwarded-For believed only from trusted
// proxies; plus unit tests of the bucket store and keys.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TokenBucketStore } from "../../src/http/rate-limit.ts";
import { parseIp, rateLimitKey } from "../../src/lib/ip.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB } from "../helpers/messages.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

// Rate 1/s with a burst of 3: the 4th request within a second is refused. Each scenario gets its
// own server (its own bucket for 127.0.0.1); they share one database.
const LIMITED = { FMSG_API_RATE_LIMIT: "1", FMSG_API_RATE_BURST: "3" };

let db: TestDatabase;
const servers: TestServer[] = [];
let plain: TestServer;
let unauth: TestServer;
let unknownRoutes: TestServer;
let health: TestServer;
let spoof: TestServer;
let proxied: TestServer;
let operational: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  const start = async (env: Record<string, string> = {}) => {
    const s = await startTestServer({ database: db, env: { ...LIMITED, ...env } });
    servers.push(s);
    return s;
  };
  [plain, unauth, unknownRoutes, health, spoof, proxied, operational] = await Promise.all([
    start(),
    start(),
    start(),
    start(),
    start(),
    start({ FMSG_TRUSTED_PROXIES: "127.0.0.1/32" }),
    start({ FMSG_API_METRICS: "true" }),
  ]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await db?.drop();
});

async function expect429(res: Response) {
  expect(res.status).toBe(429);
  expect(await res.json()).toEqual({ error: "rate limit exceeded" });
  const retryAfter = res.headers.get("retry-after");
  expect(retryAfter).toMatch(/^[0-9]+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
}

/** Requests one after another (not in parallel), returning the statuses. */
async function sequence(n: number, send: (i: number) => Promise<Response>): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await send(i);
    statuses.push(res.status);
    if (i < n - 1) await res.arrayBuffer();
    else await expect429(res);
  }
  return statuses;
}

describe("the limit over HTTP (untrusted peer)", () => {
  test("the 4th quick request gets 429 rate limit exceeded with Retry-After", async () => {
    const statuses = await sequence(4, () => plain.request("GET", "/fmsg"));
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  test("it runs before authentication: requests without a token count and are refused with 429", async () => {
    const statuses = await sequence(4, () => unauth.request("GET", "/fmsg", { as: null }));
    expect(statuses).toEqual([401, 401, 401, 429]);
  });

  test("it applies to unknown routes", async () => {
    const statuses = await sequence(4, (i) => unknownRoutes.request("GET", `/nope/${i}`, { as: null }));
    expect(statuses).toEqual([404, 404, 404, 429]);
  });

  test("/metrics and /openapi.json are limited like the API (only the health checks are not)", async () => {
    const statuses = await sequence(4, (i) => operational.request("GET", i % 2 === 0 ? "/metrics" : "/openapi.json", { as: null }));
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  test("a 429 under /fmsg names the profile like every answer there", async () => {
    let res = await plain.request("GET", "/fmsg");
    for (let i = 0; i < 5 && res.status !== 429; i++) {
      await res.arrayBuffer();
      res = await plain.request("GET", "/fmsg");
    }
    expect(res.status).toBe(429);
    expect(res.headers.get("fmsg-profile")).toBe("seed");
  });

  test("health checks are never limited, and do not use up the bucket", async () => {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${health.url}/healthz`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // The health checks above left the whole burst for the API.
    const statuses = await sequence(4, () => health.request("GET", "/fmsg"));
    expect(statuses).toEqual([200, 200, 200, 429]);
    // Limited client, health checks still answer.
    expect((await fetch(`${health.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${health.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { status: string }).status).toBe("ready");
  });

  test("X-Forwarded-For / X-Real-IP from an untrusted peer are ignored (no escape by spoofing)", async () => {
    const statuses = await sequence(4, (i) =>
      spoof.request("GET", "/fmsg", {
        headers: { "x-forwarded-for": `198.51.100.${i + 1}`, "x-real-ip": `198.51.100.${i + 1}` },
      }),
    );
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});

describe("behind a trusted proxy (FMSG_TRUSTED_PROXIES=127.0.0.1/32)", () => {
  const via = (xff: string) => proxied.request("GET", "/fmsg", { headers: { "x-forwarded-for": xff } });

  test("distinct X-Forwarded-For clients get separate buckets", async () => {
    expect(await sequence(4, () => via("203.0.113.1"))).toEqual([200, 200, 200, 429]);
    // Another client behind the same proxy is not affected.
    const other = await via("203.0.113.2");
    expect(other.status).toBe(200);
  });

  test("the right-most untrusted hop is the client: forged hops to its left do not matter", async () => {
    // The client forges a different left-most hop every time; the proxy appends the real peer.
    const statuses = await sequence(4, (i) => via(`10.9.9.${i + 1}, 203.0.113.10`));
    expect(statuses).toEqual([200, 200, 200, 429]);
    // Same forged left-most hop, different real client: a separate bucket.
    const res = await via("10.9.9.1, 203.0.113.11");
    expect(res.status).toBe(200);
  });

  test("trusted proxy hops on the right are skipped", async () => {
    const statuses = await sequence(4, (i) => via(`10.8.8.${i + 1}, 203.0.113.20, 127.0.0.1`));
    expect(statuses).toEqual([200, 200, 200, 429]);
    // 203.0.113.20 is the bucket that ran out, not the proxy's own address.
    expect((await via("203.0.113.21, 127.0.0.1")).status).toBe(200);
  });

  test("X-Real-IP is used when there is no X-Forwarded-For", async () => {
    const real = (ip: string) => proxied.request("GET", "/fmsg", { headers: { "x-real-ip": ip } });
    expect(await sequence(4, () => real("203.0.113.30"))).toEqual([200, 200, 200, 429]);
    expect((await real("203.0.113.31")).status).toBe(200);
  });

  test("IPv4-mapped forwarded addresses share the IPv4 client's bucket", async () => {
    const statuses = await sequence(4, (i) => via(i % 2 === 0 ? "203.0.113.40" : "::ffff:203.0.113.40"));
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  test("IPv6 forwarded clients are keyed by their /64", async () => {
    const statuses = await sequence(4, (i) => via(`2001:db8:aa:1::${i + 1}`));
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect((await via("2001:db8:aa:2::1")).status).toBe(200);
  });
});

describe("RateLimit-* headers (docs/API.md: Rate limit) on every response of a limited route", () => {
  // Burst 5 at 1/s: five quick requests use the burst up, the sixth is refused.
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ database: db, env: { FMSG_API_RATE_LIMIT: "1", FMSG_API_RATE_BURST: "5" } });
    servers.push(s);
  });

  const seconds = (res: Response, name: string) => {
    const value = res.headers.get(name);
    expect(value).toMatch(/^[0-9]+$/);
    return Number(value);
  };

  test("200, 201, a streamed download, 401, 404 and 429 all carry Limit = burst, a falling Remaining and Reset in seconds", async () => {
    const created = await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB]) });
    const { id } = (await created.json()) as { id: number };
    const answers: Response[] = [created];
    for (const send of [
      () => s.request("GET", `/fmsg/${id}/data`), // built by the handler, not through Hono's context
      () => s.request("GET", "/fmsg", { as: null }),
      () => s.request("GET", "/nope", { as: null }),
      () => s.request("GET", "/fmsg"),
      () => s.request("GET", "/fmsg"),
    ]) {
      const res = await send();
      await res.arrayBuffer();
      answers.push(res);
    }
    expect(answers.map((r) => r.status)).toEqual([201, 200, 401, 404, 200, 429]);
    for (const res of answers) {
      expect(seconds(res, "ratelimit-limit")).toBe(5);
      seconds(res, "ratelimit-reset");
    }
    expect(answers.map((r) => seconds(r, "ratelimit-remaining"))).toEqual([4, 3, 2, 1, 0, 0]);
    const refused = answers[5]!;
    expect(seconds(refused, "retry-after")).toBeGreaterThanOrEqual(1);
    expect(answers.slice(0, 5).every((r) => !r.headers.has("retry-after"))).toBe(true);
  });

  test("health checks carry none", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      const res = await fetch(`${s.url}${path}`);
      await res.arrayBuffer();
      expect([...res.headers.keys()].filter((k) => k.startsWith("ratelimit"))).toEqual([]);
    }
  });
});

describe("TokenBucketStore (injected clock)", () => {
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };
  /** hono-rate-limiter admits a request while totalHits ≤ limit, and the limit is the burst. */
  const admitted = (store: TokenBucketStore, key: string, burst: number) => store.increment(key).totalHits <= burst;

  test("a full bucket admits exactly `burst` requests at once", () => {
    const c = clock();
    const store = new TokenBucketStore(2, 5, 100, c.now);
    const results = Array.from({ length: 7 }, () => admitted(store, "k", 5));
    expect(results).toEqual([true, true, true, true, true, false, false]);
  });

  test("tokens come back at the sustained rate", () => {
    const c = clock();
    const store = new TokenBucketStore(2, 5, 100, c.now);
    for (let i = 0; i < 5; i++) expect(admitted(store, "k", 5)).toBe(true);
    expect(admitted(store, "k", 5)).toBe(false);
    c.advance(499); // less than one token (2/s → one per 500 ms)
    expect(admitted(store, "k", 5)).toBe(false);
    c.advance(1); // refused requests do not cost tokens: 500 ms in total is one token
    expect(admitted(store, "k", 5)).toBe(true);
    expect(admitted(store, "k", 5)).toBe(false);
  });

  test("sustained: over 10 s at 8 requests/s only burst + rate × 10 s get through", () => {
    const c = clock();
    const store = new TokenBucketStore(4, 5, 100, c.now);
    let allowed = 0;
    for (let t = 0; t <= 10_000; t += 125) {
      if (admitted(store, "k", 5)) allowed++;
      c.advance(125);
    }
    expect(allowed).toBe(5 + 4 * 10);
  });

  test("the bucket never holds more than `burst` tokens after a long idle time", () => {
    const c = clock();
    const store = new TokenBucketStore(1, 3, 100, c.now);
    admitted(store, "k", 3);
    c.advance(3_600_000);
    const results = Array.from({ length: 5 }, () => admitted(store, "k", 3));
    expect(results).toEqual([true, true, true, false, false]);
  });

  test("keys are independent", () => {
    const c = clock();
    const store = new TokenBucketStore(1, 2, 100, c.now);
    expect([admitted(store, "a", 2), admitted(store, "a", 2), admitted(store, "a", 2)]).toEqual([true, true, false]);
    expect(admitted(store, "b", 2)).toBe(true);
  });

  test("a refusal's reset time is when the next token arrives", () => {
    const c = clock();
    const store = new TokenBucketStore(1, 1, 100, c.now);
    store.increment("k");
    const refused = store.increment("k");
    expect(refused.totalHits).toBeGreaterThan(1);
    expect(refused.resetTime.getTime() - c.now()).toBe(1000);
  });

  test("memory is bounded: size never exceeds maxKeys, least recently seen forgotten first", () => {
    const c = clock();
    const store = new TokenBucketStore(1, 2, 3, c.now);
    for (let i = 0; i < 1000; i++) {
      store.increment(`ip-${i}`);
      expect(store.size).toBeLessThanOrEqual(3);
    }
    expect(store.size).toBe(3);

    // An exhausted client that keeps coming back stays tracked (and limited) while others churn…
    const fresh = new TokenBucketStore(1, 2, 3, c.now);
    fresh.increment("hot");
    fresh.increment("hot");
    expect(admitted(fresh, "hot", 2)).toBe(false);
    for (let i = 0; i < 10; i++) {
      fresh.increment(`other-${i}`);
      expect(admitted(fresh, "hot", 2)).toBe(false);
      expect(fresh.size).toBeLessThanOrEqual(3);
    }
    // …and one that goes quiet is evicted by newer keys (then starts over with a full bucket).
    fresh.increment("a");
    fresh.increment("b");
    fresh.increment("c");
    expect(admitted(fresh, "hot", 2)).toBe(true);
  });

  test("resetKey forgets a client", () => {
    const c = clock();
    const store = new TokenBucketStore(1, 1, 10, c.now);
    store.increment("k");
    expect(admitted(store, "k", 1)).toBe(false);
    store.resetKey("k");
    expect(admitted(store, "k", 1)).toBe(true);
  });
});

describe("rate-limit keys (parseIp / rateLimitKey)", () => {
  const key = (text: string) => {
    const ip = parseIp(text);
    if (!ip) throw new Error(`not parsed: ${text}`);
    return rateLimitKey(ip);
  };

  test("IPv4-mapped IPv6 is the IPv4 address", () => {
    expect(key("1.2.3.4")).toBe("1.2.3.4");
    expect(key("::ffff:1.2.3.4")).toBe("1.2.3.4");
    expect(key("::FFFF:1.2.3.4")).toBe("1.2.3.4");
    expect(key("::ffff:0102:0304")).toBe("1.2.3.4");
    expect(key("[::ffff:1.2.3.4]")).toBe("1.2.3.4");
    expect(key("0:0:0:0:0:ffff:102:304")).toBe("1.2.3.4");
  });

  test("IPv4 keys are per address", () => {
    expect(key("1.2.3.4")).not.toBe(key("1.2.3.5"));
    expect(key(" 10.0.0.1 ")).toBe("10.0.0.1");
  });

  test("IPv6 is keyed by its /64", () => {
    expect(key("2001:db8:1:2::1")).toBe(key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    expect(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).toBe(key("2001:0db8:0001:0002::"));
    expect(key("2001:DB8:1:2::1")).toBe(key("2001:db8:1:2::1"));
    expect(key("[2001:db8:1:2::1]")).toBe(key("2001:db8:1:2::1"));
    expect(key("fe80::1%eth0")).toBe(key("fe80::2"));
    expect(key("2001:db8:1:2::1")).not.toBe(key("2001:db8:1:3::1"));
    expect(key("::1")).not.toBe(key("1.2.3.4"));
    // A /64 key never collides with an IPv4 key.
    expect(key("::102:304")).not.toBe(key("1.2.3.4"));
  });

  test("garbage is not an address", () => {
    for (const bad of ["", "localhost", "1.2.3", "1.2.3.256", "1.2.3.4:80", "2001:db8::1::2", "unknown", "::ffff:1.2.3"]) {
      expect(parseIp(bad)).toBeNull();
    }
  });
});
