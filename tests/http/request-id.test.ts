// X-Request-Id: a client's id is echoed when it is 1–128 of [A-Za-z0-9._:-], else replaced by a UUID;
// every response carries one (JSON answers, errors, downloads, refusals of the rate limiter).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, createDraft } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.stop();
});

const idOf = async (headers: Record<string, string>, path = "/healthz") => {
  const res = await s.request("GET", path, { headers });
  await res.arrayBuffer();
  return res.headers.get("x-request-id");
};

describe("a client's X-Request-Id", () => {
  test.each(["abc-123", "trace.span:7", "under_score", "A", "x".repeat(128), "2024-01-01T00:00:00.000Z"])("%p is echoed", async (given) => {
    expect(await idOf({ "x-request-id": given })).toBe(given);
  });

  test.each(["a=b", "x".repeat(129), "a b", "<script>", "é"])("%p is replaced by a fresh UUID", async (given) => {
    expect(await idOf({ "x-request-id": given })).toMatch(UUID);
  });

  test("none sent: a fresh UUID each time", async () => {
    const [a, b] = [await idOf({}), await idOf({})];
    expect(a).toMatch(UUID);
    expect(b).toMatch(UUID);
    expect(a).not.toBe(b);
  });

  test("is on downloads and error answers too", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    expect(await idOf({ "x-request-id": "dl.1" }, `/fmsg/${id}/data`)).toBe("dl.1");
    expect(await idOf({ "x-request-id": "nf:1" }, "/nope")).toBe("nf:1");
  });
});
