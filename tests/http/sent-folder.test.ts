// GET /fmsg/sent: the messages the identity wrote, drafts included, newest first, paged like the inbox.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, CAROL, createDraft, errorOf, sentMessage } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Json = Record<string, unknown>;

let s: TestServer;
/** ALICE's messages in creation order: sent and drafts alternating, some written as "@Alice@Example.COM". */
const mine: number[] = [];
let deleted: number;
beforeAll(async () => {
  s = await startTestServer();
  for (let i = 0; i < 25; i++) {
    const from = i % 3 === 0 ? "@Alice@Example.COM" : ALICE;
    const extra = i % 4 === 0 ? { add_to: [CAROL] } : {};
    mine.push(i % 2 ? await createDraft(s, from, [BOB], extra) : await sentMessage(s, from, [BOB], extra));
    if (i === 10) {
      await sentMessage(s, BOB, [ALICE]); // mail to ALICE is not hers
      await createDraft(s, CAROL, [ALICE, BOB]);
    }
  }
  deleted = await createDraft(s, ALICE, [BOB]);
  expect((await s.request("DELETE", `/fmsg/${deleted}`)).status).toBe(204);
});
afterAll(() => s.stop());

const newest = () => [...mine].reverse();

async function page(query: string, as = ALICE, headers: Record<string, string> = {}): Promise<Json[]> {
  const res = await s.request("GET", `/fmsg/sent${query}`, { as, headers });
  expect(res.status).toBe(200);
  return (await res.json()) as Json[];
}
const ids = async (query: string, as = ALICE) => (await page(query, as)).map((m) => m.id);

describe("GET /fmsg/sent", () => {
  test("the identity's own messages, drafts included, newest first, 20 by default", async () => {
    expect(await ids("")).toEqual(newest().slice(0, 20));
    const all = await page("?limit=100");
    expect(all.map((m) => m.id)).toEqual(newest());
    expect(all.filter((m) => m.time === null)).toHaveLength(12);
    expect(all.every((m) => String(m.from).toLowerCase() === ALICE)).toBe(true);
  });

  test("the from address matches case-insensitively, however the token spells it", async () => {
    expect(await ids("?limit=100", "@ALICE@EXAMPLE.COM")).toEqual(newest());
  });

  test("limit, offset and before_id page through; large limits clamp to 100", async () => {
    const all = newest();
    expect(await ids("?limit=5&offset=5")).toEqual(all.slice(5, 10));
    expect(await ids("?limit=1")).toEqual(all.slice(0, 1));
    expect(await ids("?limit=101")).toEqual(all);
    expect(await ids("?limit=100000000000000000000000")).toEqual(all);
    expect(await ids("?offset=24")).toEqual(all.slice(24));
    expect(await ids("?offset=25")).toEqual([]);
    expect(await ids("?offset=99999999999999999999999")).toEqual([]);
    expect(await ids(`?before_id=${all[2]}&limit=2`)).toEqual(all.slice(3, 5));
    expect(await ids(`?before_id=${all[2]}&limit=2&offset=1`)).toEqual(all.slice(4, 6));
    expect(await ids(`?before_id=${all.at(-1)}`)).toEqual([]);
    expect(await ids("?before_id=99999999999999999999999&limit=3")).toEqual(all.slice(0, 3));
  });

  test("nothing written → []", async () => {
    expect(await page("", "@nobody@example.com")).toEqual([]);
    expect(await page("", BOB)).toHaveLength(1); // BOB's one message to ALICE, nothing of hers
  });

  test.each(["seed", "fmsg-003"])("each item is the full message object of GET /fmsg/:id (%s)", async (profile) => {
    const headers = { "fmsg-profile": profile };
    const items = await page("?limit=100", ALICE, headers);
    expect(items).toHaveLength(mine.length);
    for (const item of items) {
      const single = await s.request("GET", `/fmsg/${item.id}`, { headers });
      expect(item).toEqual((await single.json()) as Json);
    }
    const withBatch = items.find((m) => m.id === mine[0])!;
    expect(withBatch.add_to).toEqual(profile === "seed" ? [CAROL] : [expect.objectContaining({ add_to_from: "@Alice@Example.COM", to: [CAROL] })]);
  });

  for (const [query, error] of [
    ["limit=0", "invalid limit"],
    ["limit=-1", "invalid limit"],
    ["limit=abc", "invalid limit"],
    ["limit=1.5", "invalid limit"],
    ["limit=", "invalid limit"],
    ["offset=-1", "invalid offset"],
    ["offset=x", "invalid offset"],
    ["offset=1e3", "invalid offset"],
    ["before_id=0", "invalid before_id"],
    ["before_id=-5", "invalid before_id"],
    ["before_id=abc", "invalid before_id"],
    ["before_id=", "invalid before_id"],
  ] as const) {
    test(`${query} → 400 ${error}`, async () => {
      expect(await errorOf(await s.request("GET", `/fmsg/sent?${query}`))).toEqual({ status: 400, error });
    });
  }

  test("without a token → 401, whatever the query", async () => {
    expect((await s.request("GET", "/fmsg/sent?limit=0", { as: null })).status).toBe(401);
  });
});
