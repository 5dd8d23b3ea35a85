// CORS (README "Configuration"): FMSG_CORS_ORIGINS lets named origins call the API from a browser; preflights
// are answered before authentication and the rate limiter; nobody else ever sees Access-Control-*.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, createDraft } from "../helpers/messages.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const APP = "https://app.example.com";
const DEV = "http://localhost:5173";
const OTHER = "https://evil.example.net";

let db: TestDatabase;
const servers: TestServer[] = [];
let allowing: TestServer;
let limited: TestServer;
let anyOrigin: TestServer;
let plain: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  const start = async (env: Record<string, string>) => {
    const s = await startTestServer({ database: db, env });
    servers.push(s);
    return s;
  };
  [allowing, limited, anyOrigin, plain] = await Promise.all([
    // Spelt unusually on purpose: origins are compared as browsers send them.
    start({ FMSG_CORS_ORIGINS: `HTTPS://App.Example.com:443, ${DEV}` }),
    start({ FMSG_CORS_ORIGINS: APP, FMSG_API_RATE_LIMIT: "1", FMSG_API_RATE_BURST: "2" }),
    start({ FMSG_CORS_ORIGINS: "*" }),
    start({}),
  ]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await db?.drop();
});

const corsHeaders = (res: Response) => [...res.headers.keys()].filter((k) => k.startsWith("access-control-"));
const listed = (res: Response, name: string) => (res.headers.get(name) ?? "").split(",").map((v) => v.trim().toLowerCase());

function preflight(s: TestServer, origin: string, path = "/fmsg") {
  return s.request("OPTIONS", path, {
    as: null,
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
  });
}

describe("preflight", () => {
  test.each([APP, DEV])("from an allowed origin (%s): 204 with the CORS headers, no token needed", async (origin) => {
    const res = await preflight(allowing, origin);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(origin);
    expect(listed(res, "access-control-allow-methods").sort()).toEqual(["delete", "get", "post", "put"]);
    expect(listed(res, "access-control-allow-headers").sort()).toEqual([
      "authorization",
      "content-type",
      "fmsg-profile",
      "idempotency-key",
      "if-none-match",
      "if-range",
      "last-event-id",
      "range",
      "x-request-id",
    ]);
    // Under /fmsg, a preflight names the host's profile like every other answer there.
    expect(res.headers.get("fmsg-profile")).toBe("seed");
    expect(res.headers.get("vary")).toContain("Origin");
  });

  test("from another origin: no Access-Control-* header (the request goes on to authentication)", async () => {
    const res = await preflight(allowing, OTHER);
    expect(res.status).toBe(401);
    expect(corsHeaders(res)).toEqual([]);
  });

  test("is answered before the rate limiter: preflights neither count nor get refused", async () => {
    for (let i = 0; i < 5; i++) expect((await preflight(limited, APP, `/fmsg/${i}`)).status).toBe(204);
    expect((await limited.request("GET", "/fmsg", { headers: { origin: APP } })).status).toBe(200);
  });
});

describe("actual requests", () => {
  test("an allowed origin gets Allow-Origin and the exposed headers, on JSON answers and on downloads", async () => {
    const id = await createDraft(allowing, ALICE, [BOB]);
    for (const path of ["/fmsg", `/fmsg/${id}`, `/fmsg/${id}/data`]) {
      const res = await allowing.request("GET", path, { headers: { origin: APP } });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(listed(res, "access-control-expose-headers")).toEqual(
        expect.arrayContaining(["fmsg-profile", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after", "etag", "link", "x-request-id"]),
      );
      expect(res.headers.get("vary")).toContain("Origin");
    }
  });

  test("a 401 carries Allow-Origin, so the page can read why", async () => {
    const res = await allowing.request("GET", "/fmsg", { as: null, headers: { origin: DEV } });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBe(DEV);
  });

  test("a 429 carries Allow-Origin (CORS runs before the limiter)", async () => {
    let res = await limited.request("GET", "/fmsg", { headers: { origin: APP } });
    for (let i = 0; i < 5 && res.status !== 429; i++) {
      await res.arrayBuffer();
      res = await limited.request("GET", "/fmsg", { headers: { origin: APP } });
    }
    expect(res.status).toBe(429);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("fmsg-profile")).toBe("seed");
    expect(listed(res, "access-control-expose-headers")).toContain("retry-after");
  });

  test("another origin, or none, gets no Access-Control-* header", async () => {
    for (const headers of [{ origin: OTHER }, { origin: "null" }, {} as Record<string, string>]) {
      const res = await allowing.request("GET", "/fmsg", { headers });
      expect(res.status).toBe(200);
      expect(corsHeaders(res)).toEqual([]);
    }
  });
});

describe("configuration", () => {
  test("by default no Access-Control-* header is ever sent, not even to a preflight", async () => {
    const pre = await preflight(plain, APP);
    expect(corsHeaders(pre)).toEqual([]);
    expect(pre.status).not.toBe(204);
    for (const as of [ALICE, null]) {
      const res = await plain.request("GET", "/fmsg", { as, headers: { origin: APP } });
      expect(corsHeaders(res)).toEqual([]);
    }
  });

  test('"*" allows any origin', async () => {
    const pre = await preflight(anyOrigin, OTHER);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    const res = await anyOrigin.request("GET", "/fmsg", { headers: { origin: OTHER } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });
});
