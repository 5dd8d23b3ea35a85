// Out of file descriptors (EMFILE), a download is the storage's fault: 503 storage unavailable with
// Retry-After, as uploads and writes answer it. Before, a sent message's file answered 500 (Bun
// opened it after the route and met EMFILE) and a draft's body 404 "message data not available";
// a thread's text, already answered 200, was cut off.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { mintToken } from "../../src/lib/jwt.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { freePort } from "../helpers/ports.ts";
import { until } from "../helpers/poll.ts";
import { EMBEDDED, TEST_KEY, TEST_SECRET } from "../helpers/server.ts";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");
const ALICE = "@alice@example.com";
const BOB = "@bob@example.com";

describe.skipIf(EMBEDDED)("downloads with too few file descriptors (real process, ulimit -n 64)", () => {
  let db: TestDatabase;
  let dir: string;
  let proc: Bun.Subprocess;
  let api = "";
  beforeAll(async () => {
    [db, dir] = await Promise.all([createTestDatabase(), mkdtemp(join(tmpdir(), "fmsg-emfile-"))]);
    const port = freePort();
    api = `http://127.0.0.1:${port}`;
    proc = Bun.spawn(["bash", "-c", `ulimit -n 64 && exec "${process.execPath}" "${MAIN}" serve`], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dir,
        DATABASE_URL: db.url,
        FMSG_DATA_DIR: join(dir, "data"),
        FMSG_API_JWT_SECRET: TEST_SECRET,
        FMSG_ID_URL: "builtin",
        FMSG_API_HOST: "127.0.0.1",
        FMSG_API_PORT: String(port),
        FMSG_API_DB_POOL_SIZE: "4",
        FMSG_API_RATE_LIMIT: "1000000",
        FMSG_API_RATE_BURST: "1000000",
        FMSG_API_LOG: "off",
      },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    });
    await until(async () => (await fetch(`${api}/healthz`).catch(() => null))?.status === 200 || proc.exitCode !== null, "the server up");
  });
  afterAll(async () => {
    proc?.kill("SIGKILL");
    await proc?.exited;
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const auth = (as: string) => ({ authorization: `Bearer ${mintToken(as, TEST_KEY, 600)}` });

  /** 70 clients downloading for 3 s: what each answer was (a connection the server could not take counts as "none"). */
  async function statuses(path: string, as: string): Promise<Map<number | string, number>> {
    const seen = new Map<number | string, number>();
    const end = Date.now() + 3000;
    const client = async () => {
      while (Date.now() < end) {
        const res = await fetch(`${api}${path}`, { headers: auth(as), signal: AbortSignal.timeout(5000), keepalive: false }).catch(() => null);
        const body = res ? await res.text().catch(() => null) : "";
        // A 200 whose body was cut off (the connection reset mid-answer) counts as its own kind.
        const status = res === null ? "none" : body === null ? `${res.status} cut off` : res.status;
        seen.set(status, (seen.get(status) ?? 0) + 1);
        if (status === 503) expect(JSON.parse(body!)).toEqual({ error: "storage unavailable" });
      }
    };
    await Promise.all(Array.from({ length: 70 }, client));
    return seen;
  }

  test("a sent attachment, a draft's body and a thread: 200 or 503, never 500, 404 or an answer cut off; the server serves on", { timeout: 60_000 }, async () => {
    const json = { ...auth(ALICE), "content-type": "application/json" };
    const draft = (data: string) => JSON.stringify({ version: 1, from: ALICE, to: [BOB], type: "text/plain", topic: "t", data });
    const sent = ((await (await fetch(`${api}/fmsg`, { method: "POST", headers: json, body: draft("hello") })).json()) as { id: number }).id;
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(100_000)]), "a.bin");
    expect((await fetch(`${api}/fmsg/${sent}/attach`, { method: "POST", headers: auth(ALICE), body: form })).status).toBe(201);
    expect((await fetch(`${api}/fmsg/${sent}/send`, { method: "POST", headers: auth(ALICE) })).status).toBe(200);
    const held = ((await (await fetch(`${api}/fmsg`, { method: "POST", headers: json, body: draft("draft body") })).json()) as { id: number }).id;

    // The thread's text is on its way (200) before a body is opened: one that cannot be opened is
    // shown as not available, and the answer is never cut off.
    for (const [path, as] of [[`/fmsg/${sent}/attach/a.bin`, BOB], [`/fmsg/${held}/data`, ALICE], [`/fmsg/${sent}/thread`, BOB]] as const) {
      const seen = await statuses(path, as);
      expect([path, [...seen.keys()].filter((s) => s !== 200 && s !== 503 && s !== "none")]).toEqual([path, []]);
    }
    // Once the load is gone (and its connections with it), both download again.
    const ok = async (path: string, as: string) => (await fetch(`${api}${path}`, { headers: auth(as), keepalive: false }).catch(() => null))?.status === 200;
    await until(() => ok(`/fmsg/${sent}/attach/a.bin`, BOB), "the attachment served again", 40_000);
    expect(await (await fetch(`${api}/fmsg/${held}/data`, { headers: auth(ALICE), keepalive: false })).text()).toBe("draft body");
    expect(proc.exitCode).toBeNull();
  });
});
