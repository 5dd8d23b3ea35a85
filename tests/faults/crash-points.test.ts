// kill -9 at every named step of every write, then a restart: no row points at a missing, partial
// or uncommitted file, each write either happened or did not, and once the leftovers are past the
// start-up sweep's grace period nothing is left without a row.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileRows } from "../../src/db/files.ts";
import { openPool, type Sql } from "../../src/db/pool.ts";
import { mintToken } from "../../src/lib/jwt.ts";
import { SWEEP_GRACE_MS, sweepDataDir } from "../../src/storage/sweep.ts";
import { startChildServer, type ChildServer } from "../helpers/child-server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { EMBEDDED, TEST_KEY } from "../helpers/server.ts";

const ALICE = "@alice@example.com";
const BOB = "@bob@example.com";
const OLD_BODY = "the old body";
const NEW_BODY = "the new body, longer than the old one";
const OLD_ATTACHMENT = "old attachment";
const NEW_ATTACHMENT = "the new attachment, another length";

let db: TestDatabase;
/** The server's own pool settings (ids as numbers), for the sweep a later start would run. */
let appSql: Sql;
let dataDir: string;
let server: ChildServer | null = null;

async function start(crashAt?: string): Promise<ChildServer> {
  return startChildServer({ databaseUrl: db.url, dataDir, env: crashAt ? { FMSG_TEST_CRASH_AT: crashAt } : {} });
}

function call(s: ChildServer, method: string, path: string, body?: string | FormData, type?: string): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${mintToken(ALICE, TEST_KEY, 600)}` };
  if (type) headers["content-type"] = type;
  return fetch(`${s.url}${path}`, { method, headers, body });
}

const draftJson = (data: string, topic = "t") => JSON.stringify({ version: 1, from: ALICE, to: [BOB], type: "text/plain", topic, data });

function attachment(content: string): FormData {
  const form = new FormData();
  form.append("file", new Blob([content], { type: "text/plain" }), "a.txt");
  return form;
}

/** A draft with a body and one attachment, made by a healthy server. */
async function makeDraft(s: ChildServer): Promise<number> {
  const res = await call(s, "POST", "/fmsg", draftJson(OLD_BODY), "application/json");
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: number };
  const up = await call(s, "POST", `/fmsg/${id}/attach`, attachment(OLD_ATTACHMENT));
  expect({ status: up.status, log: up.status === 201 ? [] : s.lines.filter((l) => l.includes('"error"')) }).toEqual({ status: 201, log: [] });
  return id;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** Every row against its file, and every file and message folder against the rows. */
async function checkConsistency(): Promise<void> {
  const rows = await db.sql<{ path: string; size: number }[]>`
    select filepath as path, size from msg union all select filepath, filesize from msg_attachment`;
  for (const r of rows) {
    const st = await stat(r.path).catch(() => null);
    expect({ path: r.path, size: st?.size ?? "missing" }).toEqual({ path: r.path, size: r.size });
  }
  const referenced = new Set(rows.map((r) => r.path));
  const files = await filesUnder(join(dataDir, "example.com"));
  expect(files.filter((f) => !referenced.has(f))).toEqual([]);
  const ids = (await db.sql<{ id: number }[]>`select id from msg`).map((r) => String(r.id));
  const folders = await readdir(join(dataDir, "example.com", "alice", "out")).catch(() => []);
  expect(folders.filter((f) => !ids.includes(f))).toEqual([]);
}

async function body(s: ChildServer, id: number): Promise<string | null> {
  const res = await call(s, "GET", `/fmsg/${id}/data`);
  return res.status === 200 ? res.text() : null;
}

async function attachmentText(s: ChildServer, id: number): Promise<string | null> {
  const res = await call(s, "GET", `/fmsg/${id}/attach/a.txt`);
  return res.status === 200 ? res.text() : null;
}

type Case = {
  op: string;
  step: string;
  /** The request that reaches the crash point. */
  act: (s: ChildServer, id: number) => Promise<Response>;
  /** What the restarted server must show: the write happened entirely, or not at all. */
  expectAfter: (s: ChildServer, id: number, committed: boolean) => Promise<void>;
};

const replaceBody: Case["act"] = (s, id) => call(s, "PUT", `/fmsg/${id}`, draftJson(NEW_BODY), "application/json");
const bodyIs = async (s: ChildServer, id: number, committed: boolean) => expect(await body(s, id)).toBe(committed ? NEW_BODY : OLD_BODY);

const CASES: Case[] = [
  ...["staged", "placed", "committed"].map((step) => ({
    op: "create",
    step,
    act: (s: ChildServer) => call(s, "POST", "/fmsg", draftJson(NEW_BODY, `created at ${step}`), "application/json"),
    expectAfter: async (_s: ChildServer, _id: number, committed: boolean) => {
      const [row] = await db.sql`select count(*)::int as n from msg where topic = ${`created at ${step}`}`;
      expect(row!.n).toBe(committed ? 1 : 0);
    },
  })),
  ...["staged", "placed", "committed"].map((step) => ({ op: "update", step, act: replaceBody, expectAfter: bodyIs })),
  ...["staged", "placed", "committed"].map((step) => ({
    op: "attach",
    step,
    // Same name: the replacement that used to rename over the committed file.
    act: (s: ChildServer, id: number) => call(s, "POST", `/fmsg/${id}/attach`, attachment(NEW_ATTACHMENT)),
    expectAfter: async (s: ChildServer, id: number, committed: boolean) =>
      expect(await attachmentText(s, id)).toBe(committed ? NEW_ATTACHMENT : OLD_ATTACHMENT),
  })),
  {
    op: "delete",
    step: "committed",
    act: (s, id) => call(s, "DELETE", `/fmsg/${id}`),
    expectAfter: async (s, id) => expect((await call(s, "GET", `/fmsg/${id}`)).status).toBe(404),
  },
  {
    op: "detach",
    step: "committed",
    act: (s, id) => call(s, "DELETE", `/fmsg/${id}/attach/a.txt`),
    expectAfter: async (s, id) => expect(await attachmentText(s, id)).toBeNull(),
  },
];

describe.skipIf(EMBEDDED)("kill -9 at each write step (PostgreSQL; the embedded database does not fsync)", () => {
  beforeAll(async () => {
    db = await createTestDatabase();
    appSql = openPool({ url: db.url, max: 1 });
    dataDir = await mkdtemp(join(tmpdir(), "fmsg-crash-"));
    server = await start();
  });
  afterAll(async () => {
    await server?.kill("SIGTERM");
    await appSql.end({ timeout: 5 });
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test.each(CASES.map((c) => [`${c.op}:${c.step}`, c] as const))("%s", async (_name, c) => {
    const id = await makeDraft(server!);
    await server!.kill("SIGTERM");
    const crashing = await start(`${c.op}:${c.step}`);
    const answered = await c.act(crashing, id).then(
      (res) => res.status,
      () => "no answer",
    );
    expect(answered).toBe("no answer");
    expect(await crashing.exited).not.toBe(0); // killed at the crash point, not stopped
    expect(crashing.proc.signalCode).toBe("SIGKILL");

    // Its start-up sweep keeps what the crash left a moment ago (younger than the grace period).
    server = await start();
    await c.expectAfter(server, id, c.step === "committed");
    // The sweep of a start past the grace period.
    await sweepDataDir(dataDir, fileRows(appSql), { now: () => Date.now() + SWEEP_GRACE_MS + 60_000 });
    await checkConsistency();
  });
});

describe.skipIf(EMBEDDED)("an error nothing catches", () => {
  test("is logged, in-flight requests finish, and the process exits 1 for its supervisor to restart", async () => {
    const localDb = await createTestDatabase();
    const dir = await mkdtemp(join(tmpdir(), "fmsg-uncaught-"));
    try {
      const s = await startChildServer({ databaseUrl: localDb.url, dataDir: dir, env: { FMSG_TEST_CRASH_AT: "create:staged:throw" } });
      const res = await call(s, "POST", "/fmsg", draftJson(NEW_BODY), "application/json");
      expect(res.status).toBe(201); // the request that tripped it still completes while the server drains
      expect(await s.exited).toBe(1);
      const logged = s.lines.filter((l) => l.includes('"msg":"uncaught exception"'));
      expect(logged.length).toBe(1);
      expect(logged[0]).toContain("crash point create:staged");
      expect(s.lines.some((l) => l.includes('"shutting down"'))).toBe(true);
    } finally {
      await localDb.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
