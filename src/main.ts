#!/usr/bin/env bun
// Command line: serve (default) | migrate | token <address> [--ttl 1h] | api-key create|list|rotate|revoke | healthcheck | --help | --version.
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { configuredModeSelected, ConfigError, decodeJwtSecret, loadConfig, parseDotEnv, parseTtl, type Env } from "./config.ts";
import { migrateEmbeddedDatabase } from "./db/embedded.ts";
import { openPool } from "./db/pool.ts";
import { migrate } from "./db/schema.ts";
import { isValidAddress } from "./domain/address.ts";
import { prepareEmbeddedDefaults, SAMPLE_ADDRESS } from "./embedded-defaults.ts";
import { jsonLogger } from "./http/request-log.ts";
import { stdoutLogWriter } from "./lib/log-output.ts";
import { mintToken } from "./lib/jwt.ts";
import { startServer, StartupError } from "./server.ts";
import { apiKeyCommand } from "./cli/api-key.ts";
import { VERSION } from "./version.ts";

const USAGE = `fmsg-webapi ${VERSION}: the HTTP API of an fmsg host

Usage: fmsg-webapi [command] [options]

Commands:
  serve                          run the server (the default). With no configuration it runs the
                                 embedded default in ./fmsg-data; set FMSG_DATA_DIR,
                                 FMSG_API_JWT_SECRET and FMSG_ID_URL (plus DATABASE_URL or PG*)
                                 for the configured mode next to fmsgd
  migrate                        create or update the schema (idempotent)
  token @user@domain [--ttl 1h]  print a bearer token signed with the configured secret
                                 (--ttl: 3600, 90s, 15m, 12h or 7d; at most FMSG_API_MAX_TOKEN_TTL)
  api-key create @user@domain [--ttl 90d | --expires <RFC 3339>] [--cidr 10.0.0.0/8,…] [--label text] [--json]
                                 issue an API key (printed once) that clients exchange at POST /fmsg/token
  api-key list [@user@domain] [--json]
                                 key ids, addresses, labels, CIDRs, expiry and last use; never a secret
  api-key rotate <key_id>        a new secret for the key; the old one and its tokens stop working
  api-key revoke <key_id>        the key and every token made from it stop working
  healthcheck                    exit 0 when the server on FMSG_API_PORT answers /healthz

Options:
  -h, --help                     this text
  -v, --version                  the version
`;

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

/**
 * What a stop may take beyond draining requests (FMSG_API_SHUTDOWN_TIMEOUT) before the process exits
 * anyway: closing the pool waits up to 5 s for running queries, the embedded database's stop a little.
 */
const CLEANUP_ALLOWANCE_MS = 10_000;

function fail(message: string): never {
  // One line per problem (configuration errors come all at once), each naming its variable.
  process.stderr.write(message.split("\n").map((line) => `fmsg-webapi: ${line}\n`).join(""));
  process.exit(1);
}

async function serve(env: Env): Promise<void> {
  const embedded = configuredModeSelected(env) ? null : await prepareEmbeddedDefaults();
  const config = loadConfig(env, embedded ?? undefined);
  const log = jsonLogger(config.log === "info", stdoutLogWriter());
  // Whichever way the process exits, the lines still held for the end of this turn are written first.
  process.on("exit", () => log.flush());
  const server = await startServer(config, { log });
  log({ level: "info", msg: "listening", urls: server.urls, mode: config.mode, version: VERSION });
  if (embedded) {
    log.flush(); // the banner follows the "listening" line
    const url = server.urls[0]!.replace("0.0.0.0", "localhost");
    const ttl = Math.min(30 * 86400, config.maxTokenTtl);
    const token = mintToken(SAMPLE_ADDRESS, config.jwtKey, ttl);
    process.stdout.write(
      [
        "",
        `fmsg web API (embedded default, data in ${embedded.dataDir}) at ${url}`,
        `Bearer token for ${SAMPLE_ADDRESS} (${ttl % 86400 === 0 ? `${ttl / 86400} days` : `${ttl} seconds`}):`,
        `  ${token}`,
        `Try: curl -H "Authorization: Bearer ${token}" ${url}fmsg`,
        "",
      ].join("\n"),
    );
  }
  let stopping = false;
  const shutdown = (reason: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    log({ level: exitCode === 0 ? "info" : "error", msg: "shutting down", reason });
    // However the stop goes, the process ends, with the code its cause asked for: a stop by signal is
    // still the stop that was asked for (0), a fatal error still a failure (1) that a supervisor restarts.
    const hardStop = setTimeout(() => {
      log({ level: "error", msg: "stop took too long: exiting now", exitCode });
      process.exit(exitCode);
    }, config.shutdownTimeoutMs + CLEANUP_ALLOWANCE_MS);
    hardStop.unref();
    void server
      .stop()
      .catch(() => {})
      .then(() => {
        log({ level: "info", msg: "stopped", exitCode });
        process.exit(exitCode);
      });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM", 0));
  process.on("SIGINT", () => shutdown("SIGINT", 0));
  // An error no request handler caught means some state may be broken: log it, stop accepting,
  // let in-flight requests finish, and exit non-zero so systemd or the container runtime restarts
  // a clean process (README "Reliability"). Never die silently, never limp on.
  const fatal = (kind: string) => (err: unknown) => {
    log({ level: "error", msg: kind, error: String(err instanceof Error ? (err.stack ?? err.message) : err) });
    shutdown(kind, 1);
  };
  process.on("uncaughtException", fatal("uncaught exception"));
  process.on("unhandledRejection", fatal("unhandled promise rejection"));
}

async function migrateCommand(env: Env): Promise<void> {
  if (configuredModeSelected(env)) {
    const config = loadConfig({ FMSG_DATA_DIR: "/unused", FMSG_API_JWT_SECRET: "unused", FMSG_ID_URL: "builtin", ...env });
    const sql = openPool({ url: config.databaseUrl, ssl: config.databaseSsl, max: 1 });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } else {
    await migrateEmbeddedDatabase((await prepareEmbeddedDefaults()).databaseDir);
  }
  process.stdout.write("schema is up to date\n");
}

async function tokenCommand(env: Env, args: string[]): Promise<void> {
  let parsedArgs;
  try {
    parsedArgs = parseArgs({ args, allowPositionals: true, options: { ttl: { type: "string" } } });
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)}\nusage: fmsg-webapi token @user@domain [--ttl 1h]`);
  }
  const rest = parsedArgs.positionals;
  let ttl = 3600;
  if (parsedArgs.values.ttl !== undefined) {
    const parsed = parseTtl(parsedArgs.values.ttl);
    if (parsed === null) fail(`--ttl must look like 90s, 15m, 1h or 7d, got "${parsedArgs.values.ttl}"`);
    ttl = parsed;
  }
  const maxTtl = env.FMSG_API_MAX_TOKEN_TTL ? parseTtl(env.FMSG_API_MAX_TOKEN_TTL) : 30 * 86400;
  if (maxTtl === null) fail(`FMSG_API_MAX_TOKEN_TTL must look like 3600, 90s, 15m, 12h or 30d, got "${env.FMSG_API_MAX_TOKEN_TTL}"`);
  if (ttl > maxTtl) fail(`--ttl is longer than FMSG_API_MAX_TOKEN_TTL (${maxTtl} s): the server would refuse the token`);
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
  if (command === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return;
  }
  if (command === "--version" || command === "-v" || command === "version") {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const env = environment();
  try {
    if (command === "serve") await serve(env);
    else if (command === "migrate") await migrateCommand(env);
    else if (command === "token") await tokenCommand(env, args);
    else if (command === "api-key") process.exitCode = await apiKeyCommand(env, args);
    else if (command === "healthcheck") await healthcheck(env);
    else fail(`unknown command "${command}" (serve | migrate | token | api-key | healthcheck | --help | --version)`);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof StartupError) fail(err.message);
    fail(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  }
}

if (import.meta.main) await main(process.argv.slice(2));
