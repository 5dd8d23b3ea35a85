// The bound on JSON bodies held at once (src/http/json-body.ts): a body waits for room before it is
// read, first come first served, and is refused with 503 `server busy` when none comes in time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ByteBudget, JSON_BODY_BUDGET_BYTES } from "../../src/http/json-body.ts";
import { ALICE, BOB, CAROL, errorOf } from "../helpers/messages.ts";
import { openSocket } from "../helpers/raw-socket.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

const MIB = 1024 * 1024;

describe("ByteBudget", () => {
  test("claims within the capacity pass at once; a claim that does not fit waits for room, in order", async () => {
    const budget = new ByteBudget(100);
    expect(await budget.take("a", 60, 1000)).toBe(60);
    const order: string[] = [];
    const big = budget.take("b", 50, 1000).then((n) => order.push(`big ${n}`));
    const small = budget.take("c", 10, 1000).then((n) => order.push(`small ${n}`)); // fits, but waits behind big
    expect(order).toEqual([]);
    budget.give("a", 60);
    await Promise.all([big, small]);
    expect(order).toEqual(["big 50", "small 10"]);
  });

  test("no room in time → null, and the claims behind it go in", async () => {
    const budget = new ByteBudget(100);
    await budget.take("a", 90, 1000);
    const late = budget.take("b", 50, 20);
    const behind = budget.take("c", 10, 1000);
    expect(await late).toBeNull();
    expect(await behind).toBe(10);
  });

  test("a claim over the capacity takes all of it, once it is alone; an unreadable size counts as all", async () => {
    const budget = new ByteBudget(100);
    expect(await budget.take("a", 500, 1000)).toBe(100);
    budget.give("a", 100);
    expect(await budget.take("a", Number.NaN, 1000)).toBe(100);
  });

  test("one holder at its cap waits for its own room, out of everyone else's way", async () => {
    const budget = new ByteBudget(100, 60);
    expect(await budget.take("slow", 60, 1000)).toBe(60);
    const second = budget.take("slow", 30, 1000); // past its cap of 60: waits for its own room
    expect(await budget.take("other", 40, 1000)).toBe(40); // not queued behind it
    let admitted = false;
    void second.then(() => (admitted = true));
    budget.give("other", 40);
    await Bun.sleep(0);
    expect(admitted).toBe(false); // the whole has room, its holder not
    budget.give("slow", 60);
    expect(await second).toBe(30);
  });

  test("a holder's waiting claim that gives up frees its place for the holder's next", async () => {
    const budget = new ByteBudget(100, 60);
    await budget.take("slow", 60, 1000);
    expect(await budget.take("slow", 10, 20)).toBeNull();
    budget.give("slow", 60);
    expect(await budget.take("slow", 60, 20)).toBe(60);
  });
});

describe("POST /fmsg while large bodies hold the budget", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "20" } });
  });
  afterAll(() => s.stop());

  test("a Content-Length given twice, alike, is one length: over the cap → 413 before a byte is read; unlike → 400", async () => {
    for (const [lengths, status] of [[[300 * 1024, 300 * 1024], 413], [[20, 21], 400]] as const) {
      const socket = await openSocket(s.url);
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk.toString()));
      const ended = new Promise<void>((resolve) => socket.on("close", () => resolve()));
      socket.write(
        `POST /fmsg/1/add-to HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token(ALICE)}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${lengths[0]}\r\nContent-Length: ${lengths[1]}\r\nConnection: close\r\n\r\n{"add_to":`,
      );
      await ended;
      expect(answer.split("\r\n")[0]).toBe(`HTTP/1.1 ${status} ${status === 413 ? "Payload Too Large" : "Bad Request"}`);
    }
  });

  test("a slow client holding its share: its own next body waits and is 503 server busy after 10 s; everyone else's is taken meanwhile", async () => {
    // One client declares a body as large as the whole budget and sends it slowly: it holds its share.
    const held = await openSocket(s.url);
    held.write(
      `POST /fmsg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token(ALICE)}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${JSON_BODY_BUDGET_BYTES}\r\n\r\n{"version":1,`,
    );
    const body = (from: string) => JSON.stringify(draft(from, [BOB], { data: "x".repeat(5 * MIB) }));
    const [own, other] = await Promise.all([
      s.request("POST", "/fmsg", { as: ALICE, body: body(ALICE), headers: { "content-type": "application/json" } }),
      s.request("POST", "/fmsg", { as: CAROL, body: body(CAROL), headers: { "content-type": "application/json" } }),
    ]);
    expect(other.status).toBe(201);
    expect(await errorOf(own)).toEqual({ status: 503, error: "server busy" });
    expect(own.headers.get("retry-after")).not.toBeNull();
    // Nothing of the refused one was written.
    expect((await s.db.sql`select count(*)::int as n from msg where from_addr = ${ALICE}`)[0]!.n).toBe(0);

    held.destroy(); // the slow body is abandoned: its share comes back
    const taken = await s.request("POST", "/fmsg", { as: ALICE, body: body(ALICE), headers: { "content-type": "application/json" } });
    expect(taken.status).toBe(201);
  }, 30_000);
});
