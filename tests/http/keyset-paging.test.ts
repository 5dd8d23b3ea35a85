// Keyset paging of GET /fmsg and /fmsg/sent: the `Link: <…>; rel="next"` header, and pages that
// stay stable while new mail arrives between them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { deliverFromAfar } from "../helpers/fmsgd.ts";
import { ALICE, BOB, CAROL, createDraft, DAVE, EVE, sentMessage } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const ROUTES = ["/fmsg", "/fmsg/sent"] as const;
const PROFILES = ["seed", "fmsg-003"] as const;

let s: TestServer;
/** DAVE's folders, newest first: five messages received, five written (sent and drafts alternating). */
const daveInbox: number[] = [];
const daveSent: number[] = [];
const folder = (route: (typeof ROUTES)[number]) => (route === "/fmsg" ? daveInbox : daveSent);

beforeAll(async () => {
  s = await startTestServer();
  for (let i = 0; i < 5; i++) {
    daveInbox.unshift(await sentMessage(s, BOB, [DAVE]));
    daveSent.unshift(i % 2 ? await createDraft(s, DAVE, [BOB]) : await sentMessage(s, DAVE, [BOB]));
  }
});
afterAll(() => s.stop());

type Page = { ids: number[]; link: string | null };

async function get(path: string, as: string, profile?: string): Promise<Page> {
  const res = await s.request("GET", path, { as, headers: profile ? { "fmsg-profile": profile } : {} });
  expect(res.status).toBe(200);
  const ids = ((await res.json()) as { id: number }[]).map((m) => m.id);
  return { ids, link: res.headers.get("link") };
}

/** The target of a `<…>; rel="next"` header (root-relative), or null when there is none. */
function nextTarget(link: string | null): string | null {
  if (link === null) return null;
  const m = /^<([^>]*)>; rel="next"$/.exec(link);
  if (!m) throw new Error(`not a rel="next" link: ${link}`);
  return m[1]!;
}

describe.each(ROUTES)("Link on %s", (route) => {
  test.each(PROFILES)("present exactly when a further page exists (%s)", async (profile) => {
    const all = folder(route);
    // A page with more behind it names the next one: same path and query, before_id = its last id.
    const first = await get(`${route}?limit=2`, DAVE, profile);
    expect(first.ids).toEqual(all.slice(0, 2));
    expect(nextTarget(first.link)).toBe(`${route}?limit=2&before_id=${all[1]}`);
    // The page ending on the last message has no next, even when it is exactly full.
    expect((await get(`${route}?limit=5`, DAVE, profile)).link).toBeNull();
    expect((await get(`${route}?limit=3&before_id=${all[1]}`, DAVE, profile)).link).toBeNull();
    expect((await get(`${route}?limit=4`, DAVE, profile)).link).not.toBeNull();
    expect((await get(`${route}?offset=4&limit=1`, DAVE, profile)).link).toBeNull();
    expect((await get(route, DAVE, profile)).link).toBeNull();
    // Nothing at all: no next.
    expect(await get(route, "@nobody@example.com", profile)).toEqual({ ids: [], link: null });
  });

  test("before_id combined with limit; offset works as before and the link drops it", async () => {
    const all = folder(route);
    const below = await get(`${route}?before_id=${all[0]}&limit=2`, DAVE);
    expect(below.ids).toEqual(all.slice(1, 3));
    expect(nextTarget(below.link)).toBe(`${route}?before_id=${all[2]}&limit=2`);
    const skipped = await get(`${route}?limit=2&offset=1`, DAVE);
    expect(skipped.ids).toEqual(all.slice(1, 3));
    const next = nextTarget(skipped.link)!;
    expect(next).toBe(`${route}?limit=2&before_id=${all[2]}`);
    const following = await get(next, DAVE);
    expect(following.ids).toEqual(all.slice(3, 5));
    expect(following.link).toBeNull();
  });
});

test.each(ROUTES)("the OpenAPI document describes the Link header of %s", async (route) => {
  const res = await s.request("GET", "/openapi.json", { as: null });
  const doc = (await res.json()) as { paths: Record<string, { get: { responses: Record<string, { headers?: Record<string, unknown> }> } }> };
  expect(doc.paths[route]!.get.responses["200"]!.headers).toHaveProperty("Link");
});

describe("following Link while 100 messages arrive between pages", () => {
  /** Walks the folder from `first` by its links, running `between` after each page; every id seen, in order. */
  async function walk(first: string, as: string, between: (pageNo: number) => Promise<void>): Promise<number[]> {
    const seen: number[] = [];
    let path: string | null = first;
    for (let n = 0; path !== null; n++) {
      const page = await get(path, as);
      seen.push(...page.ids);
      path = nextTarget(page.link);
      if (path !== null) await between(n);
    }
    return seen;
  }

  test("the inbox: every message once, none skipped, as the API and fmsgd add newer mail", async () => {
    const before: number[] = [];
    for (let i = 0; i < 12; i++) before.unshift(await sentMessage(s, BOB, [ALICE]));
    before.unshift(...(await deliverFromAfar(s.db.sql, Array(13).fill(ALICE), "older from afar")).reverse());
    let arrived = 0;
    const seen = await walk("/fmsg?limit=4", ALICE, async (n) => {
      // 25 older messages in pages of 4: 6 gaps, 100 newer messages arriving in them.
      const count = n < 5 ? 17 : 100 - arrived;
      const viaApi = Math.floor(count / 2);
      for (let i = 0; i < viaApi; i++) await sentMessage(s, EVE, [ALICE]);
      await deliverFromAfar(s.db.sql, Array(count - viaApi).fill(ALICE), "newer from afar");
      arrived += count;
    });
    expect(arrived).toBe(100);
    expect(seen).toEqual(before);
    // Offset paging over the same inbox now would start 100 messages later: the contrast.
    expect((await get("/fmsg?limit=4&offset=4", ALICE)).ids).not.toEqual(before.slice(4, 8));
  });

  test("the sent folder: every message once, none skipped, as new drafts and sends arrive", async () => {
    const before: number[] = [];
    for (let i = 0; i < 10; i++) before.unshift(i % 2 ? await createDraft(s, CAROL, [BOB]) : await sentMessage(s, CAROL, [BOB]));
    let arrived = 0;
    const seen = await walk("/fmsg/sent?limit=3", CAROL, async () => {
      // 10 older messages in pages of 3: 3 gaps.
      const count = arrived < 66 ? 33 : 100 - arrived;
      for (let i = 0; i < count; i++) await (i % 2 ? createDraft(s, CAROL, [BOB]) : sentMessage(s, CAROL, [BOB]));
      arrived += count;
    });
    expect(arrived).toBe(100);
    expect(seen).toEqual(before);
  });
});
