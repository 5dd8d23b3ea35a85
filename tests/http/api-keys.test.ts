// POST /fmsg/token (API.md §14): exchanging an API key for a token, every refusal, and minted tokens
// that stop working once their key is revoked or rotated.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { issueApiKey, rotateApiKeySecret } from "../../src/cli/api-key.ts";
import { revokeApiKey } from "../../src/db/api-keys.ts";
import { signJwt, verifyJwt } from "../../src/lib/jwt.ts";
import { startIdentityStub, type IdentityStub } from "../helpers/identity-stub.ts";
import { until } from "../helpers/poll.ts";
import { EMBEDDED, startTestServer, TEST_KEY, type TestServer } from "../helpers/server.ts";

const WWW_AUTH = 'Bearer realm="fmsg"';
const ALICE = "@alice@example.com";

let s: TestServer;
/** FMSG_DOMAIN, a short FMSG_API_TOKEN_TTL, a trusted proxy and an identity stub. */
let t: TestServer;
let stub: IdentityStub;

beforeAll(async () => {
  stub = startIdentityStub("accepting");
  [s, t] = await Promise.all([
    startTestServer(),
    startTestServer({ identityUrl: stub.url, env: { FMSG_DOMAIN: "example.com", FMSG_API_TOKEN_TTL: "90s", FMSG_TRUSTED_PROXIES: "127.0.0.1" } }),
  ]);
});
afterAll(async () => {
  await Promise.all([s?.stop(), t?.stop()]);
  await stub?.stop();
});

type Grant = { access_token: string; token_type: string; expires_in: number; expires_at: string };

const exchange = (server: TestServer, authorization: string | null, headers: Record<string, string> = {}) =>
  server.request("POST", "/fmsg/token", { as: null, headers: authorization === null ? headers : { ...headers, authorization } });

const issue = (server: TestServer, opts: Partial<Parameters<typeof issueApiKey>[1]> = {}) => issueApiKey(server.db.sql, { address: ALICE, ...opts });

async function grant(server: TestServer, key: string): Promise<Grant> {
  const res = await exchange(server, `Bearer ${key}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Grant;
}

async function expectError(res: Response, status: number, error: string) {
  expect(res.status).toBe(status);
  expect(await res.json()).toEqual({ error });
  if (status === 401) expect(res.headers.get("www-authenticate")).toBe(WWW_AUTH);
}

const inbox = (server: TestServer, token: string) => server.request("GET", "/fmsg", { headers: { authorization: `Bearer ${token}` } });

/** Polls with a minted token until it is refused; the contract allows 5 s, the deadline adds a margin. */
async function refusedWithin(server: TestServer, token: string, ms: number): Promise<Response> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await inbox(server, token);
    if (res.status !== 200 || Date.now() > deadline) return res;
    await res.arrayBuffer();
    await Bun.sleep(100);
  }
}

describe("success", () => {
  test("200 with a Bearer token for the key's address, FMSG_API_TOKEN_TTL long (default 12h), usable on /fmsg", async () => {
    const { key, info } = await issue(s);
    const before = Math.floor(Date.now() / 1000);
    const res = await exchange(s, `Bearer ${key}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-limit")).not.toBeNull();
    const body = (await res.json()) as Grant;
    expect(body.token_type).toBe("Bearer");
    expect(body.expires_in).toBe(12 * 3600);
    expect(body.expires_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const verified = verifyJwt(body.access_token, TEST_KEY, Date.now() / 1000);
    if (!verified.ok) throw new Error(verified.reason);
    const { sub, iat, exp, iss, api_key_id } = verified.claims;
    expect({ sub, iss, api_key_id }).toEqual({ sub: ALICE, iss: "fmsg-webapi", api_key_id: info.keyId });
    expect(exp).toBe(Date.parse(body.expires_at) / 1000);
    expect(Number(exp) - before).toBeGreaterThanOrEqual(12 * 3600);
    expect(Number(iat)).toBeGreaterThanOrEqual(before);
    expect((await inbox(s, body.access_token)).status).toBe(200);
  });

  test("FMSG_API_TOKEN_TTL sets the lifetime; iss is FMSG_DOMAIN", async () => {
    const { key } = await issue(t);
    const body = await grant(t, key);
    expect(body.expires_in).toBe(90);
    const verified = verifyJwt(body.access_token, TEST_KEY, Date.now() / 1000);
    expect(verified.ok && verified.claims.iss).toBe("example.com");
  });

  test("never past the key's own expiry", async () => {
    const expiresAt = new Date(Date.now() + 3600_000);
    const { key } = await issue(s, { expiresAt });
    const body = await grant(s, key);
    expect(body.expires_at).toBe(new Date(Math.floor(expiresAt.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z"));
    expect(body.expires_in).toBeLessThanOrEqual(3600);
    expect(body.expires_in).toBeGreaterThan(3500);
  });

  test("records the key's last use", async () => {
    const { key, info } = await issue(s);
    await grant(s, key);
    // Written after the answer (it never delays or fails the exchange), so it is polled for.
    const deadline = Date.now() + 5000;
    let used: Date | null = null;
    while (used === null && Date.now() < deadline) {
      const [row] = await s.db.sql<{ last_used_at: Date | null }[]>`select last_used_at from fmsg_api_key where key_id = ${info.keyId}`;
      used = row?.last_used_at ?? null;
      if (used === null) await Bun.sleep(50);
    }
    expect(used).not.toBeNull();
  });

  test.skipIf(EMBEDDED)("a burst of exchanges while the key's row is locked elsewhere: all 200, and no write waits on that lock", async () => {
    const { key, info } = await issue(s);
    const app = async () =>
      (await s.db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name = 'fmsg-webapi' and wait_event_type = 'Lock'`)[0]!.n;
    await s.db.sql.begin(async (tx) => {
      await tx`select 1 from fmsg_api_key where key_id = ${info.keyId} for update`; // a rotate or revoke in progress
      const answers = await Promise.all(Array.from({ length: 20 }, () => exchange(s, `Bearer ${key}`)));
      expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
      // Recording the use is bookkeeping: it skips a locked row instead of holding a pool
      // connection for the lock timeout (twenty of those filled the pool).
      expect(await app()).toBe(0);
    });
  });
});

describe("refusals", () => {
  test("missing Authorization → 401 auth header is empty", async () => {
    await expectError(await exchange(s, null), 401, "auth header is empty");
  });

  test.each([
    ["an unknown key id", async () => `fmsgk_Unknown0000000_${"A".repeat(43)}`],
    ["a wrong secret", async () => `${(await issue(s)).key.slice(0, -4)}AAAA`],
    ["a revoked key", async () => {
      const { key, info } = await issue(s);
      await revokeApiKey(s.db.sql, info.keyId);
      return key;
    }],
    ["an expired key", async () => {
      const { key, info } = await issue(s, { expiresAt: new Date(Date.now() + 60_000) });
      await s.db.sql`update fmsg_api_key set expires_at = now() - interval '1 second' where key_id = ${info.keyId}`;
      return key;
    }],
    ["the old secret of a rotated key", async () => {
      const { key, info } = await issue(s);
      await rotateApiKeySecret(s.db.sql, info.keyId);
      return key;
    }],
    ["a JWT", async () => s.token(ALICE)],
    ["a key without its secret", async () => `fmsgk_${(await issue(s)).info.keyId}_`],
    ["garbage", async () => "not-a-key"],
  ])("%s → 401 invalid api key", async (_, makeKey) => {
    await expectError(await exchange(s, `Bearer ${await makeKey()}`), 401, "invalid api key");
  });

  test("not a Bearer header → 401 invalid api key", async () => {
    const { key } = await issue(s);
    await expectError(await exchange(s, `Basic ${key}`), 401, "invalid api key");
  });

  test("a client IP outside the key's CIDRs → 403; inside → 200 (X-Forwarded-For only from a trusted proxy)", async () => {
    const outside = await issue(s, { cidrs: ["10.0.0.0/8"] });
    await expectError(await exchange(s, `Bearer ${outside.key}`), 403, "api key not allowed from this address");
    // s trusts no proxy: a forged X-Forwarded-For changes nothing.
    await expectError(await exchange(s, `Bearer ${outside.key}`, { "x-forwarded-for": "10.1.2.3" }), 403, "api key not allowed from this address");
    const inside = await issue(s, { cidrs: ["10.0.0.0/8", "127.0.0.0/8"] });
    await grant(s, inside.key);
    // t trusts 127.0.0.1 as its proxy, so the forwarded address is the client (as for the rate limiter).
    const behindProxy = await issue(t, { cidrs: ["10.0.0.0/8"] });
    expect((await exchange(t, `Bearer ${behindProxy.key}`, { "x-forwarded-for": "10.1.2.3" })).status).toBe(200);
    await expectError(await exchange(t, `Bearer ${behindProxy.key}`, { "x-forwarded-for": "192.0.2.7" }), 403, "api key not allowed from this address");
  });

  test.each([
    ["unknown", 400, (a: string) => `User ${a} not found`],
    ["not_accepting", 403, (a: string) => `User ${a} not authorised to send new messages`],
    ["error", 503, () => "identity service unavailable"],
  ] as const)("identity service answers %s → %i", async (answer, status, text) => {
    const address = `@id${answer.replace("_", "")}@example.com`;
    stub.set(address, answer);
    const { key } = await issue(t, { address });
    await expectError(await exchange(t, `Bearer ${key}`), status, text(address));
  });
});

describe("the key is for /fmsg/token only", () => {
  test("an API key sent to another route → 401", async () => {
    const { key } = await issue(s);
    const res = await inbox(s, key);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(WWW_AUTH);
  });

  test.each(["GET", "PUT", "DELETE"])("%s /fmsg/token → 404 (with a valid token)", async (method) => {
    await expectError(await s.request(method, "/fmsg/token"), 404, "not found");
  });
});

describe("minted tokens follow their key", () => {
  test("revoke: the key is refused at once, and its tokens within 5 s (api key revoked)", async () => {
    const { key, info } = await issue(s);
    const { access_token: token } = await grant(s, key);
    expect((await inbox(s, token)).status).toBe(200);
    await revokeApiKey(s.db.sql, info.keyId);
    await expectError(await exchange(s, `Bearer ${key}`), 401, "invalid api key");
    await expectError(await refusedWithin(s, token, 6500), 401, "api key revoked");
  });

  test("rotate: the new key's token works at once; tokens of the old secret are refused within 5 s", async () => {
    const { key, info } = await issue(s);
    const { access_token: old } = await grant(s, key);
    expect((await inbox(s, old)).status).toBe(200);
    const rotated = await rotateApiKeySecret(s.db.sql, info.keyId);
    const { access_token: fresh } = await grant(s, rotated!.key);
    expect((await inbox(s, fresh)).status).toBe(200);
    await expectError(await refusedWithin(s, old, 6500), 401, "api key revoked");
    expect((await inbox(s, fresh)).status).toBe(200);
  });

  test.skipIf(EMBEDDED)("a token of the old secret minted while the rotation was uncommitted, clock past its generation, is refused too", async () => {
    // The probe's race: rotated_at is the rotating transaction's start; an exchange that still reads
    // the old secret after the clock passed that second got an iat at or past the new generation.
    const { key, info } = await issue(s);
    let minted = "";
    await s.db.sql.begin(async (tx) => {
      const [row] = await tx<{ started: Date }[]>`select now() as started`;
      const started = row!.started;
      expect(await rotateApiKeySecret(tx as unknown as typeof s.db.sql, info.keyId)).not.toBeNull();
      // Not a sleep standing in for an event: the condition is the wall clock itself.
      await until(() => Date.now() >= (Math.ceil(started.getTime() / 1000) + 1) * 1000, "the clock past the new generation", 5000);
      minted = (await grant(s, key)).access_token; // the old secret is all other sessions see yet
    });
    await expectError(await refusedWithin(s, minted, 6500), 401, "api key revoked");
  });

  test("a key that expires takes its tokens with it", async () => {
    const { key, info } = await issue(s, { expiresAt: new Date(Date.now() + 3600_000) });
    const { access_token: token } = await grant(s, key);
    await s.db.sql`update fmsg_api_key set expires_at = now() where key_id = ${info.keyId}`;
    await expectError(await refusedWithin(s, token, 6500), 401, "api key revoked");
  });

  test("a signed token naming no possible key (a NUL, a wrong shape) → 401 api key revoked, on every route", async () => {
    for (const keyId of ["a\u0000b", "short", "x".repeat(65), ""]) {
      const token = signJwt({ sub: ALICE, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600, api_key_id: keyId }, TEST_KEY);
      await expectError(await inbox(s, token), 401, "api key revoked");
      await expectError(await s.request("GET", "/fmsg/events?timeout=1", { as: null, headers: { authorization: `Bearer ${token}` } }), 401, "api key revoked");
    }
  });
});
