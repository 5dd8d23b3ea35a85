// Hostile input and held locks: deep JSON, escaped ids, endless tokens, a row locked elsewhere, a busy port.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { signJwt } from "../../src/lib/jwt.ts";
import { startServer } from "../../src/server.ts";
import { ALICE, BOB, createDraft, errorOf, sentMessage, snapshot } from "../helpers/messages.ts";
import { draft, EMBEDDED, startTestServer, TEST_KEY, TEST_SECRET, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ env: { FMSG_API_DB_LOCK_TIMEOUT_MS: "300" } });
});
afterAll(() => s.stop());

describe("deeply nested JSON", () => {
  test.each([
    ["arrays", "[".repeat(100_000)],
    ["objects", '{"a":'.repeat(100_000)],
    ["inside a field", `{"version":1,"data":${"[".repeat(5000)}`],
  ])("%s → 400 before parsing, nothing written", async (_name, text) => {
    const before = await snapshot(s);
    const res = await s.request("POST", "/fmsg", { body: text, headers: { "content-type": "application/json" } });
    expect(await errorOf(res)).toEqual({ status: 400, error: "request body is nested too deeply" });
    expect(await snapshot(s)).toBe(before);
  });

  test("brackets inside strings do not count", async () => {
    const res = await s.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { data: "[".repeat(10_000), topic: "{{{{" }) });
    expect(res.status).toBe(201);
  });
});

describe("JSON bodies of very many values", () => {
  const many = `{"version":1,"x":[${"{},".repeat(20_000)}{}]}`;
  test.each([
    ["empty objects, with a Content-Length", many, false],
    ["empty objects, streamed without a length", many, true],
    ["numbers", `{"version":1,"x":[${"1,".repeat(20_000)}1]}`, false],
    ["members of one object", `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":1`).join(",")}}`, false],
  ])("%s → 400 before parsing, nothing written", async (_name, text, streamed) => {
    const before = await snapshot(s);
    const body = streamed ? new Blob([text]).stream() : text;
    const res = await fetch(`${s.url}/fmsg`, { method: "POST", body, headers: { authorization: `Bearer ${s.token(ALICE)}`, "content-type": "application/json" } });
    expect(await errorOf(res)).toEqual({ status: 400, error: "request body holds too many values" });
    expect(await snapshot(s)).toBe(before);
  });

  test("commas inside strings do not count; 255 recipients pass", async () => {
    const to = Array.from({ length: 255 }, (_, i) => `@r${i}@example.com`);
    const res = await s.request("POST", "/fmsg", { json: draft(ALICE, to, { data: ",".repeat(50_000) }) });
    expect(res.status).toBe(201);
  });
});

describe("ids are plain digits as sent", () => {
  test.each(["%31", "1%30", "%2B1", "%77ait"])("/fmsg/%s → 400 invalid message id", async (segment) => {
    const id = await createDraft(s, ALICE, [BOB]);
    expect(id).toBeGreaterThan(0);
    expect(await errorOf(await s.request("GET", `/fmsg/${segment}`))).toEqual({ status: 400, error: "invalid message id" });
    expect(await errorOf(await s.request("GET", `/fmsg/${segment}/data`))).toEqual({ status: 400, error: "invalid message id" });
  });

  test("without a token it is still 401 first", async () => {
    expect((await s.request("GET", "/fmsg/%31", { as: null })).status).toBe(401);
  });
});

describe("token lifetime (FMSG_API_MAX_TOKEN_TTL, default 30 days)", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const withClaims = (claims: Record<string, unknown>) =>
    s.request("GET", "/fmsg", { as: null, headers: { authorization: `Bearer ${signJwt({ sub: ALICE, ...claims }, TEST_KEY)}` } });

  test.each([
    ["exp 1e308", { exp: 1e308 }],
    ["31 days after iat", { iat: now(), exp: now() + 31 * 86400 }],
    ["31 days from now without iat", { exp: now() + 31 * 86400 }],
  ])("%s → 401 token lifetime exceeds the maximum", async (_name, claims) => {
    const res = await withClaims(claims);
    expect(await errorOf(res)).toEqual({ status: 401, error: "token lifetime exceeds the maximum" });
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="fmsg"');
  });

  test("exactly 30 days is accepted", async () => {
    expect((await withClaims({ iat: now(), exp: now() + 30 * 86400 })).status).toBe(200);
  });

  test("a shorter maximum is configurable", async () => {
    const short = await startTestServer({ env: { FMSG_API_MAX_TOKEN_TTL: "1h" } });
    try {
      const token = (ttl: number) => signJwt({ sub: ALICE, iat: now(), exp: now() + ttl }, TEST_KEY);
      expect((await short.request("GET", "/fmsg", { as: null, headers: { authorization: `Bearer ${token(3600)}` } })).status).toBe(200);
      const res = await short.request("GET", "/fmsg", { as: null, headers: { authorization: `Bearer ${token(7200)}` } });
      expect(await errorOf(res)).toEqual({ status: 401, error: "token lifetime exceeds the maximum" });
    } finally {
      await short.stop();
    }
  });
});

describe.skipIf(EMBEDDED)("a row held locked by another session (PostgreSQL: the embedded database has one connection)", () => {
  test("writes to it fail fast with 503 and Retry-After; other users are served; it works once released", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await sentMessage(s, "@carol@example.com", [BOB]);
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked = () => {};
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = s.db.sql.begin(async (tx) => {
      await tx`select id from msg where id = ${id} for update`;
      locked();
      await released;
    });
    await isLocked;
    try {
      const puts = await Promise.all(
        Array.from({ length: 12 }, () => s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { data: "changed" }) })),
      );
      for (const res of puts) {
        expect(res.headers.get("retry-after")).toBe("2");
        expect(await errorOf(res)).toEqual({ status: 503, error: "database unavailable" });
      }
      // An unrelated reader is not stuck behind them.
      const inbox = await s.request("GET", "/fmsg", { as: BOB });
      expect(inbox.status).toBe(200);
      expect(((await inbox.json()) as unknown[]).length).toBe(1);
    } finally {
      release();
      await holder;
    }
    expect((await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], { data: "changed" }) })).status).toBe(200);
    expect(await (await s.request("GET", `/fmsg/${id}/data`)).text()).toBe("changed");
  });
});

describe.skipIf(EMBEDDED)("a second server on a port in use (PostgreSQL: the embedded database takes one connection)", () => {
  test("refuses to start with one line naming the port and the variable", async () => {
    const port = new URL(s.url).port;
    const config = loadConfig({
      DATABASE_URL: s.db.url,
      FMSG_DATA_DIR: s.dataDir,
      FMSG_API_JWT_SECRET: TEST_SECRET,
      FMSG_ID_URL: "builtin",
      FMSG_API_HOST: "127.0.0.1",
      FMSG_API_PORT: port,
    });
    await expect(startServer(config, { log: () => {} })).rejects.toThrow(
      `cannot listen on 127.0.0.1:${port} (FMSG_API_PORT): the port is already in use`,
    );
    // The first one still serves.
    expect((await s.request("GET", "/fmsg")).status).toBe(200);
  });
});
