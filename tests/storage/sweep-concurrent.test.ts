// The start-up sweep beside other instances writing into the same data directory: a file or folder
// another instance's write has just put there stays (its row may still commit); the same leftovers
// past the grace period go, as after a crash.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { fileRows } from "../../src/db/files.ts";
import { IDLE_IN_TRANSACTION_MS, openPool, type Sql } from "../../src/db/pool.ts";
import { SWEEP_GRACE_MS, sweepDataDir, sweepGraceMs, type FileRows } from "../../src/storage/sweep.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB, createDraft } from "../helpers/messages.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(30_000);

let db: TestDatabase;
/** The server's own pool settings (ids arrive as numbers), as the sweep gets them at start. */
let appSql: Sql;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  appSql = openPool({ url: db.url, max: 2 });
  // Ids below 1000 were handed out (their folders are ours to judge); each test uses its own.
  await db.sql`select setval(pg_get_serial_sequence('msg', 'id'), 1000)`;
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await appSql.end({ timeout: 5 });
  await db.drop();
});

/** A sweep run by a start this much later than now. */
const later = (ms: number) => () => Date.now() + ms;
const PAST_GRACE = later(SWEEP_GRACE_MS + 60_000);

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "fmsg-sweep-concurrent-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function put(path: string, content = "x"): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** A committed draft `id` whose rows point at `body` and `attachments`. */
async function draftRow(id: number, body: string, attachments: string[] = []): Promise<void> {
  await db.sql`
    insert into msg (id, version, from_addr, topic, type, size, filepath)
    values (${id}, 1, ${ALICE}, 't', 'text/plain', 1, ${body})`;
  for (const [i, a] of attachments.entries()) {
    await db.sql`
      insert into msg_attachment (msg_id, filename, filesize, filepath, position)
      values (${id}, ${a.slice(a.lastIndexOf("/") + 1)}, 1, ${a}, ${i})`;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * What another instance's writes look like on disk just before their rows commit: a staged temp
 * file, a placed attachment and an empty `.alt/` slot about to take a replacement in draft `m`,
 * and the folder of a new draft `n` with its body.
 */
async function writesInFlight(root: string, m: number, n: number) {
  const out = join(root, "example.com", "alice", "out");
  const body = await put(join(out, String(m), "data.txt"));
  await draftRow(m, body);
  const altSlot = join(out, String(m), ".alt");
  await mkdir(altSlot);
  return {
    body,
    altSlot,
    staged: await put(join(out, String(m), "attach", `.tmp-b.txt-${crypto.randomUUID()}`)),
    placed: await put(join(out, String(m), "attach", "b.txt")),
    newDraft: join(out, String(n)),
    newBody: await put(join(out, String(n), "data.txt")),
  };
}

describe("leftovers by age", () => {
  test("a staged temp file, a placed attachment, a new .alt/ slot and a new draft's folder are kept while they are recent", async () => {
    const root = await dataDir();
    const w = await writesInFlight(root, 1, 2);
    expect(await sweepDataDir(root, fileRows(appSql))).toEqual({ tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 3 });
    for (const f of [w.body, w.staged, w.placed, w.newBody]) expect({ f, there: await exists(f) }).toEqual({ f, there: true });
    expect(await readdir(w.altSlot)).toEqual([]);
  });

  test("the same leftovers are removed by a start past the grace period", async () => {
    const root = await dataDir();
    const w = await writesInFlight(root, 3, 4);
    expect(await sweepDataDir(root, fileRows(appSql), { now: PAST_GRACE })).toEqual({ tempFiles: 1, orphanFiles: 1, orphanFolders: 1, tooRecent: 0 });
    expect(await readdir(dirname(w.placed))).toEqual([]);
    expect((await readdir(dirname(w.body))).sort()).toEqual(["attach", "data.txt"]);
    expect(await exists(w.body)).toBe(true);
    expect(await exists(w.newDraft)).toBe(false);
  });

  test("a longer statement timeout lengthens the grace period: what a 15-minute grace removes, the longer one keeps", async () => {
    expect(sweepGraceMs(10_000, IDLE_IN_TRANSACTION_MS)).toBe(SWEEP_GRACE_MS);
    expect(sweepGraceMs(100, IDLE_IN_TRANSACTION_MS)).toBe(SWEEP_GRACE_MS);
    const long = sweepGraceMs(600_000, IDLE_IN_TRANSACTION_MS); // the largest FMSG_API_DB_STATEMENT_TIMEOUT_MS the config takes
    expect(long).toBe(9 * (600_000 + 60_000) + SWEEP_GRACE_MS - 9 * 70_000);
    const root = await dataDir();
    await writesInFlight(root, 11, 12);
    const at = later(SWEEP_GRACE_MS + 60_000);
    expect(await sweepDataDir(root, fileRows(appSql), { now: at, graceMs: long })).toEqual({ tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 3 });
    expect(await sweepDataDir(root, fileRows(appSql), { now: later(long + 60_000), graceMs: long })).toEqual({ tempFiles: 1, orphanFiles: 1, orphanFolders: 1, tooRecent: 0 });
  });

  test("a file written long ago but renamed into place just now is recent: the rename counts, not its mtime", async () => {
    const root = await dataDir();
    const folder = join(root, "example.com", "alice", "out", "5");
    await draftRow(5, await put(join(folder, "data.txt")));
    const hourAgo = new Date(Date.now() - 3600_000);
    // The way a write places its file: written (an hour ago, here), then renamed under its name.
    const written = await put(join(folder, "attach", ".tmp-c.txt-1"));
    await utimes(written, hourAgo, hourAgo);
    const placed = join(folder, "attach", "c.txt");
    await rename(written, placed);
    await utimes(dirname(placed), hourAgo, hourAgo);
    expect(await sweepDataDir(root, fileRows(appSql))).toEqual({ tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 1 });
    expect(await exists(placed)).toBe(true);
  });

  test("a draft folder without a row stays whole while anything inside it is recent", async () => {
    const root = await dataDir();
    const folder = join(root, "example.com", "alice", "out", "7");
    await put(join(folder, "data.txt"));
    const recent = await put(join(folder, "attach", "a.txt"));
    // Touched a minute before a sweep that runs past the grace period of everything else here.
    const minuteBefore = new Date(PAST_GRACE() - 60_000);
    await utimes(recent, minuteBefore, minuteBefore);
    expect(await sweepDataDir(root, fileRows(appSql), { now: PAST_GRACE })).toEqual({ tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 1 });
    expect((await readdir(folder)).sort()).toEqual(["attach", "data.txt"]);
  });

  test("an old leftover's name, taken by a new file after the sweep looked and committed, is not removed", async () => {
    const root = await dataDir();
    const folder = join(root, "example.com", "alice", "out", "8");
    const current = await put(join(folder, ".alt", "data.txt"), "current body");
    const leftover = await put(join(folder, "data.txt"), "a crashed replacement's body");
    await draftRow(8, current);
    const real = fileRows(appSql);
    // Another instance replaces the body while this sweep reads the rows: it renames its new file
    // over the leftover (the slot the row does not use) and commits.
    const rows: FileRows = {
      highestId: () => real.highestId(),
      async filesOf(ids) {
        const seen = await real.filesOf(ids);
        const staged = await put(join(folder, ".tmp-data.txt-2"), "the new body");
        await rename(staged, leftover);
        await db.sql`update msg set filepath = ${leftover} where id = 8`;
        return seen;
      },
    };
    await sweepDataDir(root, rows, { now: PAST_GRACE });
    expect(await readFile(leftover, "utf8")).toBe("the new body");
  });
});

describe("two instances, one data directory, one PostgreSQL", () => {
  /** Blocks inserts into `table` (from another connection) until the returned function is called. */
  async function holdInserts(table: "msg_to" | "msg_attachment"): Promise<() => Promise<void>> {
    const conn = postgres(db.url, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const held = new Promise<void>((r) => (locked = r));
    const tx = conn.begin(async (t) => {
      await t.unsafe(`lock table ${table} in share mode`);
      locked();
      await released;
    });
    await held;
    return async () => {
      release();
      await tx;
      await conn.end({ timeout: 5 });
    };
  }

  /** Polls (never a fixed sleep) until one of the API's connections waits for a table lock. */
  async function untilWriteWaits(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const waiting = await db.sql`
        select 1 from pg_stat_activity
        where datname = ${db.name} and application_name = 'fmsg-webapi' and wait_event_type = 'Lock'`;
      if (waiting.length > 0) return;
      if (Date.now() > deadline) throw new Error("the write never reached its insert");
      await Bun.sleep(5);
    }
  }

  /** Instance A: holds a write for as long as the test keeps its lock (well within these timeouts). */
  async function instanceA(root: string): Promise<TestServer> {
    const env = { FMSG_DATA_DIR: root, FMSG_API_DB_LOCK_TIMEOUT_MS: "60000", FMSG_API_DB_STATEMENT_TIMEOUT_MS: "60000" };
    const a = await startTestServer({ database: db, env });
    cleanups.push(() => a.stop());
    return a;
  }

  /** Instance B starting now, and the counts its start-up sweep logged. */
  async function startInstanceB(root: string): Promise<Record<string, unknown> | undefined> {
    const lines: Record<string, unknown>[] = [];
    const b = await startTestServer({ database: db, env: { FMSG_DATA_DIR: root }, log: (l) => lines.push(l) });
    cleanups.push(() => b.stop());
    return lines.find((l) => l.msg === "removed files left by an interrupted write");
  }

  test("B starting while A's new draft has its body placed but not committed: the draft's body is there afterwards", async () => {
    const root = await dataDir();
    const a = await instanceA(root);
    const release = await holdInserts("msg_to");
    const created = a.request("POST", "/fmsg", { json: draft(ALICE, [BOB], { data: "written by A" }) });
    await untilWriteWaits(); // A has renamed its body into out/<id>/ and waits to insert its rows
    const swept = await startInstanceB(root);
    await release();
    const res = await created;
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: number };
    const body = await a.request("GET", `/fmsg/${id}/data`);
    expect({ status: body.status, text: await body.text() }).toEqual({ status: 200, text: "written by A" });
    expect(swept).toMatchObject({ orphanFolders: 0, tooRecent: 1 });
  });

  test("B starting while A's attachment is placed but not committed: the attachment is there afterwards", async () => {
    const root = await dataDir();
    const a = await instanceA(root);
    const id = await createDraft(a, ALICE, [BOB]);
    const release = await holdInserts("msg_attachment");
    const form = new FormData();
    form.append("file", new Blob(["attached by A"], { type: "text/plain" }), "b.txt");
    const uploaded = a.request("POST", `/fmsg/${id}/attach`, { body: form });
    await untilWriteWaits(); // A has renamed b.txt into attach/ and waits to insert its row
    const swept = await startInstanceB(root);
    await release();
    expect((await uploaded).status).toBe(201);
    const file = await a.request("GET", `/fmsg/${id}/attach/b.txt`);
    expect({ status: file.status, text: await file.text() }).toEqual({ status: 200, text: "attached by A" });
    expect(swept).toMatchObject({ orphanFiles: 0, tooRecent: 1 });
  });
});
