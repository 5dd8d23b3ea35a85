// Authentication (docs/API.md §1, "Errors"): the Authorization header, strict HS256 JWT checks, the `sub`
// address, and the identity service (fmsgid) answers, caching and request coalescing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { authenticateToken, VerifiedTokens } from "../../src/http/auth.ts";
import { LEEWAY_SECONDS, signJwt } from "../../src/lib/jwt.ts";
import { startIdentityStub, type IdentityStub } from "../helpers/identity-stub.ts";
import { startTestServer, TEST_KEY, type TestServer } from "../helpers/server.ts";

const WWW_AUTH = 'Bearer realm="fmsg"';
/** The address every bad-token test puts in `sub`: fmsgid must never be asked about it. */
const BAD_TOKEN_SUB = "@badtoken@example.com";

let stub: IdentityStub;
let s: TestServer;

beforeAll(async () => {
  stub = startIdentityStub("accepting");
  s = await startTestServer({ identityUrl: stub.url });
});
afterAll(async () => {
  await s?.stop();
  await stub?.stop();
});

const now = () => Math.floor(Date.now() / 1000);
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function withToken(token: string, path = "/fmsg") {
  return s.request("GET", path, { headers: { authorization: `Bearer ${token}` } });
}

async function expect401(res: Response, reason?: string): Promise<string> {
  expect(res.status).toBe(401);
  expect(res.headers.get("www-authenticate")).toBe(WWW_AUTH);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: unknown };
  expect(typeof body.error).toBe("string");
  expect((body.error as string).length).toBeGreaterThan(0);
  if (reason !== undefined) expect(body.error).toBe(reason);
  return body.error as string;
}

describe("Authorization header", () => {
  test("missing header → 401 auth header is empty", async () => {
    await expect401(await s.request("GET", "/fmsg", { as: null }), "auth header is empty");
  });

  test("Basic credentials → 401 auth header is invalid", async () => {
    await expect401(await s.request("GET", "/fmsg", { headers: { authorization: "Basic x" } }), "auth header is invalid");
  });

  test("Bearer without a token → 401 auth header is invalid", async () => {
    await expect401(await s.request("GET", "/fmsg", { headers: { authorization: "Bearer" } }), "auth header is invalid");
    await expect401(await s.request("GET", "/fmsg", { headers: { authorization: "Bearer   " } }), "auth header is invalid");
  });

  test("a valid token is accepted", async () => {
    const res = await s.request("GET", "/fmsg", { as: "@valid@example.com" });
    expect(res.status).toBe(200);
  });

  test("401 comes before route validation: GET /fmsg/abc without a token", async () => {
    await expect401(await s.request("GET", "/fmsg/abc", { as: null }), "auth header is empty");
    // With a token the same request is a 400, so the 401 above is the middleware order at work.
    const res = await s.request("GET", "/fmsg/abc", { as: "@valid@example.com" });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "invalid message id" });
  });

  test("an unknown route under /fmsg without a token is 401, not 404", async () => {
    await expect401(await s.request("GET", "/fmsg/1/nope", { as: null }), "auth header is empty");
  });
});

describe("token verification", () => {
  const good = () => ({ sub: BAD_TOKEN_SUB, iat: now() - 5, exp: now() + 600 });

  test("alg none (unsigned) → 401", async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(good())}.`;
    await expect401(await withToken(token));
  });

  test("alg none with a signature part → 401 signing method is invalid", async () => {
    const token = signJwt(good(), TEST_KEY, { alg: "none", typ: "JWT" });
    await expect401(await withToken(token), "signing method is invalid");
  });

  test("a crit header (an extension the verifier must understand) → 401 token is malformed, even well signed", async () => {
    for (const crit of [["exp-ext"], [], "b64"]) {
      const token = signJwt(good(), TEST_KEY, { alg: "HS256", typ: "JWT", crit, "exp-ext": 1 });
      await expect401(await withToken(token), "token is malformed");
    }
  });

  test("a second spelling of the right signature (the last character's unused bits changed) → 401 signature is invalid", async () => {
    const token = signJwt(good(), TEST_KEY);
    const sig = token.slice(token.lastIndexOf(".") + 1);
    // 32 bytes in 43 characters: the last one carries 4 bits and 2 unused ones.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(sig.at(-1)!);
    const twin = `${token.slice(0, -1)}${alphabet[last ^ 1]}`;
    expect(Buffer.from(twin.slice(token.lastIndexOf(".") + 1), "base64url").equals(Buffer.from(sig, "base64url"))).toBe(true);
    await expect401(await withToken(twin), "signature is invalid");
  });

  test("alg HS512 → 401 signing method is invalid", async () => {
    const token = signJwt(good(), TEST_KEY, { alg: "HS512", typ: "JWT" });
    await expect401(await withToken(token), "signing method is invalid");
  });

  test("RS256 header → 401 signing method is invalid", async () => {
    const token = signJwt(good(), TEST_KEY, { alg: "RS256", typ: "JWT" });
    await expect401(await withToken(token), "signing method is invalid");
  });

  test("signed with another key → 401 signature is invalid", async () => {
    const token = signJwt(good(), new TextEncoder().encode("some-other-secret"));
    await expect401(await withToken(token), "signature is invalid");
  });

  test("tampered claims → 401 signature is invalid", async () => {
    const [head, , sig] = signJwt(good(), TEST_KEY).split(".");
    const forged = `${head}.${b64url({ ...good(), sub: "@mallory@example.com" })}.${sig}`;
    await expect401(await withToken(forged), "signature is invalid");
  });

  test("no exp → 401", async () => {
    const token = signJwt({ sub: BAD_TOKEN_SUB, iat: now() - 5 }, TEST_KEY);
    await expect401(await withToken(token));
  });

  test("exp that is not a number → 401", async () => {
    const token = signJwt({ sub: BAD_TOKEN_SUB, exp: String(now() + 600) }, TEST_KEY);
    await expect401(await withToken(token));
  });

  test("expired beyond the 10 s leeway → 401 token is expired", async () => {
    const token = signJwt({ sub: BAD_TOKEN_SUB, iat: now() - 600, exp: now() - 20 }, TEST_KEY);
    await expect401(await withToken(token), "token is expired");
  });

  test("expired within the 10 s leeway → accepted", async () => {
    const token = signJwt({ sub: "@leeway@example.com", iat: now() - 600, exp: now() - 3 }, TEST_KEY);
  });

  test("nbf in the future beyond the leeway → 401", async () => {
    const token = signJwt({ sub: BAD_TOKEN_SUB, nbf: now() + 30, exp: now() + 600 }, TEST_KEY);
    await expect401(await withToken(token));
  });

  test("nbf and iat slightly in the future (within the leeway) → accepted", async () => {
    const token = signJwt({ sub: "@leeway@example.com", nbf: now() + 3, iat: now() + 3, exp: now() + 600 }, TEST_KEY);
  });

  test("iat in the future beyond the leeway → 401", async () => {
    const token = signJwt({ sub: BAD_TOKEN_SUB, iat: now() + 30, exp: now() + 600 }, TEST_KEY);
    await expect401(await withToken(token));
  });

  test.each([
    ["not a JWT", "not-a-jwt"],
    ["two parts", "abc.def"],
    ["four parts", "a.b.c.d"],
    ["non-JSON parts", "aGVsbG8.d29ybGQ.c2ln"],
    ["JSON array claims", `${b64url({ alg: "HS256" })}.${b64url([1, 2])}.c2ln`],
  ])("malformed token (%s) → 401", async (_name, token) => {
    await expect401(await withToken(token));
  });

  test.each([["alice"], ["@a@b"], [""], ["@alice@"], ["alice@example.com"]])(
    "sub %p is not a valid address → 401",
    async (sub) => {
      const token = signJwt({ sub, iat: now() - 5, exp: now() + 600 }, TEST_KEY);
      await expect401(await withToken(token));
      expect(stub.requests(sub)).toBe(0);
    },
  );

  test("sub that is not a string → 401", async () => {
    const token = signJwt({ sub: 42, iat: now() - 5, exp: now() + 600 }, TEST_KEY);
    await expect401(await withToken(token));
  });

  test("no bad token above ever cost an fmsgid request", () => {
    // Runs after the rejections above (bun runs tests of a file in order).
    expect(stub.requests(BAD_TOKEN_SUB)).toBe(0);
    expect(stub.requests("@mallory@example.com")).toBe(0);
  });
});

describe("identity service (fmsgid)", () => {
  test("unknown address → 400 User <addr> not found", async () => {
    stub.set("@Ghost@example.com", "unknown");
    const res = await s.request("GET", "/fmsg", { as: "@Ghost@example.com" });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "User @Ghost@example.com not found" });
  });

  test("not accepting → 403 User <addr> not authorised to send new messages", async () => {
    stub.set("@closed@example.com", "not_accepting");
    const res = await s.request("GET", "/fmsg", { as: "@closed@example.com" });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: "User @closed@example.com not authorised to send new messages" });
  });

  test("fmsgid answers 500 → 503 identity service unavailable", async () => {
    stub.set("@err500@example.com", "error");
    const res = await s.request("GET", "/fmsg", { as: "@err500@example.com" });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "identity service unavailable" });
  });

  test("fmsgid answers 200 with a garbage body → 503", async () => {
    stub.set("@garbage@example.com", "garbage");
    const res = await s.request("GET", "/fmsg", { as: "@garbage@example.com" });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "identity service unavailable" });
  });

  test("fmsgid answers 200 and a body without end → 503, having read no more than a small answer", async () => {
    stub.set("@endless@example.com", "endless");
    const res = await s.request("GET", "/fmsg", { as: "@endless@example.com" });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "identity service unavailable" });
    // The server gave up after 64 KiB: what the stub handed over is that plus socket buffers, not
    // the gigabytes a reader that holds the whole answer takes in until its 3 s timeout.
    expect(stub.endlessSent()).toBeLessThan(32 * 1024 * 1024);
  });

  test("positive answers are cached: a second request costs no fmsgid request", async () => {
    const addr = "@cached@example.com";
    expect((await s.request("GET", "/fmsg", { as: addr })).status).toBe(200);
    expect(stub.requests(addr)).toBe(1);
    expect((await s.request("GET", "/fmsg", { as: addr })).status).toBe(200);
    expect(stub.requests(addr)).toBe(1);
    // Keyed by the exact spelling: folding in JavaScript could merge addresses the database keeps
    // apart, so another spelling is asked for itself (once) rather than served another's answer.
    expect((await s.request("GET", "/fmsg", { as: "@CACHED@example.com" })).status).toBe(200);
    expect((await s.request("GET", "/fmsg", { as: "@CACHED@example.com" })).status).toBe(200);
    expect(stub.requests(addr)).toBe(2);
  });

  test("negative answers are not cached", async () => {
    const refused = "@refused@example.com";
    stub.set(refused, "not_accepting");
    expect((await s.request("GET", "/fmsg", { as: refused })).status).toBe(403);
    expect((await s.request("GET", "/fmsg", { as: refused })).status).toBe(403);
    expect(stub.requests(refused)).toBe(2);

    const unknown = "@nobody@example.com";
    stub.set(unknown, "unknown");
    expect((await s.request("GET", "/fmsg", { as: unknown })).status).toBe(400);
    expect((await s.request("GET", "/fmsg", { as: unknown })).status).toBe(400);
    expect(stub.requests(unknown)).toBe(2);
  });

  test("failures are not cached: fmsgid recovering is seen at once", async () => {
    const addr = "@flaky@example.com";
    stub.set(addr, "error");
    expect((await s.request("GET", "/fmsg", { as: addr })).status).toBe(503);
    stub.set(addr, "accepting");
    expect((await s.request("GET", "/fmsg", { as: addr })).status).toBe(200);
    expect(stub.requests(addr)).toBe(2);
  });

  test("a refusal is seen at once when the user stops accepting (no stale negative entry)", async () => {
    const addr = "@toggle@example.com";
    stub.set(addr, "not_accepting");
    expect((await s.request("GET", "/fmsg", { as: addr })).status).toBe(403);
    stub.set(addr, "accepting");
    expect((await s.request("GET", "/fmsg", { as: addr })).status).toBe(200);
  });

  test("concurrent look-ups of one address share one fmsgid request", async () => {
    const addr = "@slowpoke@example.com";
    stub.set(addr, "slow");
    const identity = s.server.identity!;
    const before = identity.stats.hits + identity.stats.misses;
    const responses = Promise.all([1, 2, 3, 4].map(() => s.request("GET", "/fmsg", { as: addr })));
    // Bounded wait until all four requests are inside the identity look-up and the stub holds the
    // first fmsgid request (nothing answered yet, so none of them can be served from the cache).
    const entered = () => identity.stats.hits + identity.stats.misses - before;
    for (let i = 0; i < 1000 && (entered() < 4 || stub.requests(addr) < 1); i++) await Bun.sleep(5);
    expect(identity.stats.hits + identity.stats.misses - before).toBe(4);
    expect(stub.requests(addr)).toBe(1);
    stub.releaseSlow();
    const statuses = (await responses).map((r) => r.status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(stub.requests(addr)).toBe(1);
  });
});

describe("FMSG_ID_CACHE_SECONDS=0", () => {
  let stub0: IdentityStub;
  let s0: TestServer;
  beforeAll(async () => {
    stub0 = startIdentityStub("accepting");
    s0 = await startTestServer({ identityUrl: stub0.url, env: { FMSG_ID_CACHE_SECONDS: "0" } });
  });
  afterAll(async () => {
    await s0?.stop();
    await stub0?.stop();
  });

  test("nothing is cached, and one request costs exactly one fmsgid look-up", async () => {
    const addr = "@uncached@example.com";
    expect((await s0.request("GET", "/fmsg", { as: addr })).status).toBe(200);
    expect(stub0.requests(addr)).toBe(1);
    expect((await s0.request("GET", "/fmsg", { as: addr })).status).toBe(200);
    expect(stub0.requests(addr)).toBe(2);
    expect((await s0.request("GET", "/fmsg/123456", { as: addr })).status).toBe(404);
    expect(stub0.requests(addr)).toBe(3);
  });
});

describe("identity service down", () => {
  let down: TestServer;
  beforeAll(async () => {
    const gone = startIdentityStub();
    const url = gone.url;
    await gone.stop(); // nothing listens on that port any more: connection refused
    down = await startTestServer({ identityUrl: url });
  });
  afterAll(async () => {
    await down?.stop();
  });

  test("connection refused → 503 identity service unavailable (fail closed)", async () => {
    const res = await down.request("GET", "/fmsg", { as: "@alice@example.com" });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "identity service unavailable" });
    // Not cached either: the next request is refused the same way, not let through.
    expect((await down.request("GET", "/fmsg", { as: "@alice@example.com" })).status).toBe(503);
  });

  test("a bad token is still a 401, not a 503", async () => {
    await expect401(await down.request("GET", "/fmsg", { as: null }), "auth header is empty");
  });
});

describe("FMSG_ID_URL=builtin", () => {
  let builtin: TestServer;
  beforeAll(async () => {
    builtin = await startTestServer({ identityUrl: "builtin" });
  });
  afterAll(async () => {
    await builtin?.stop();
  });

  test("accepts any valid address", async () => {
    expect(builtin.server.identity).toBeNull();
    for (const addr of ["@anyone@example.com", "@Zoë.Test@sub.example.org", "@x@localhost"]) {
      const res = await builtin.request("GET", "/fmsg", { as: addr });
      expect(res.status).toBe(200);
    }
  });

  test("still rejects an invalid sub", async () => {
    const token = signJwt({ sub: "alice", iat: now() - 5, exp: now() + 600 }, TEST_KEY);
    await expect401(await builtin.request("GET", "/fmsg", { headers: { authorization: `Bearer ${token}` } }));
  });
});

describe("verified-token cache", () => {
  test("a cached token still expires, and the cache stays bounded", () => {
    const cache = new VerifiedTokens(2);
    const t0 = 1_800_000_000;
    const token = signJwt({ sub: "@cached@example.com", exp: t0 + 60 }, TEST_KEY);
    expect(authenticateToken(`Bearer ${token}`, TEST_KEY, t0, cache)).toBe("@cached@example.com");
    expect(cache.get(token, t0 + 30)).toBe("@cached@example.com");
    expect(() => authenticateToken(`Bearer ${token}`, TEST_KEY, t0 + 60 + LEEWAY_SECONDS + 1, cache)).toThrow("token is expired");
    expect(cache.get(token, t0)).toBeNull(); // dropped once seen expired
    const others = [1, 2, 3].map((i) => signJwt({ sub: `@u${i}@example.com`, exp: t0 + 60 }, TEST_KEY));
    for (const t of others) authenticateToken(`Bearer ${t}`, TEST_KEY, t0, cache);
    expect(cache.get(others[0]!, t0)).toBeNull(); // the oldest went first
    expect(cache.get(others[2]!, t0)).toBe("@u3@example.com");
  });

  test("a forged token is never served from the cache of a genuine one", () => {
    const cache = new VerifiedTokens();
    const t0 = 1_800_000_000;
    const genuine = signJwt({ sub: "@real@example.com", exp: t0 + 60 }, TEST_KEY);
    authenticateToken(`Bearer ${genuine}`, TEST_KEY, t0, cache);
    const forged = `${genuine.slice(0, genuine.lastIndexOf("."))}.AAAA`;
    expect(() => authenticateToken(`Bearer ${forged}`, TEST_KEY, t0, cache)).toThrow("signature is invalid");
  });
});
