// Command line: serve (default) | migrate | token <address> [--ttl 1h] | healthcheck.
import { existsSync, readFileSync } from "node:fs";
import { configuredModeSelected, ConfigError, decodeJwtSecret, loadConfig, parseDotEnv, type Env } from "./config.ts";
import { EMBEDDED_POOL_OPTIONS, startEmbeddedDatabase, type EmbeddedDatabase } from "./db/embedded.ts";
import { openPool } from "./db/pool.ts";
import { migrate } from "./db/schema.ts";
import { isValidAddress } from "./domain/address.ts";
import { prepareEmbeddedDefaults, SAMPLE_ADDRESS } from "./embedded-defaults.ts";
import { jsonLogger } from "./http/request-log.ts";
import { mintToken } from "./lib/jwt.ts";
import { startServer, StartupError, type DatabaseTarget } from "./server.ts";

/** .env in the working directory, under the real environment (which wins). */
function environment(): Env {
  const env: Env = { ...process.env };
  if (existsSync(".env")) {
    for (const [k, v] of Object.entries(parseDotEnv(readFileSync(".env", "utf8")))) {
      if (env[k] === undefined) env[k] = v;
    }
  }
  return env;
}

function fail(message: string): never {
  process.stderr.write(`fmsg-webapi: ${message}\n`);
  process.exit(1);
}

async function openEmbedded(databaseDir: string): Promise<{ db: EmbeddedDatabase; target: DatabaseTarget }> {
  const db = await startEmbeddedDatabase(databaseDir);
  return { db, target: { url: db.url, ...EMBEDDED_POOL_OPTIONS, inProcessNotify: true } };
}

async function serve(env: Env): Promise<void> {
  const embedded = configuredModeSelected(env) ? null : await prepareEmbeddedDefaults();
  const config = loadConfig(env, embedded ?? undefined);
  const log = jsonLogger(config.log === "info");
  const database = embedded ? await openEmbedded(embedded.databaseDir) : null;
  const server = await startServer(config, { log, database: database?.target });
  log({ level: "info", msg: "listening", urls: server.urls, mode: config.mode });
  if (embedded) {
    const url = server.urls[0]!.replace("0.0.0.0", "localhost");
    const token = mintToken(SAMPLE_ADDRESS, config.jwtKey, 30 * 24 * 3600);
    process.stdout.write(
      [
        "",
        `fmsg web API (embedded default, data in ${embedded.dataDir}) at ${url}`,
        `Bearer token for ${SAMPLE_ADDRESS} (30 days):`,
        `  ${token}`,
        `Try: curl -H "Authorization: Bearer ${token}" ${url}fmsg`,
        "",
      ].join("\n"),
    );
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log({ level: "info", msg: "shutting down", signal });
    void server
      .stop()
      .then(() => database?.db.close())
      .then(() => {
        log({ level: "info", msg: "stopped" });
        process.exit(0);
      });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

async function migrateCommand(env: Env): Promise<void> {
  if (configuredModeSelected(env)) {
    const config = loadConfig({ FMSG_DATA_DIR: "/unused", FMSG_API_JWT_SECRET: "unused", FMSG_ID_URL: "builtin", ...env });
    const sql = openPool({ url: config.databaseUrl, max: 1 });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } else {
    const defaults = await prepareEmbeddedDefaults();
    const { db, target } = await openEmbedded(defaults.databaseDir);
    const sql = openPool(target);
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
      await db.close();
    }
  }
  process.stdout.write("schema is up to date\n");
}

/** "90s", "15m", "1h", "7d" or plain seconds. */
export function parseTtl(text: string): number | null {
  const m = /^([1-9][0-9]{0,8})([smhd]?)$/.exec(text.trim());
  if (!m) return null;
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

async function tokenCommand(env: Env, args: string[]): Promise<void> {
  let ttl = 3600;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--ttl" || a.startsWith("--ttl=")) {
      const value = a === "--ttl" ? args[++i] : a.slice("--ttl=".length);
      const parsed = value === undefined ? null : parseTtl(value);
      if (parsed === null) fail(`--ttl must look like 90s, 15m, 1h or 7d, got "${value ?? ""}"`);
      ttl = parsed;
    } else rest.push(a);
  }
  const address = rest[0];
  if (rest.length !== 1 || !isValidAddress(address)) fail("usage: fmsg-webapi token @user@domain [--ttl 1h]");
  let key: Uint8Array;
  if (configuredModeSelected(env)) {
    if (env.FMSG_API_JWT_SECRET === undefined) throw new ConfigError("FMSG_API_JWT_SECRET is required");
    key = decodeJwtSecret(env.FMSG_API_JWT_SECRET);
  } else {
    key = decodeJwtSecret((await prepareEmbeddedDefaults()).jwtSecret);
  }
  process.stdout.write(`${mintToken(address, key, ttl)}\n`);
}

async function healthcheck(env: Env): Promise<void> {
  const port = env.FMSG_API_PORT && /^[0-9]+$/.test(env.FMSG_API_PORT) ? env.FMSG_API_PORT : "8000";
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3000) });
    process.exit(res.ok ? 0 : 1);
  } catch {
    process.exit(1);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command = "serve", ...args] = argv;
  const env = environment();
  try {
    if (command === "serve") await serve(env);
    else if (command === "migrate") await migrateCommand(env);
    else if (command === "token") await tokenCommand(env, args);
    else if (command === "healthcheck") await healthcheck(env);
    else fail(`unknown command "${command}" (serve | migrate | token | healthcheck)`);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof StartupError) fail(err.message);
    fail(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  }
}

if (import.meta.main) await main(process.argv.slice(2));
