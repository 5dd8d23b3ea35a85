// The bound on JSON bodies held at once (src/http/json-body.ts): a body waits for room before it is
// read, first come first served, and is refused with 503 `server busy` when none comes in time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ByteBudget, JSON_BODY_BUDGET_BYTES } from "../../src/http/json-body.ts";
import { ALICE, BOB, errorOf, snapshot } from "../helpers/messages.ts";
import { openSocket } from "../helpers/raw-socket.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

const MIB = 1024 * 1024;

describe("ByteBudget", () => {
  test("claims within the capacity pass at once; a claim that does not fit waits for room, in order", async () => {
    const budget = new ByteBudget(100);
    expect(await budget.take(60, 1000)).toBe(60);
    const order: string[] = [];
    const big = budget.take(50, 1000).then((n) => order.push(`big ${n}`));
    const small = budget.take(10, 1000).then((n) => order.push(`small ${n}`)); // fits, but waits behind big
    expect(order).toEqual([]);
    budget.give(60);
    await Promise.all([big, small]);
    expect(order).toEqual(["big 50", "small 10"]);
  });

  test("no room in time → null, and the claims behind it go in", async () => {
    const budget = new ByteBudget(100);
    await budget.take(90, 1000);
    const late = budget.take(50, 20);
    const behind = budget.take(10, 1000);
    expect(await late).toBeNull();
    expect(await behind).toBe(10);
  });

  test("a claim over the capacity takes all of it, once it is alone; an unreadable size counts as all", async () => {
    const budget = new ByteBudget(100);
    expect(await budget.take(500, 1000)).toBe(100);
    budget.give(100);
    expect(await budget.take(Number.NaN, 1000)).toBe(100);
  });
});

describe("POST /fmsg while large bodies hold the budget", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "20" } });
  });
  afterAll(() => s.stop());

  test("a body that finds no room within 10 s → 503 server busy with Retry-After, nothing written; once room is back it is taken", async () => {
    // A client declares a body as large as the whole budget and sends it slowly: it holds the room.
    const held = await openSocket(s.url);
    held.write(
      `POST /fmsg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token(ALICE)}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${JSON_BODY_BUDGET_BYTES}\r\n\r\n{"version":1,`,
    );
    const before = await snapshot(s);
    const body = JSON.stringify(draft(ALICE, [BOB], { data: "x".repeat(5 * MIB) }));
    const refused = await s.request("POST", "/fmsg", { body, headers: { "content-type": "application/json" } });
    expect(await errorOf(refused)).toEqual({ status: 503, error: "server busy" });
    expect(refused.headers.get("retry-after")).not.toBeNull();
    expect(await snapshot(s)).toBe(before);

    held.destroy(); // the slow body is abandoned: its room comes back
    const taken = await s.request("POST", "/fmsg", { body, headers: { "content-type": "application/json" } });
    expect(taken.status).toBe(201);
  }, 30_000);
});
