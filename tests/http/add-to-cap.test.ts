// The per-message total of add-to recipients (docs/API.md "Limits"): 1000 over all batches, decided under the row lock.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, errorOf, sentMessage } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const CAP = 1000;
const CAP_ERROR = { status: 400, error: "a message holds at most 1000 add-to recipients" };

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

/** `n` fresh addresses, distinct across calls. */
let next = 0;
function fresh(n: number): string[] {
  return Array.from({ length: n }, () => `@added${next++}@example.org`);
}

function addTo(id: number, as: string, addrs: string[]) {
  return s.request("POST", `/fmsg/${id}/add-to`, { as, json: { add_to: addrs } });
}

async function addToCount(id: number): Promise<number> {
  const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from msg_add_to where msg_id = ${id}`;
  return row!.n;
}

describe("POST /fmsg/:id/add-to: at most 1000 add-to recipients per message", () => {
  test("batches by the owner and a `to` recipient count together; the total may reach 1000 and not pass it", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    // 4 × 250 = 1000, alternating adders: the cap is the message's, not the adder's.
    for (const [i, as] of [ALICE, BOB, ALICE, BOB].entries()) {
      const res = await addTo(id, as, fresh(250));
      expect({ i, status: res.status, body: await res.json() }).toEqual({ i, status: 200, body: { id, added: 250 } });
    }
    expect(await addToCount(id)).toBe(CAP);
    for (const as of [ALICE, BOB]) expect(await errorOf(await addTo(id, as, fresh(1)))).toEqual(CAP_ERROR);
    expect(await addToCount(id)).toBe(CAP);
    const message = (await (await s.request("GET", `/fmsg/${id}`, { as: BOB })).json()) as { add_to: string[] };
    expect(message.add_to.length).toBe(CAP);
  });

  test("a batch that would cross the total is refused whole, and nothing of it is stored", async () => {
    const id = await sentMessage(s, ALICE, [BOB]);
    for (let i = 0; i < 3; i++) expect((await addTo(id, ALICE, fresh(255))).status).toBe(200);
    expect(await addToCount(id)).toBe(765);
    const batchesBefore = await s.db.sql`select id from msg_add_to_batch where msg_id = ${id}`;
    expect(await errorOf(await addTo(id, BOB, fresh(236)))).toEqual(CAP_ERROR);
    expect(await addToCount(id)).toBe(765);
    expect((await s.db.sql`select id from msg_add_to_batch where msg_id = ${id}`).length).toBe(batchesBefore.length);
    // What still fits is accepted.
    expect((await addTo(id, BOB, fresh(235))).status).toBe(200);
    expect(await addToCount(id)).toBe(CAP);
  });
});
