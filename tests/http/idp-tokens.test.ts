// Identity-provider tokens (docs/API.md "Authentication"): EdDSA JWTs verified against a JWKS this test serves
// with keys it makes — the server's answers, and the verifier's key cache, refetch cooldown and outages.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { authenticateBearer } from "../../src/http/auth.ts";
import { jwksVerifier, type IdentityProvider } from "../../src/identity/jwks-verifier.ts";
import { signJwt } from "../../src/lib/jwt.ts";
import { endlessBody } from "../helpers/endless-body.ts";
import { startIdentityStub, type IdentityStub } from "../helpers/identity-stub.ts";
import { startTestServer, TEST_KEY, type TestServer } from "../helpers/server.ts";

const ISSUER = "https://id.example.com";
const AUDIENCE = "fmsg-test";
/** The `sub` of every refused token: fmsgid must never be asked about it. */
const BAD_TOKEN_SUB = "@badidp@example.com";

type Jwks = { url: string; keys: JWK[]; down: boolean; readonly requests: number; stop(): Promise<void> };

/** The identity provider's JWKS endpoint: serves `keys`, or 503 while `down`; counts requests. */
function startJwks(keys: JWK[]): Jwks {
  let requests = 0;
  const state = { keys, down: false };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch() {
      requests += 1;
      if (state.down) return new Response("unavailable", { status: 503 });
      return Response.json({ keys: state.keys });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/.well-known/jwks.json`,
    get keys() {
      return state.keys;
    },
    set keys(k) {
      state.keys = k;
    },
    get down() {
      return state.down;
    },
    set down(d) {
      state.down = d;
    },
    get requests() {
      return requests;
    },
    stop: () => server.stop(true),
  };
}

type SigningKey = { kid: string; privateKey: CryptoKey; jwk: JWK };

async function makeKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA");
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" } };
}

const now = () => Math.floor(Date.now() / 1000);
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function claims(extra: JWTPayload = {}): JWTPayload {
  return { iss: ISSUER, aud: AUDIENCE, sub: "@idp@example.com", iat: now() - 5, exp: now() + 600, ...extra };
}

/** Signs `payload` with `key` (undefined claims are left out, so a test can drop one). */
function idpToken(key: SigningKey, payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const body = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
  return new SignJWT(body).setProtectedHeader({ alg: "EdDSA", kid: key.kid, ...header }).sign(key.privateKey);
}

let keyA: SigningKey;
let keyB: SigningKey;
let keyC: SigningKey;
let stub: IdentityStub;
let jwks: Jwks;
let s: TestServer;

beforeAll(async () => {
  [keyA, keyB, keyC] = await Promise.all([makeKey("key-a"), makeKey("key-b"), makeKey("key-c")]);
  stub = startIdentityStub("accepting");
  jwks = startJwks([keyA.jwk]);
  s = await startTestServer({
    identityUrl: stub.url,
    env: { FMSG_JWT_JWKS_URL: jwks.url, FMSG_JWT_ISSUER: ISSUER, FMSG_JWT_AUDIENCE: AUDIENCE, FMSG_API_MAX_TOKEN_TTL: "1h" },
  });
});
afterAll(async () => {
  await s?.stop();
  await jwks?.stop();
  await stub?.stop();
});

function withToken(server: TestServer, token: string) {
  return server.request("GET", "/fmsg", { headers: { authorization: `Bearer ${token}` } });
}

async function expect401(res: Response, reason: string): Promise<void> {
  expect(res.status).toBe(401);
  expect(res.headers.get("www-authenticate")).toBe('Bearer realm="fmsg"');
  expect(await res.json()).toEqual({ error: reason });
}

describe("the server with an identity provider configured", () => {
  test("a token signed by a JWKS key is accepted, and its sub gets the fmsgid check", async () => {
    const res = await withToken(s, await idpToken(keyA, claims({ sub: "@idp@example.com" })));
    expect(res.status).toBe(200);
    expect(jwks.requests).toBeGreaterThanOrEqual(1);
    expect(stub.requests("@idp@example.com")).toBeGreaterThanOrEqual(1);
  });

  test("aud may be a list that contains the audience", async () => {
    const res = await withToken(s, await idpToken(keyA, claims({ aud: ["other-api", AUDIENCE] })));
    expect(res.status).toBe(200);
  });

  test("the sub's fmsgid answer applies as to every token (403 for not accepting)", async () => {
    stub.set("@closed@example.com", "not_accepting");
    const res = await withToken(s, await idpToken(keyA, claims({ sub: "@closed@example.com" })));
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: "User @closed@example.com not authorised to send new messages" });
  });

  test("HS256 tokens of the server's own secret keep working beside it", async () => {
    expect((await s.request("GET", "/fmsg", { as: "@hs256@example.com" })).status).toBe(200);
  });

  const bad = (extra: JWTPayload): JWTPayload => claims({ sub: BAD_TOKEN_SUB, ...extra });
  const refused: [string, () => Promise<string>, string][] = [
    ["another issuer", () => idpToken(keyA, bad({ iss: "https://evil.example.com" })), "token issuer is invalid"],
    ["no issuer", () => idpToken(keyA, bad({ iss: undefined })), "token issuer is invalid"],
    ["another audience", () => idpToken(keyA, bad({ aud: "other-api" })), "token audience is invalid"],
    ["no audience", () => idpToken(keyA, bad({ aud: undefined })), "token audience is invalid"],
    ["expired beyond the 10 s leeway", () => idpToken(keyA, bad({ iat: now() - 600, exp: now() - 20 })), "token is expired"],
    ["no exp", () => idpToken(keyA, bad({ exp: undefined })), "token has no expiry"],
    ["nbf beyond the leeway", () => idpToken(keyA, bad({ nbf: now() + 60 })), "token is not valid yet"],
    ["a lifetime over FMSG_API_MAX_TOKEN_TTL (1h)", () => idpToken(keyA, bad({ iat: now(), exp: now() + 7200 })), "token lifetime exceeds the maximum"],
    ["a lifetime over the maximum, counted from now without iat", () => idpToken(keyA, bad({ iat: undefined, exp: now() + 7200 })), "token lifetime exceeds the maximum"],
    ["a kid the JWKS does not list", () => idpToken({ ...keyA, kid: "no-such-key" }, bad({})), "token signing key is unknown"],
    ["a listed kid but another private key", () => idpToken({ ...keyB, kid: keyA.kid }, bad({})), "signature is invalid"],
    ["an HS256 signature under an EdDSA header", async () => signJwt(bad({}), TEST_KEY, { alg: "EdDSA", kid: keyA.kid }), "signature is invalid"],
    ["HS256 keyed with the provider's public key", async () => signJwt(bad({}), new TextEncoder().encode(JSON.stringify(keyA.jwk)), { alg: "HS256", kid: keyA.kid }), "signature is invalid"],
    [
      "an ES256 token",
      async () => {
        const { privateKey } = await generateKeyPair("ES256");
        return new SignJWT(bad({})).setProtectedHeader({ alg: "ES256", kid: keyA.kid }).sign(privateKey);
      },
      "signing method is invalid",
    ],
    ["the fully-specified alg name Ed25519", () => idpToken(keyA, bad({}), { alg: "Ed25519" }), "signing method is invalid"],
    ["alg none", async () => `${b64url({ alg: "none", kid: keyA.kid })}.${b64url(bad({}))}.`, "token is malformed"],
    ["a tampered payload", async () => {
      const [head, , sig] = (await idpToken(keyA, bad({}))).split(".");
      return `${head}.${b64url(bad({ sub: "@mallory@example.com" }))}.${sig}`;
    }, "signature is invalid"],
  ];
  test.each(refused)("%s → 401", async (_name, make, reason) => {
    await expect401(await withToken(s, await make()), reason);
  });

  test("no refused token cost an fmsgid request", () => {
    expect(stub.requests(BAD_TOKEN_SUB)).toBe(0);
    expect(stub.requests("@mallory@example.com")).toBe(0);
  });

  test("a sub that is not an address → 401 before any fmsgid request", async () => {
    await expect401(await withToken(s, await idpToken(keyA, claims({ sub: "not-an-address" }))), "token subject is not a valid address");
    await expect401(await withToken(s, await idpToken(keyA, claims({ sub: "@nodomain" }))), "token subject is not a valid address");
    expect(stub.requests("not-an-address")).toBe(0);
    expect(stub.requests("@nodomain")).toBe(0);
  });

  test("JWKS down while its key is held: a new token signed by it is still accepted", async () => {
    expect((await withToken(s, await idpToken(keyA, claims({ sub: "@before@example.com" })))).status).toBe(200);
    jwks.down = true;
    try {
      const res = await withToken(s, await idpToken(keyA, claims({ sub: "@during@example.com" })));
      expect(res.status).toBe(200);
    } finally {
      jwks.down = false;
    }
  });
});

describe("the server when the JWKS cannot be fetched and no key is held", () => {
  let downJwks: Jwks;
  let cold: TestServer;
  beforeAll(async () => {
    downJwks = startJwks([keyA.jwk]);
    downJwks.down = true;
    cold = await startTestServer({ env: { FMSG_JWT_JWKS_URL: downJwks.url, FMSG_JWT_ISSUER: ISSUER } });
  });
  afterAll(async () => {
    await cold?.stop();
    await downJwks?.stop();
  });

  test("an EdDSA token → 401 identity provider keys unavailable (fail closed, never 500)", async () => {
    await expect401(await withToken(cold, await idpToken(keyA, claims())), "identity provider keys unavailable");
    expect(downJwks.requests).toBeGreaterThanOrEqual(1);
  });

  test("HS256 tokens are unaffected by the provider's outage", async () => {
    expect((await cold.request("GET", "/fmsg", { as: "@hs256@example.com" })).status).toBe(200);
  });
});

describe("a JWKS endpoint that answers 200 and a body without end", () => {
  const endless = endlessBody();
  let server: ReturnType<typeof Bun.serve>;
  let cold: TestServer;
  beforeAll(async () => {
    server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => endless.response() });
    cold = await startTestServer({ env: { FMSG_JWT_JWKS_URL: `http://127.0.0.1:${server.port}/jwks.json`, FMSG_JWT_ISSUER: ISSUER } });
  });
  afterAll(async () => {
    await cold?.stop();
    await server?.stop(true);
  });

  test("an EdDSA token → 401 keys unavailable, the server having read no more than 1 MiB of it", async () => {
    await expect401(await withToken(cold, await idpToken(keyA, claims())), "identity provider keys unavailable");
    expect(endless.sent).toBeGreaterThan(0);
    expect(endless.sent).toBeLessThan(32 * 1024 * 1024);
  });
});

test("without FMSG_JWT_JWKS_URL an EdDSA token is refused like any other alg", async () => {
  const opts = { jwtKey: TEST_KEY, maxTokenTtl: 3600, identity: { lookup: async () => "accepting" as const } };
  const token = await idpToken(keyA, claims());
  await expect(authenticateBearer(`Bearer ${token}`, opts, now())).rejects.toThrow("signing method is invalid");
});

/**
 * The verifier on its own, with the clock given per call: the cooldown and key age are minutes long,
 * so the test moves time instead of waiting for it. Each test has its own JWKS endpoint to count.
 */
describe("jwksVerifier: key cache, refetch cooldown, outages", () => {
  const provider = (url: string): IdentityProvider => ({ jwksUrl: url, issuer: ISSUER, audience: null });
  let endpoint: Jwks;
  let t0: number;
  /** A token valid for the whole test (the clock moves up to ~11 minutes). */
  const longToken = (key: SigningKey) => idpToken(key, claims({ iat: t0, exp: t0 + 3000 }));
  beforeAll(() => {
    endpoint = startJwks([]);
  });
  afterAll(() => endpoint?.stop());
  const fresh = (keys: JWK[]) => {
    endpoint.keys = keys;
    endpoint.down = false;
    t0 = now();
    const before = endpoint.requests;
    return { verifier: jwksVerifier(provider(endpoint.url), 3600), fetches: () => endpoint.requests - before };
  };

  test("an unknown kid refetches once, a key added meanwhile is then accepted; another unknown kid within the minute does not refetch", async () => {
    const { verifier, fetches } = fresh([keyA.jwk]);
    expect((await verifier.verify(await longToken(keyA), t0)).ok).toBe(true);
    expect(fetches()).toBe(1);

    endpoint.keys = [keyA.jwk, keyB.jwk]; // the provider adds a key
    expect(await verifier.verify(await longToken(keyB), t0 + 30)).toEqual({ ok: false, reason: "token signing key is unknown" });
    expect(fetches()).toBe(1); // within a minute of the last fetch: not asked again

    expect((await verifier.verify(await longToken(keyB), t0 + 61)).ok).toBe(true);
    expect(fetches()).toBe(2); // one refetch, and the new key verifies

    expect(await verifier.verify(await longToken(keyC), t0 + 62)).toEqual({ ok: false, reason: "token signing key is unknown" });
    expect(fetches()).toBe(2); // a second unknown kid within the minute: no refetch
    expect((await verifier.verify(await longToken(keyA), t0 + 62)).ok).toBe(true);
  });

  test("concurrent first requests share one JWKS fetch", async () => {
    const { verifier, fetches } = fresh([keyA.jwk]);
    const token = await longToken(keyA);
    const results = await Promise.all(Array.from({ length: 5 }, () => verifier.verify(token, t0)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(fetches()).toBe(1);
  });

  test("JWKS down and nothing held: refused (fail closed), retried no sooner than 5 s", async () => {
    const { verifier, fetches } = fresh([keyA.jwk]);
    endpoint.down = true;
    const token = await longToken(keyA);
    expect(await verifier.verify(token, t0)).toEqual({ ok: false, reason: "identity provider keys unavailable" });
    expect(await verifier.verify(token, t0 + 1)).toEqual({ ok: false, reason: "identity provider keys unavailable" });
    expect(fetches()).toBe(1);
    endpoint.down = false;
    expect((await verifier.verify(token, t0 + 6)).ok).toBe(true);
    expect(fetches()).toBe(2);
  });

  test("JWKS down with the key held: still accepted, also once the keys are past their age; refetch at most once a minute", async () => {
    const { verifier, fetches } = fresh([keyA.jwk]);
    const token = await longToken(keyA);
    expect((await verifier.verify(token, t0)).ok).toBe(true);
    endpoint.down = true;
    expect((await verifier.verify(token, t0 + 30)).ok).toBe(true);
    expect(fetches()).toBe(1); // held keys are fresh: no request at all
    expect((await verifier.verify(token, t0 + 11 * 60)).ok).toBe(true);
    expect(fetches()).toBe(2); // past ten minutes: one refresh tried, failed, held keys kept
    expect((await verifier.verify(token, t0 + 11 * 60 + 30)).ok).toBe(true);
    expect(fetches()).toBe(2);
  });

  test("a key the provider withdrew stops verifying once the keys are refreshed (after ten minutes)", async () => {
    const { verifier, fetches } = fresh([keyA.jwk, keyB.jwk]);
    const tokenA = await longToken(keyA);
    expect((await verifier.verify(tokenA, t0)).ok).toBe(true);
    endpoint.keys = [keyB.jwk];
    expect((await verifier.verify(tokenA, t0 + 5 * 60)).ok).toBe(true); // still held
    expect(await verifier.verify(tokenA, t0 + 11 * 60)).toEqual({ ok: false, reason: "token signing key is unknown" });
    expect(fetches()).toBe(2);
  });

  test("keys other than Ed25519 in the JWKS, even malformed entries, are ignored, not fatal", async () => {
    const { publicKey } = await generateKeyPair("ES256");
    const junk = "not a key" as unknown as JWK;
    const { verifier } = fresh([{ ...(await exportJWK(publicKey)), kid: "ec-key" }, { kty: "oct", k: "c2VjcmV0", kid: "hmac" }, junk, keyA.jwk]);
    expect((await verifier.verify(await longToken(keyA), t0)).ok).toBe(true);
  });

  test("the verifier itself accepts EdDSA only, whatever key the JWKS lists", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const { verifier } = fresh([{ ...(await exportJWK(publicKey)), kid: "ec-key", alg: "ES256" }, keyA.jwk]);
    const token = await new SignJWT(claims({ iat: t0, exp: t0 + 600 })).setProtectedHeader({ alg: "ES256", kid: "ec-key" }).sign(privateKey);
    expect(await verifier.verify(token, t0)).toEqual({ ok: false, reason: "signing method is invalid" });
  });
});
