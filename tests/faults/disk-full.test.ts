// A full data directory (a real 1 MiB tmpfs): 507 with nothing committed, never a truncated file
// under a 201, and writes work again once there is room.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorOf } from "../helpers/messages.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

const ALICE = "@alice@example.com";
const BOB = "@bob@example.com";
const TMPFS_BYTES = 1024 * 1024;

/** Mounting needs root (CI runs as root); elsewhere the test says why it skips. */
async function mountTmpfs(dir: string): Promise<boolean> {
  const proc = Bun.spawn(["mount", "-t", "tmpfs", "-o", `size=${TMPFS_BYTES},mode=0750`, "tmpfs", dir], { stderr: "pipe" });
  return (await proc.exited) === 0;
}

const mountDir = await mkdtemp(join(tmpdir(), "fmsg-full-"));
const mounted = process.getuid?.() === 0 && (await mountTmpfs(mountDir));

async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.startsWith(".tmp-")) out.push(e.name);
  }
  return out;
}

describe.skipIf(!mounted)("full data directory (tmpfs of 1 MiB; needs root to mount)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ env: { FMSG_DATA_DIR: mountDir } });
  });
  afterAll(async () => {
    await s.stop();
    await Bun.spawn(["umount", mountDir]).exited;
    await rm(mountDir, { recursive: true, force: true });
  });

  /** Every committed row against the bytes its file holds. */
  async function rowsMatchFiles(): Promise<void> {
    const rows = await s.db.sql<{ path: string; size: number }[]>`
      select filepath as path, size from msg union all select filepath, filesize from msg_attachment`;
    for (const r of rows) expect({ path: r.path, size: (await stat(r.path)).size }).toEqual({ path: r.path, size: r.size });
  }

  test("drafts: 201s hold their whole body, then 507 insufficient storage with nothing committed", async () => {
    const body = "x".repeat(200 * 1024);
    const created: number[] = [];
    let refusal: { status: number; error: string } | null = null;
    for (let i = 0; i < 20 && refusal === null; i++) {
      const before = (await s.db.sql`select count(*)::int as n from msg`)[0]!.n;
      const res = await s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, [BOB], { data: body }) });
      if (res.status === 201) created.push(((await res.json()) as { id: number }).id);
      else {
        refusal = await errorOf(res);
        expect((await s.db.sql`select count(*)::int as n from msg`)[0]!.n).toBe(before);
      }
    }
    expect(refusal).toEqual({ status: 507, error: "insufficient storage" });
    expect(created.length).toBeGreaterThan(0);
    await rowsMatchFiles();
    expect(await tempFiles(mountDir)).toEqual([]);

    // An attachment that does not fit either: 507, no row, no temp file.
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(300 * 1024)]), "big.bin");
    const up = await s.request("POST", `/fmsg/${created[0]}/attach`, { as: ALICE, body: form });
    expect(await errorOf(up)).toEqual({ status: 507, error: "insufficient storage" });
    expect((await s.db.sql`select count(*)::int as n from msg_attachment`)[0]!.n).toBe(0);
    expect(await tempFiles(mountDir)).toEqual([]);

    // A replacement body that does not fit leaves the old one in place.
    const put = await s.request("PUT", `/fmsg/${created[0]}`, { as: ALICE, json: draft(ALICE, [BOB], { data: "y".repeat(600 * 1024) }) });
    expect(await errorOf(put)).toEqual({ status: 507, error: "insufficient storage" });
    expect(await (await s.request("GET", `/fmsg/${created[0]}/data`, { as: ALICE })).text()).toBe(body);

    // Room again: deleting drafts frees space, and the next write succeeds.
    for (const id of created) expect((await s.request("DELETE", `/fmsg/${id}`, { as: ALICE })).status).toBe(204);
    const again = await s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, [BOB], { data: body }) });
    expect(again.status).toBe(201);
    await rowsMatchFiles();
  });
});
