// A real server per test file: its own database, data directory and (optionally) identity stub.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../src/config.ts";
import { mintToken, signJwt } from "../../src/lib/jwt.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";

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
};

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const db = opts.database ?? (await createTestDatabase());
  const dataDir = await mkdtemp(join(tmpdir(), "fmsg-test-data-"));
  const config = loadConfig({
    DATABASE_URL: db.url,
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
  const server = await startServer(config, { log: () => {}, listenerHeartbeatMs: opts.heartbeatMs ?? 500 });
  const url = server.urls[0]!.replace(/\/$/, "");
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
      await server.stop();
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
