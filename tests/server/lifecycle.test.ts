// Server lifecycle (docs/API.md "Health", docs/OPERATIONS.md): health and readiness, graceful shutdown of the real process on
// SIGTERM/SIGINT (open waits answer 204, exit 0, pool closed), and the start-up schema check.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REQUIRED_TABLES } from "../../src/db/schema.ts";
import { mintToken } from "../../src/lib/jwt.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { openSocket } from "../helpers/raw-socket.ts";
import { startTestServer, TEST_KEY, TEST_SECRET, type TestServer } from "../helpers/server.ts";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");

describe("health checks (in-process server)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.stop();
  });

  test("GET /healthz → 200, no token needed", async () => {
    const res = await fetch(`${s.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  test("GET /readyz → 200 ready when the database answers and the listener is connected", async () => {
    const res = await fetch(`${s.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", database: true, listener: true });
  });
});

describe("readiness and the data directory", () => {
  let s: TestServer;
  let parent: string;
  let mail: string;
  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), "fmsg-ready-"));
    mail = join(parent, "mail");
    await mkdir(mail);
    s = await startTestServer({ env: { FMSG_DATA_DIR: mail } });
  });
  afterAll(async () => {
    await s?.stop();
    await rm(parent, { recursive: true, force: true });
  });

  test("a data directory gone, or a file in its place → 503 naming storage; back → 200 with the usual body", async () => {
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);

    await rename(mail, `${mail}.away`);
    let res = await fetch(`${s.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "not ready", database: true, listener: true, storage: false });

    await writeFile(mail, "not a folder");
    res = await fetch(`${s.url}/readyz`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { storage?: boolean }).storage).toBe(false);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200); // the process still serves

    await rm(mail);
    await rename(`${mail}.away`, mail);
    res = await fetch(`${s.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", database: true, listener: true });
  });
});

/** A port that was free a moment ago (bound to port 0, then released). */
function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  return port;
}

type Spawned = { proc: Subprocess<"ignore", "pipe", "pipe">; url: string; stdout: Promise<string>; stderr: Promise<string> };

const spawned: Spawned[] = [];
const cleanupDirs: string[] = [];
const databases: TestDatabase[] = [];

async function spawnServer(db: TestDatabase, extra: Record<string, string> = {}): Promise<Spawned> {
  const cwd = await mkdtemp(join(tmpdir(), "fmsg-lifecycle-"));
  cleanupDirs.push(cwd);
  const port = freePort();
  const proc = Bun.spawn([process.execPath, MAIN, "serve"], {
    cwd,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? cwd,
      DATABASE_URL: db.url,
      FMSG_DATA_DIR: join(cwd, "data"),
      FMSG_API_JWT_SECRET: TEST_SECRET,
      FMSG_ID_URL: "builtin",
      FMSG_API_HOST: "127.0.0.1",
      FMSG_API_PORT: String(port),
      FMSG_API_METRICS: "true",
      FMSG_API_LOG: "info",
      ...extra,
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  // Read both pipes from the start so a chatty process never blocks on a full pipe.
  const s: Spawned = { proc, url: `http://127.0.0.1:${port}`, stdout: new Response(proc.stdout).text(), stderr: new Response(proc.stderr).text() };
  spawned.push(s);
  return s;
}

/** Bounded readiness poll: true once `probe` succeeds, false if the process exits or time runs out. */
async function until(s: Spawned, probe: () => Promise<boolean>, attempts = 200): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    if (s.proc.exitCode !== null) return false;
    if (await probe().catch(() => false)) return true;
    await Bun.sleep(50);
  }
  return false;
}

/** A fresh database and a real server process on it, once its /healthz answers. */
async function servingProcess(extra: Record<string, string> = {}): Promise<{ db: TestDatabase; s: Spawned }> {
  const db = await createTestDatabase();
  databases.push(db);
  const s = await spawnServer(db, extra);
  const up = await until(s, async () => (await fetch(`${s.url}/healthz`)).status === 200);
  if (!up) throw new Error(`server did not come up: ${await s.stderr}`);
  return { db, s };
}

/** Waits for exit, with a kill as the guard (a hang is then a failed exit-code assertion). */
async function exitCode(s: Spawned, guardMs = 15_000): Promise<number | null> {
  const guard = setTimeout(() => s.proc.kill("SIGKILL"), guardMs);
  const code = await s.proc.exited;
  clearTimeout(guard);
  return s.proc.signalCode ? null : code;
}

afterAll(async () => {
  for (const s of spawned) if (s.proc.exitCode === null) s.proc.kill("SIGKILL");
  await Promise.all(spawned.map((s) => s.proc.exited));
  await Promise.all(databases.map((db) => db.drop()));
  await Promise.all(cleanupDirs.map((d) => rm(d, { recursive: true, force: true })));
});

const openWaits = async (url: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^fmsg_api_open_waits (\d+)$/m.exec(text)?.[1] ?? NaN);
};

const inFlight = async (url: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^fmsg_api_requests_in_flight (\d+)$/m.exec(text)?.[1] ?? NaN);
};

const appConnections = async (db: TestDatabase) =>
  Number(
    (
      await db.sql`select count(*)::int as n from pg_stat_activity
                   where datname = ${db.name} and application_name = 'fmsg-webapi'`
    )[0]!.n,
  );

describe("the real process", () => {
  test("SIGTERM: an open /fmsg/wait answers 204, the pool is closed, exit 0", async () => {
    const { db, s } = await servingProcess();
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);

    const token = mintToken("@alice@example.com", TEST_KEY, 600);
    const wait = fetch(`${s.url}/fmsg/wait?timeout=30`, { headers: { authorization: `Bearer ${token}` } });
    // The waiter must be registered before the signal, or the test would not test shutdown of waits.
    expect(await until(s, async () => (await openWaits(s.url)) === 1)).toBe(true);
    expect(await appConnections(db)).toBeGreaterThan(0);

    s.proc.kill("SIGTERM");
    const res = await wait;
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    expect(await exitCode(s)).toBe(0);
    expect(await s.stderr).toBe("");
    expect(await s.stdout).toContain('"msg":"stopped"');
    // Nothing listens any more, and no connection of the server is left in the database.
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
    expect(await appConnections(db)).toBe(0);
  });

  test("SIGTERM with a request still in flight: cut off after FMSG_API_SHUTDOWN_TIMEOUT, still exit 0", async () => {
    const { db, s } = await servingProcess({ FMSG_API_SHUTDOWN_TIMEOUT: "1" });

    // A client that sends a tenth of its body and then stalls: its request never finishes by itself.
    const token = mintToken("@alice@example.com", TEST_KEY, 600);
    const socket = await openSocket(s.url);
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    const body = JSON.stringify({ from: "@alice@example.com", to: ["@bob@example.com"], topic: "t", type: "text/plain", data: "x".repeat(10_000) });
    socket.write(
      `POST /fmsg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 1000)}`,
    );
    // Counted: the stalled request and the scrape itself.
    expect(await until(s, async () => (await inFlight(s.url)) === 2)).toBe(true);

    s.proc.kill("SIGTERM");
    // With the default of 10 s this guard would kill it first (exit code null).
    expect(await exitCode(s, 8_000)).toBe(0);
    await closed;
    expect(await s.stderr).toBe("");
    const stdout = await s.stdout;
    expect(stdout).toContain('"msg":"stopped","exitCode":0');
    expect(stdout).not.toContain("stop took too long");
    // The cut-off create wrote nothing.
    expect((await db.sql`select count(*)::int as n from msg`)[0]!.n).toBe(0);
  });

  test("SIGINT also stops it cleanly with exit 0", async () => {
    const { s } = await servingProcess({ FMSG_API_LOG: "off" });
    s.proc.kill("SIGINT");
    expect(await exitCode(s)).toBe(0);
    expect(await s.stderr).toBe("");
  });

  test("a database without the fmsgd tables: exit 1, one stderr line naming the missing tables", async () => {
    const db = await createTestDatabase({ migrated: false });
    databases.push(db);
    const s = await spawnServer(db);
    expect(await exitCode(s)).toBe(1);
    const lines = (await s.stderr).split("\n").filter((l) => l.trim() !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("missing tables");
    for (const table of REQUIRED_TABLES) expect(lines[0]).toMatch(new RegExp(`\\b${table}\\b`));
    // It never started serving.
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });
});
