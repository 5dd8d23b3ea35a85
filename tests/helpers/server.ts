// A real server per test file: its own database, data directory and (optionally) identity stub.
import { cp, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../src/config.ts";
import { mintToken, signJwt } from "../../src/lib/jwt.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { migrateEmbeddedDatabase } from "../../src/db/embedded.ts";
import { schemaFingerprint } from "../../src/db/schema.ts";
import { EMBEDDED_DB_FOLDER } from "../../src/embedded-defaults.ts";
import { unwatchServer, watchServer } from "./contract-check.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";

/**
 * FMSG_TEST_DB=embedded runs the suite against the embedded database (PGlite). It has exactly one
 * connection, so the test's own queries share the server's pool; tests of PostgreSQL-only
 * behaviour (LISTEN outages, fmsgd writing concurrently, pg_stat_activity) skip themselves.
 */
export const EMBEDDED = process.env.FMSG_TEST_DB === "embedded";

/**
 * A migrated PGlite data directory, built once per schema version (initdb takes seconds) and
 * copied for each test file. Built under a private name and renamed into place, so concurrent
 * test processes never see half a template.
 */
async function embeddedTemplate(): Promise<string> {
  const dir = join(tmpdir(), `fmsg-pglite-tpl-${schemaFingerprint()}`);
  if (await stat(join(dir, ".ready")).catch(() => null)) return dir;
  const build = `${dir}.build-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await migrateEmbeddedDatabase(build);
  await rm(join(build, "embedded.lock"), { force: true });
  await writeFile(join(build, ".ready"), "");
  await rename(build, dir).catch(() => rm(build, { recursive: true, force: true })); // another process won
  return dir;
}

export const TEST_SECRET = "test-secret-for-fmsg-webapi";
export const TEST_KEY = new TextEncoder().encode(TEST_SECRET);

export type TestServer = {
  url: string;
  db: TestDatabase;
  dataDir: string;
  config: Config;
  server: RunningServer;
  token(address: string, ttlSeconds?: number): string;
  /** An HTTP request as `as` (an address: a fresh token; null: no Authorization header). */
  request(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  stop(): Promise<void>;
};

export type RequestOptions = {
  as?: string | null;
  json?: unknown;
  body?: string | Uint8Array | FormData | Blob;
  headers?: Record<string, string>;
};

export type TestServerOptions = {
  env?: Record<string, string>;
  /** Base URL of an identity stub; default "builtin". */
  identityUrl?: string;
  database?: TestDatabase;
  heartbeatMs?: number;
  /** Receives the server's log lines (default: dropped). */
  log?: (line: Record<string, unknown>) => void;
  idleTimeoutSeconds?: number;
};

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "fmsg-test-data-"));
  // As in the app's own default, the embedded database is the data directory's pglite folder; it
  // stays here when a test points FMSG_DATA_DIR elsewhere (a 1 MiB tmpfs could not hold it).
  const embeddedDir = EMBEDDED && !opts.database ? join(dataDir, EMBEDDED_DB_FOLDER) : null;
  if (embeddedDir) await cp(await embeddedTemplate(), embeddedDir, { recursive: true });
  const db: TestDatabase = embeddedDir
    ? { name: "embedded", url: "", sql: null as unknown as TestDatabase["sql"], drop: async () => {} }
    : (opts.database ?? (await createTestDatabase()));
  try {
    return await startOn(opts, dataDir, embeddedDir, db);
  } catch (err) {
    // A start that fails (a test of configuration errors) leaves no database or folder behind.
    if (!opts.database) await db.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function startOn(opts: TestServerOptions, dataDir: string, embeddedDir: string | null, db: TestDatabase): Promise<TestServer> {
  const loaded = loadConfig({
    ...(embeddedDir ? {} : { DATABASE_URL: db.url }),
    FMSG_DATA_DIR: dataDir,
    FMSG_API_JWT_SECRET: TEST_SECRET,
    FMSG_ID_URL: opts.identityUrl ?? "builtin",
    FMSG_API_HOST: "127.0.0.1",
    FMSG_API_PORT: "0",
    FMSG_API_RATE_LIMIT: "100000",
    FMSG_API_RATE_BURST: "100000",
    FMSG_API_LOG: "off",
    FMSG_API_DB_POOL_SIZE: "4",
    ...opts.env,
  });
  // The test's settings as loaded (configured mode, so none is replaced by an embedded default),
  // with the database switched to the embedded one.
  const config: Config = embeddedDir ? { ...loaded, mode: "embedded", embeddedDatabaseDir: embeddedDir } : loaded;
  const server = await startServer(config, {
    log: opts.log ?? (() => {}),
    listenerHeartbeatMs: opts.heartbeatMs ?? 500,
    idleTimeoutSeconds: opts.idleTimeoutSeconds,
  });
  if (embeddedDir) db.sql = server.sql; // the one connection there is
  const url = server.urls[0]!.replace(/\/$/, "");
  watchServer(url, { seed: server.openApiDocument("seed"), "fmsg-003": server.openApiDocument("fmsg-003") });
  const token = (address: string, ttl = 600) => mintToken(address, TEST_KEY, ttl);
  return {
    url,
    db,
    dataDir,
    config,
    server,
    token,
    request(method, path, ro = {}) {
      const headers: Record<string, string> = { ...ro.headers };
      const as = ro.as === undefined ? "@alice@example.com" : ro.as;
      if (as !== null && headers.authorization === undefined) headers.authorization = `Bearer ${token(as)}`;
      let body = ro.body;
      if (ro.json !== undefined) {
        body = JSON.stringify(ro.json);
        headers["content-type"] ??= "application/json";
      }
      return fetch(`${url}${path}`, { method, headers, body });
    },
    async stop() {
      unwatchServer(url);
      await server.stop(); // closes the embedded database too
      if (!opts.database) await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export { signJwt };

/** A minimal valid draft body from `from` to `to`. */
export function draft(from: string, to: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { version: 1, from, to, type: "text/plain", topic: "Hello", data: "hello world\n", ...extra };
}
