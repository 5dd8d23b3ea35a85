// Rotating FMSG_API_JWT_SECRET without logging everyone out: the previous secret still verifies, never more.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { signJwt } from "../../src/lib/jwt.ts";
import { errorOf } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const OLD = new TextEncoder().encode("the secret before the rotation");
const OTHER = new TextEncoder().encode("a secret this host never had");
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ env: { FMSG_API_JWT_SECRET_PREVIOUS: "the secret before the rotation" } });
});
afterAll(() => s.stop());

const now = () => Math.floor(Date.now() / 1000);
const bearer = (key: Uint8Array, claims: Record<string, unknown> = {}) => ({
  authorization: `Bearer ${signJwt({ sub: "@alice@example.com", iat: now(), exp: now() + 600, ...claims }, key)}`,
});

test("tokens of the current secret and of the previous one are accepted", async () => {
  expect((await s.request("GET", "/fmsg")).status).toBe(200); // the helper signs with the current secret
  expect((await s.request("GET", "/fmsg", { as: null, headers: bearer(OLD) })).status).toBe(200);
});

test("any other key is still refused, and the previous secret gets no leniency on expiry", async () => {
  expect(await errorOf(await s.request("GET", "/fmsg", { as: null, headers: bearer(OTHER) }))).toEqual({
    status: 401,
    error: "signature is invalid",
  });
  const expired = bearer(OLD, { iat: now() - 7200, exp: now() - 3600 });
  expect(await errorOf(await s.request("GET", "/fmsg", { as: null, headers: expired }))).toEqual({ status: 401, error: "token is expired" });
});

test("without FMSG_API_JWT_SECRET_PREVIOUS the old secret's tokens are refused", async () => {
  const plain = await startTestServer();
  try {
    expect((await plain.request("GET", "/fmsg", { as: null, headers: bearer(OLD) })).status).toBe(401);
  } finally {
    await plain.stop();
  }
});
