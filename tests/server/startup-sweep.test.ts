// Start-up removes what interrupted writes left in the API's own folders, and nothing else; a
// leftover younger than the grace period (perhaps another instance's write in flight) waits for a
// later start.
import { afterEach, expect, test } from "bun:test";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileRows } from "../../src/db/files.ts";
import { SWEEP_GRACE_MS, sweepDataDir } from "../../src/storage/sweep.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function dataDirWith(files: Record<string, string>): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), "fmsg-sweep-"));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dataDir, path, ".."), { recursive: true });
    await writeFile(join(dataDir, path), content);
  }
  return dataDir;
}

const SWEEP_LINE = "removed files left by an interrupted write";

/** A server on `dataDir`, and the counts its start-up sweep logged. */
async function start(dataDir: string, database?: TestDatabase): Promise<{ s: TestServer; swept: Record<string, unknown> | undefined }> {
  const lines: Record<string, unknown>[] = [];
  const s = await startTestServer({ env: { FMSG_DATA_DIR: dataDir }, database, log: (l) => lines.push(l) });
  cleanups.push(() => s.stop());
  return { s, swept: lines.find((l) => l.msg === SWEEP_LINE) };
}

/** The sweep of a start after the grace period: what these leftovers meet once they are old. */
const afterGrace = (s: TestServer) =>
  sweepDataDir(s.config.dataDir, fileRows(s.server.sql), { now: () => Date.now() + SWEEP_GRACE_MS + 60_000 });

test("stray .tmp-* files stay at a start right after the write, go at one past the grace period; a folder of an id never handed out is left alone", async () => {
  const dataDir = await dataDirWith({
    "example.com/alice/out/7/attach/.tmp-report.pdf-1234": "half an upload",
    "example.com/alice/out/7/attach/report.pdf": "a file of a message this database never had",
    "example.com/alice/out/7/.tmp-data.txt-99": "half a body",
  });
  const { s, swept } = await start(dataDir);
  const dir = join(dataDir, "example.com", "alice", "out", "7");
  expect(swept).toMatchObject({ tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 2 });
  expect((await readdir(join(dir, "attach"))).sort()).toEqual([".tmp-report.pdf-1234", "report.pdf"]);

  expect(await afterGrace(s)).toEqual({ tempFiles: 2, orphanFiles: 0, orphanFolders: 0, tooRecent: 0 });
  expect(await readdir(join(dir, "attach"))).toEqual(["report.pdf"]);
  expect(await readdir(dir)).toEqual(["attach"]);
});

test.skipIf(EMBEDDED)("files and folders no row points to are removed once past the grace period; the files rows point to stay", async () => {
  // A database with one draft (id 1) whose body and attachment live in out/1.
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const dataDir = await dataDirWith({
    "example.com/alice/out/1/.alt/data.txt": "current body",
    "example.com/alice/out/1/data.txt": "body a crashed replacement left behind",
    "example.com/alice/out/1/attach/a.txt": "current attachment",
    "example.com/alice/out/1/attach/A.TXT": "attachment a crashed replacement left behind",
    "example.com/alice/out/2/data.txt": "a create that never committed",
    "example.com/alice/out/99/data.txt": "an id beyond the sequence: not ours to judge",
    "example.com/alice/in/5/data.txt": "fmsgd's folder: never visited",
  });
  const out = join(dataDir, "example.com", "alice", "out");
  await db.sql`select setval(pg_get_serial_sequence('msg', 'id'), 2)`;
  await db.sql`
    insert into msg (id, version, from_addr, topic, type, size, filepath)
    values (1, 1, '@alice@example.com', 't', 'text/plain', 12, ${join(out, "1", ".alt", "data.txt")})`;
  await db.sql`
    insert into msg_attachment (msg_id, filename, filesize, filepath)
    values (1, 'a.txt', 18, ${join(out, "1", "attach", "a.txt")})`;

  const { s, swept } = await start(dataDir, db);
  expect(swept).toMatchObject({ tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 3 });
  expect((await readdir(out)).sort()).toEqual(["1", "2", "99"]);
  expect((await readdir(join(out, "1"))).sort()).toEqual([".alt", "attach", "data.txt"]);

  expect(await afterGrace(s)).toEqual({ tempFiles: 0, orphanFiles: 2, orphanFolders: 1, tooRecent: 0 });
  expect((await readdir(join(out, "1"))).sort()).toEqual([".alt", "attach"]);
  expect(await readdir(join(out, "1", ".alt"))).toEqual(["data.txt"]);
  expect(await readdir(join(out, "1", "attach"))).toEqual(["a.txt"]);
  expect((await readdir(out)).sort()).toEqual(["1", "99"]);
  expect(await readdir(join(dataDir, "example.com", "alice", "in", "5"))).toEqual(["data.txt"]);
});
