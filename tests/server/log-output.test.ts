// A log that cannot be written (stdout on a full disk, a log reader that went away) costs the log
// lines, never the service: the real process keeps answering and stops cleanly. Before, the failed
// write was an uncaught error and the process exited 1 at the next log line.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { mintToken } from "../../src/lib/jwt.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { freePort } from "../helpers/ports.ts";
import { until } from "../helpers/poll.ts";
import { EMBEDDED, TEST_KEY, TEST_SECRET } from "../helpers/server.ts";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");

describe.skipIf(EMBEDDED)("log output that fails (real process)", () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    [db, dir] = await Promise.all([createTestDatabase(), mkdtemp(join(tmpdir(), "fmsg-log-out-"))]);
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function spawnServer(port: number, stdout: number | "pipe") {
    return Bun.spawn([process.execPath, MAIN, "serve"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dir,
        DATABASE_URL: db.url,
        FMSG_DATA_DIR: join(dir, `data-${port}`),
        FMSG_API_JWT_SECRET: TEST_SECRET,
        FMSG_ID_URL: "builtin",
        FMSG_API_HOST: "127.0.0.1",
        FMSG_API_PORT: String(port),
        FMSG_API_LOG: "info",
        FMSG_API_RATE_LIMIT: "100000",
        FMSG_API_RATE_BURST: "100000",
      },
      stdin: "ignore",
      stdout,
      stderr: "pipe",
    });
  }

  /** 30 logged requests, every one answered 200 by a process that is still running afterwards. */
  async function stillServes(port: number, proc: Bun.Subprocess): Promise<void> {
    const token = mintToken("@alice@example.com", TEST_KEY, 600);
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/fmsg`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(proc.exitCode).toBeNull();
  }

  test("stdout on a full disk (/dev/full): it serves on, says so once on stderr, and stops with 0", async () => {
    const port = freePort();
    const full = openSync("/dev/full", "w");
    const proc = spawnServer(port, full);
    closeSync(full);
    let errText = "";
    const drained = (async () => {
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) errText += new TextDecoder().decode(chunk);
    })();
    const up = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200;
    await until(async () => (await up()) || proc.exitCode !== null, "the server up");
    await stillServes(port, proc);
    await until(() => errText.includes("log output failed (ENOSPC)") || proc.exitCode !== null, "the one line on stderr");
    expect(errText.match(/log output failed/g)).toHaveLength(1);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await drained;
  });

  test("a log reader that goes away (EPIPE): it serves on and stops with 0", async () => {
    const port = freePort();
    const proc = spawnServer(port, "pipe");
    const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
    let seen = "";
    while (!seen.includes('"listening"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the server stopped before listening (exit ${await proc.exited})`);
      seen += new TextDecoder().decode(value);
    }
    await reader.cancel(); // the reader goes away: the pipe's read end closes
    void (async () => {
      for await (const _ of proc.stderr as ReadableStream<Uint8Array>);
    })();
    await stillServes(port, proc);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });
});
