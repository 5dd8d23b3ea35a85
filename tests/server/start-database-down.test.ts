// Starting while PostgreSQL is down (a host booting, both restarted together): the server waits for
// it, retrying every second, instead of exiting; once it answers, the server starts, and local
// recipients a crash left pending are delivered at once, not after the minute of the retry timer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { freePort } from "../helpers/ports.ts";
import { until } from "../helpers/poll.ts";
import { PRIVATE_POSTGRES_TOOLS, startPrivatePostgres, type PrivatePostgres } from "../helpers/private-postgres.ts";
import { EMBEDDED, TEST_SECRET } from "../helpers/server.ts";
import { toolsPresent } from "../helpers/tools.ts";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");
const SKIP = EMBEDDED || !toolsPresent(import.meta.path, PRIVATE_POSTGRES_TOOLS);

describe.skipIf(SKIP)("start with the database down (real process, private PostgreSQL)", () => {
  let pg: PrivatePostgres;
  let dir: string;
  beforeAll(async () => {
    [pg, dir] = await Promise.all([startPrivatePostgres(), mkdtemp(join(tmpdir(), "fmsg-start-down-"))]);
  });
  afterAll(async () => {
    await pg?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("waits for PostgreSQL, then serves, delivers the pending local recipient and stops with 0", async () => {
    const url = await pg.createDatabase("startdown");
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    // A sent message whose local recipient was never resolved (the server died after the commit).
    const [m] = await sql`
      insert into msg (version, time_sent, from_addr, topic, type, size, filepath)
      values (1, extract(epoch from now()), '@alice@example.com', 'pending', 'text/plain', 0, '/nowhere/data.txt') returning id`;
    await sql`insert into msg_to (msg_id, addr) values (${m!.id}, '@bob@example.com')`;
    await sql.end();
    await pg.stop();

    const port = freePort();
    const proc = Bun.spawn([process.execPath, MAIN, "serve"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dir,
        DATABASE_URL: url,
        FMSG_DATA_DIR: join(dir, "data"),
        FMSG_API_JWT_SECRET: TEST_SECRET,
        FMSG_ID_URL: "builtin",
        FMSG_DOMAIN: "example.com",
        FMSG_API_HOST: "127.0.0.1",
        FMSG_API_PORT: String(port),
      },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    let output = "";
    const decoder = new TextDecoder();
    const read = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
    };
    const drained = Promise.all([read(proc.stdout), read(proc.stderr)]);
    try {
      await until(() => output.includes("database unavailable at start") || proc.exitCode !== null, "the warning that the database is away");
      expect(proc.exitCode).toBeNull();
      expect(await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => "refused")).toBe("refused"); // not serving yet

      await pg.start();
      const ready = async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200;
      await until(() => ready() || proc.exitCode !== null, "/readyz 200 after PostgreSQL came back", 30_000);
      expect(proc.exitCode).toBeNull();

      const check = postgres(url, { max: 1, onnotice: () => {} });
      await until(async () => (await check`select response_code from msg_to where msg_id = ${m!.id}`)[0]!.response_code === 200, "the pending recipient delivered");
      await check.end();

      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await drained;
    }
  });
});
