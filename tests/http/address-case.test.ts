// One folding for addresses: whatever PostgreSQL's lower() decides, the inbox, GET, /data, /wait and ownership agree (docs/design/address-case.md).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { addressBucket } from "../../src/domain/address.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE } from "../helpers/messages.ts";
import { EMBEDDED, draft, startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(60_000);

/** Each pair: two spellings JavaScript's toLowerCase() and PostgreSQL's lower() may judge differently. */
const PAIRS: [string, string][] = [
  ["@İsmail@example.com", "@ismail@example.com"],
  ["@ΟΔΥΣΣΕΥΣ@example.com", "@οδυσσευς@example.com"], // final sigma: JS lowers Σ to ς at the end, glibc to σ
  ["@Émile@example.com", "@émile@example.com"], // one identity under a UTF-8 ctype, two under C
];

/** A wait that must end in 204 when the identities differ: long enough for any wake-up, short enough to run. */
const WAIT_SECONDS = 3;

type View = { listed: boolean; get: number; data: number; wait: number | null };

async function inboxIds(s: TestServer, as: string): Promise<number[]> {
  const res = await s.request("GET", "/fmsg?limit=100", { as });
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: number }[]).map((m) => m.id);
}

async function send(s: TestServer, from: string, to: string): Promise<number> {
  const created = await s.request("POST", "/fmsg", { as: from, json: draft(from, [to]) });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: number };
  expect((await s.request("POST", `/fmsg/${id}/send`, { as: from })).status).toBe(200);
  return id;
}

/** The wait's answer: the latest id on 200, null on 204. */
async function waitFor(s: TestServer, as: string, sinceId: number): Promise<number | null> {
  const res = await s.request("GET", `/fmsg/wait?since_id=${sinceId}&timeout=${WAIT_SECONDS}`, { as });
  if (res.status === 204) return null;
  expect(res.status).toBe(200);
  return ((await res.json()) as { latest_id: number }).latest_id;
}

/** Everything a reader can learn about message `id` through the four routes. */
async function viewOf(s: TestServer, reader: string, id: number, wait: Promise<number | null>): Promise<View> {
  const [ids, get, data] = await Promise.all([
    inboxIds(s, reader),
    s.request("GET", `/fmsg/${id}`, { as: reader }),
    s.request("GET", `/fmsg/${id}/data`, { as: reader }),
  ]);
  await Promise.all([get.body?.cancel(), data.body?.cancel()]);
  return { listed: ids.includes(id), get: get.status, data: data.status, wait: await wait };
}

/** What agreement means: listed ⇔ GET 200 ⇔ /data 200 ⇔ the wait answered with this message; else 403s and 204. */
function agreeing(listed: boolean, id: number): View {
  return listed ? { listed, get: 200, data: 200, wait: id } : { listed, get: 403, data: 403, wait: null };
}

/**
 * Mail to one spelling, read by both. Waits start before the send, so the wake-up path is what
 * answers them; the first spelling always sees its own mail. Returns whether the other saw it.
 */
async function mailAndRead(s: TestServer, to: string, other: string): Promise<boolean> {
  const [row] = await s.db.sql<{ id: string }[]>`select coalesce(max(id), 0)::text as id from msg`;
  const since = Number(row!.id);
  const waits = [to, other].map((reader) => waitFor(s, reader, since));
  await until(() => s.server.waiters.size >= 2, "both waits registered");
  const id = await send(s, ALICE, to);
  const own = await viewOf(s, to, id, waits[0]!);
  const theirs = await viewOf(s, other, id, waits[1]!);
  expect(own).toEqual(agreeing(true, id));
  expect(theirs).toEqual(agreeing(theirs.listed, id));
  return theirs.listed;
}

/** A draft of `owner` as seen by `other`: an owner's route (GET) answers 200 exactly when they are one identity. */
async function draftSeenBy(s: TestServer, owner: string, other: string): Promise<number> {
  const created = await s.request("POST", "/fmsg", { as: owner, json: draft(owner, [ALICE]) });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: number };
  const res = await s.request("GET", `/fmsg/${id}`, { as: other });
  await res.body?.cancel();
  return res.status;
}

/** The only judge: does this database's lower() make the two spellings one identity? */
async function oneIdentity(s: TestServer, [a, b]: [string, string]): Promise<boolean> {
  const [row] = await s.db.sql<{ same: boolean }[]>`select lower(${a}::text) = lower(${b}::text) as same`;
  return row!.same;
}

/**
 * The pair checks for one server: every view agrees with what the database's lower() decides
 * (glibc, ICU, C or PGlite — each may decide differently; `expected` pins it where it is known).
 */
function pairSuite(label: string, open: () => Promise<TestServer>, expected: (pair: [string, string]) => boolean | null) {
  describe(label, () => {
    let s: TestServer;
    beforeAll(async () => {
      s = await open();
    });
    afterAll(() => s.stop());

    for (const pair of PAIRS) {
      test(`${pair[0]} / ${pair[1]}: inbox, GET, /data, /wait and draft ownership agree both ways`, async () => {
        const oneWay = await mailAndRead(s, pair[0], pair[1]);
        const otherWay = await mailAndRead(s, pair[1], pair[0]);
        // lower(a) = lower(b) is symmetric; so must every view built on it be.
        expect(otherWay).toBe(oneWay);
        const same = oneWay;
        expect(same).toBe(await oneIdentity(s, pair));
        if (expected(pair) !== null) expect(same).toBe(expected(pair)!);
        expect([await draftSeenBy(s, pair[0], pair[1]), await draftSeenBy(s, pair[1], pair[0])]).toEqual(
          same ? [200, 200] : [403, 403],
        );
      });
    }
  });
}

// A UTF-8 database (the cluster's default ctype). İ/i and É/é are one identity under any Unicode
// case mapping; final sigma depends on it (glibc lowers Σ to σ, ICU at a word's end to ς). Embedded:
// whatever PGlite decides, as long as every view agrees with it.
pairSuite("a UTF-8 database", () => startTestServer(), ([a]) => (EMBEDDED || a.includes("Σ") ? null : true));

describe.skipIf(EMBEDDED)("PostgreSQL-only", () => {
  let cdb: TestDatabase;
  beforeAll(async () => {
    cdb = await createTestDatabase({ ctype: "C" });
  });
  afterAll(() => cdb.drop());

  // LC_CTYPE C: lower() folds ASCII only, so no pair is one identity there — and no view may say otherwise.
  pairSuite("a database with LC_CTYPE C", () => startTestServer({ database: cdb }), () => false);

  test("the waiters' bucket is coarse enough: bucket(lower(c)) = bucket(c) for every letter and digit, under every ctype", async () => {
    // Buckets are built code point by code point, so this per-character property carries over to
    // whole addresses: lower(a) = lower(b) ⇒ bucket(a) = bucket(lower(a)) = bucket(lower(b)) = bucket(b).
    const chars: string[] = [];
    for (let cp = 0x80; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (/[\p{L}\p{N}]/u.test(c)) chars.push(c);
    }
    const wanted = ["default", "C", "C.utf8", "und-x-icu", "tr-x-icu", "az-x-icu", "lt-x-icu", "el-x-icu"];
    const collations = (await cdb.sql<{ name: string }[]>`select collname as name from pg_collation where collname = any(${wanted})`).map((r) => r.name);
    expect(collations).toContain("default");
    const broken: string[] = [];
    let folded = 0;
    for (const collation of collations) {
      const rows = await cdb.sql.unsafe<{ x: string; l: string }[]>(
        `select x, lower(x collate "${collation}") as l from unnest($1::text[]) x where lower(x collate "${collation}") <> x`,
        [chars],
      );
      folded += rows.length;
      for (const r of rows) if (addressBucket(r.l) !== addressBucket(r.x)) broken.push(`${collation}: ${r.x} → ${r.l}`);
    }
    // Final sigma is the one context-dependent lowering (ICU): σ and ς must share a bucket.
    expect(addressBucket("@ΟΔΥΣΣΕΥΣ@example.com")).toBe(addressBucket("@οδυσσευς@example.com"));
    expect(addressBucket("@οδυσσευσ@example.com")).toBe(addressBucket("@οδυσσευς@example.com"));
    expect(folded).toBeGreaterThan(2000); // the check really saw the case mappings
    expect(broken).toEqual([]);
  });
});
