// PUT /fmsg/:id and the pending add-to list: absent keeps it, a list replaces it, [] clears it (docs/API.md §7).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, CAROL, DAVE, createDraft, errorOf } from "../helpers/messages.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

const addToOf = async (id: number) => ((await (await s.request("GET", `/fmsg/${id}`)).json()) as { add_to: string[] }).add_to;
const put = (id: number, extra: Record<string, unknown>) => s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB], extra) });

describe("PUT /fmsg/:id and the pending add-to list", () => {
  test("add_to left out keeps the pending list (a GET-merge-PUT client loses nothing)", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL, DAVE] });
    expect((await put(id, { topic: "edited" })).status).toBe(200);
    expect(await addToOf(id)).toEqual([CAROL, DAVE]);
  });

  test("add_to null is the same as left out", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    expect((await put(id, { add_to: null })).status).toBe(200);
    expect(await addToOf(id)).toEqual([CAROL]);
  });

  test("a list replaces it", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    expect((await put(id, { add_to: [DAVE] })).status).toBe(200);
    expect(await addToOf(id)).toEqual([DAVE]);
  });

  test("[] clears it", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    expect((await put(id, { add_to: [] })).status).toBe(200);
    expect(await addToOf(id)).toEqual([]);
  });

  test("a kept list may not repeat a new to address: 400, and the draft is unchanged", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    const res = await s.request("PUT", `/fmsg/${id}`, { json: draft(ALICE, [BOB, CAROL.toUpperCase()], { topic: "changed" }) });
    expect(await errorOf(res)).toEqual({ status: 400, error: `duplicate recipient: ${CAROL}` });
    const m = (await (await s.request("GET", `/fmsg/${id}`)).json()) as { to: string[]; add_to: string[]; topic: string };
    expect(m).toMatchObject({ to: [BOB], add_to: [CAROL], topic: "Hello" });
  });

  test("the kept list is sent as the draft's batch", async () => {
    const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
    expect((await put(id, { topic: "edited" })).status).toBe(200);
    expect((await s.request("POST", `/fmsg/${id}/send`)).status).toBe(200);
    const m = (await (await s.request("GET", `/fmsg/${id}`, { as: CAROL })).json()) as { add_to: string[]; has_add_to: boolean };
    expect(m).toMatchObject({ add_to: [CAROL], has_add_to: true });
  });
});

describe("reserved words under /fmsg are never read as ids", () => {
  const cases: [string, string][] = [];
  for (const word of ["events", "ws", "token", "sub-accounts"]) {
    cases.push(["GET", `/fmsg/${word}`], ["PUT", `/fmsg/${word}`], ["DELETE", `/fmsg/${word}`], ["GET", `/fmsg/${word}/data`]);
  }
  cases.push(["POST", "/fmsg/sent/send"], ["DELETE", "/fmsg/sent"], ["GET", "/fmsg/wait/data"], ["POST", "/fmsg/sent/add-to"]);
  // GET /fmsg/ws and GET /fmsg/events are served (tests/realtime/ws.test.ts, events.test.ts); their other methods and paths are not.
  const served = new Set(["GET /fmsg/ws", "GET /fmsg/events"]);

  test.each(cases.filter(([method, path]) => !served.has(`${method} ${path}`)))("%s %s → 404 not found", async (method, path) => {
    const res = await s.request(method, path, method === "PUT" || path.endsWith("add-to") ? { json: { add_to: [BOB] } } : {});
    expect(await errorOf(res)).toEqual({ status: 404, error: "not found" });
  });

  test("a reserved word still needs a token first", async () => {
    expect((await s.request("GET", "/fmsg/events", { as: null })).status).toBe(401);
  });
});
