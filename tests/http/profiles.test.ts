// Profiles: FMSG_API_PROFILE, the per-request Fmsg-Profile header, and the two message shapes (docs/API.md "Profiles").
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, CAROL, DAVE, createDraft, errorOf, sendDraft } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Json = Record<string, unknown>;

let seed: TestServer;
let modern: TestServer;
beforeAll(async () => {
  [seed, modern] = await Promise.all([startTestServer(), startTestServer({ env: { FMSG_API_PROFILE: "fmsg-003" } })]);
});
afterAll(() => Promise.all([seed.stop(), modern.stop()]));

/** A sent message from ALICE to BOB with one add-to batch by BOB (CAROL), read back as BOB. */
async function withBatch(s: TestServer): Promise<number> {
  const id = await createDraft(s, ALICE, [BOB]);
  await sendDraft(s, ALICE, id);
  expect((await s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: [CAROL] } })).status).toBe(200);
  return id;
}

describe("the message object in each profile", () => {
  test("seed: add_to is the address list, with add_to_from, common_type and add_to_batches", async () => {
    const id = await withBatch(seed);
    const res = await seed.request("GET", `/fmsg/${id}`, { as: BOB });
    expect(res.headers.get("fmsg-profile")).toBe("seed");
    const m = (await res.json()) as Json;
    expect(m.add_to).toEqual([CAROL]);
    expect(m.add_to_from).toBe(BOB);
    expect(m.common_type).toBe(false);
    expect(m.add_to_batches).toEqual([
      { batch_id: expect.any(Number), add_to_from: BOB, to: [CAROL], to_delivery: [{ addr: CAROL, time_delivered: null, response_code: null }], time: expect.any(Number) },
    ]);
  });

  test("fmsg-003 host: add_to is the batch list; the three seed-only keys are left out", async () => {
    const id = await withBatch(modern);
    const res = await modern.request("GET", `/fmsg/${id}`, { as: BOB });
    expect(res.headers.get("fmsg-profile")).toBe("fmsg-003");
    const m = (await res.json()) as Json;
    expect(m.add_to).toEqual([
      { batch_id: expect.any(Number), add_to_from: BOB, to: [CAROL], to_delivery: [{ addr: CAROL, time_delivered: null, response_code: null }], time: expect.any(Number) },
    ]);
    expect(Object.keys(m)).not.toContain("add_to_from");
    expect(Object.keys(m)).not.toContain("common_type");
    expect(Object.keys(m)).not.toContain("add_to_batches");
    expect(m.has_add_to).toBe(true);
    expect(m.to).toEqual([BOB]);
  });

  test("a draft's pending batch: addresses under seed, one batch with time null under fmsg-003", async () => {
    const id = await createDraft(modern, ALICE, [BOB], { add_to: [DAVE] });
    const m = (await (await modern.request("GET", `/fmsg/${id}`)).json()) as Json;
    expect(m.add_to).toEqual([{ batch_id: expect.any(Number), add_to_from: ALICE, to: [DAVE], to_delivery: [{ addr: DAVE, time_delivered: null, response_code: null }], time: null }]);
    const asSeed = (await (await modern.request("GET", `/fmsg/${id}`, { headers: { "fmsg-profile": "seed" } })).json()) as Json;
    expect(asSeed.add_to).toEqual([DAVE]);
    expect(asSeed.add_to_from).toBe(ALICE);
  });

  test("lists follow the profile too (inbox and sent)", async () => {
    const id = await withBatch(modern);
    const inbox = (await (await modern.request("GET", "/fmsg?limit=1", { as: BOB })).json()) as Json[];
    expect(inbox[0]!.id).toBe(id);
    expect(inbox[0]!.add_to).toEqual([expect.objectContaining({ to: [CAROL] })]);
    const sent = (await (await modern.request("GET", "/fmsg/sent?limit=1", { headers: { "fmsg-profile": "seed" } })).json()) as Json[];
    expect(sent[0]!.add_to).toEqual([CAROL]);
  });
});

describe("Fmsg-Profile request header", () => {
  test.each(["fmsg-003", "FMSG-003", " Fmsg-003 "])("%p on a seed host answers in fmsg-003", async (value) => {
    const id = await withBatch(seed);
    const res = await seed.request("GET", `/fmsg/${id}`, { as: BOB, headers: { "fmsg-profile": value } });
    expect(res.status).toBe(200);
    expect(res.headers.get("fmsg-profile")).toBe("fmsg-003");
    expect(((await res.json()) as Json).add_to).toEqual([expect.objectContaining({ add_to_from: BOB })]);
  });

  test.each(["", "seed2", "fmsg003", "*"])("%p → 400 invalid profile, answered in the host's profile", async (value) => {
    const res = await modern.request("GET", "/fmsg", { headers: { "fmsg-profile": value } });
    expect(res.status).toBe(400);
    expect(res.headers.get("fmsg-profile")).toBe("fmsg-003");
    expect((await errorOf(res)).error).toBe("invalid profile");
  });

  test("authentication comes first: no token with a bad profile is a 401, still naming the profile", async () => {
    const res = await seed.request("GET", "/fmsg", { as: null, headers: { "fmsg-profile": "nonsense" } });
    expect(res.status).toBe(401);
    expect(res.headers.get("fmsg-profile")).toBe("seed");
  });

  test("downloads, errors and unknown paths under /fmsg name the profile; routes outside /fmsg do not", async () => {
    const id = await createDraft(seed, ALICE, [BOB], { data: "body" });
    const download = await seed.request("GET", `/fmsg/${id}/data`, { headers: { "fmsg-profile": "fmsg-003" } });
    expect(download.status).toBe(200);
    expect(download.headers.get("fmsg-profile")).toBe("fmsg-003");
    const missing = await seed.request("GET", "/fmsg/987654");
    expect(missing.status).toBe(404);
    expect(missing.headers.get("fmsg-profile")).toBe("seed");
    const unknown = await seed.request("GET", "/fmsg/1/nosuch/thing");
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("fmsg-profile")).toBe("seed");
    expect((await seed.request("GET", "/healthz")).headers.get("fmsg-profile")).toBeNull();
  });
});

describe("GET /openapi.json?profile=", () => {
  const messageRef = async (s: TestServer, query: string) => {
    const doc = (await (await s.request("GET", `/openapi.json${query}`, { as: null })).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>>;
    };
    return doc.paths["/fmsg/{id}"]!.get!.responses["200"]!.content["application/json"]!.schema;
  };

  test("describes the host's default profile, or the one asked for", async () => {
    expect(await messageRef(seed, "")).toEqual({ $ref: "#/components/schemas/Message" });
    expect(await messageRef(modern, "")).toEqual({ $ref: "#/components/schemas/Message003" });
    expect(await messageRef(seed, "?profile=fmsg-003")).toEqual({ $ref: "#/components/schemas/Message003" });
    expect(await messageRef(modern, "?profile=SEED")).toEqual({ $ref: "#/components/schemas/Message" });
  });

  test("a profile given twice: the first counts, as for every query parameter", async () => {
    expect(await messageRef(seed, "?profile=fmsg-003&profile=v2")).toEqual({ $ref: "#/components/schemas/Message003" });
    const res = await seed.request("GET", "/openapi.json?profile=v2&profile=seed", { as: null });
    expect(await errorOf(res)).toEqual({ status: 400, error: "invalid profile" });
  });

  test("an unknown profile → 400 invalid profile", async () => {
    const res = await seed.request("GET", "/openapi.json?profile=v2", { as: null });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error).toBe("invalid profile");
  });
});

test("FMSG_API_PROFILE with an unknown value stops the server at start, naming the variable", async () => {
  // This process's test databases (PostgreSQL only): the failed start must not leave one behind.
  const ours = async () =>
    seed.db.name === "embedded"
      ? 0
      : ((await seed.db.sql`select count(*)::int as n from pg_database where datname like ${`fmsg_test_${process.pid}_%`}`)[0]!.n as number);
  const before = await ours();
  await expect(startTestServer({ env: { FMSG_API_PROFILE: "fmsg-004" } })).rejects.toThrow(/FMSG_API_PROFILE/);
  expect(await ours()).toBe(before);
});
