// startServer(config): database, schema check, waiters and their wake-ups, identity service, Bun.serve, drain on stop.
import type { Server } from "bun";
import { createApp } from "./app.ts";
import type { Config } from "./config.ts";
import { latestEventSeqs } from "./db/events.ts";
import { latestInboxIds } from "./db/messages.ts";
import { confirmNotified } from "./db/wake-confirm.ts";
import { isConnectionFailure } from "./db/errors.ts";
import { openDatabase } from "./db/open-database.ts";
import { IDLE_IN_TRANSACTION_MS, type Sql } from "./db/pool.ts";
import { migrate } from "./db/schema.ts";
import { checkSchema, type SchemaReport } from "./db/schema-check.ts";
import { retryLocalDeliveries } from "./delivery/local-delivery.ts";
import type { Profile } from "./domain/profile.ts";
import { Metrics } from "./http/metrics.ts";
import { RETRY_AFTER_SECONDS } from "./http/errors.ts";
import { openApiDocument } from "./http/openapi.ts";
import { unpark } from "./http/parked.ts";
import { RedisRateStore } from "./http/rate-store-redis.ts";
import type { Logger } from "./http/request-log.ts";
import { cachedIdentityService, type CachedIdentityService } from "./identity/cached-identity.ts";
import { fmsgidClient } from "./identity/fmsgid-client.ts";
import { builtinIdentityService } from "./identity/identity-service.ts";
import type { ListenerStatus } from "./realtime/inbox-listener.ts";
import { startEventPruner } from "./realtime/event-pruner.ts";
import { InboxWaiters } from "./realtime/inbox-waiters.ts";
import { InboxSockets } from "./realtime/inbox-sockets.ts";
import { inboxFrames } from "./messages/inbox-frames.ts";
import { pruneExpiredAnswers } from "./messages/idempotency.ts";
import { webSocketHandler } from "./lib/bun.ts";
import { fileRows } from "./db/files.ts";
import { armCrashPoint } from "./lib/crash-point.ts";
import { ensureDir } from "./storage/atomic-file.ts";
import { sweepDataDir, sweepGraceMs } from "./storage/sweep.ts";
import { shortTextCache } from "./messages/read-messages.ts";

/** File-system failures Bun can meet serving a file after the route answered: the storage's, not a bug. */
const STORAGE_FAULT_CODES = new Set(["EMFILE", "ENFILE", "EIO", "EACCES", "ENOMEM"]);

/**
 * Bun's idle timeout for every connection. Only /fmsg/wait extends its own: a global 0 would turn off
 * the protection against idle and slowloris sockets, and Bun refuses values above 255.
 */
export const IDLE_TIMEOUT_SECONDS = 30;
const LOCAL_DELIVERY_RETRY_MS = 60_000;
/** How long a start waits for a database that is down, starting or restarting. */
const START_DATABASE_WAIT_MS = 60_000;
const IDEMPOTENCY_PRUNE_MS = 15 * 60_000;

/** A failure to start that the operator must fix; main prints it as one line. */
export class StartupError extends Error {}

/**
 * Runs the start's first database step, again every second while the database cannot be reached
 * (down, starting up, restarting: a host booting, or both restarted at once), for up to
 * START_DATABASE_WAIT_MS; then, or on any other error, it fails the start.
 */
async function onceDatabaseAnswers<T>(log: Logger, step: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + START_DATABASE_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!isConnectionFailure(err) || Date.now() >= deadline) throw err;
      if (attempt % 10 === 1) log({ level: "warn", msg: "database unavailable at start: trying again every second", error: err instanceof Error ? err.message : String(err) });
      await Bun.sleep(1000);
    }
  }
}

export type RunningServer = {
  urls: string[];
  sql: Sql;
  waiters: InboxWaiters;
  /** The readers of GET /fmsg/events waiting for their next event. */
  feed: InboxWaiters;
  /** The open WebSockets of GET /fmsg/ws. */
  sockets: InboxSockets;
  /** Whether wake-ups are arriving (the LISTEN connection is up; always with the embedded database). */
  listener: ListenerStatus;
  identity: CachedIdentityService | null;
  /** The OpenAPI document this server serves at /openapi.json. */
  openApiDocument(profile: Profile): unknown;
  stop(): Promise<void>;
};

export type StartOptions = {
  log: Logger;
  listenerHeartbeatMs?: number;
  /** Overrides IDLE_TIMEOUT_SECONDS (tests prove a wait outlives a short idle timeout). */
  idleTimeoutSeconds?: number;
};

export async function startServer(config: Config, opts: StartOptions): Promise<RunningServer> {
  const { log } = opts;
  armCrashPoint(config.crashAt);
  const database = await openDatabase(config);
  const { sql } = database;
  const cleanups: (() => Promise<unknown>)[] = [() => database.close()];
  try {
    let schema: SchemaReport;
    try {
      schema = await onceDatabaseAnswers(log, async () => {
        if (config.autoMigrate) await migrate(sql);
        return checkSchema(sql);
      });
      if (schema.missingTables.length > 0) {
        throw new StartupError(`database is missing tables ${schema.missingTables.join(", ")}: run "fmsg-webapi migrate"`);
      }
    } catch (err) {
      if (err instanceof StartupError) throw err;
      throw new StartupError(`cannot use the database: ${err instanceof Error ? err.message : String(err)}`);
    }
    // Serving works without them, only slower or with fmsgd's older trigger behaviour: say so loudly.
    for (const problem of schema.warnings) log({ level: "warn", msg: "schema differs from what migrate installs", object: problem });
    await ensureDir(config.dataDir);
    // Safe beside other instances writing: it removes only leftovers older than any write can take
    // from placing its file to COMMIT under this server's statement timeout.
    const swept = await sweepDataDir(config.dataDir, fileRows(sql), { graceMs: sweepGraceMs(config.statementTimeoutMs, IDLE_IN_TRANSACTION_MS) });
    if (swept.tempFiles + swept.orphanFiles + swept.orphanFolders + swept.tooRecent > 0) {
      log({ level: "info", msg: "removed files left by an interrupted write", ...swept });
    }

    const waiters = new InboxWaiters((pairs) => latestInboxIds(sql, pairs), log, (candidates) => confirmNotified(sql, candidates));
    const shortTexts = shortTextCache();
    const sockets = new InboxSockets(inboxFrames({ sql, dataDir: config.dataDir, shortTextSize: config.shortTextSize, shortTexts }), log);
    cleanups.unshift(async () => sockets.closeAll());
    const feed = new InboxWaiters((pairs) => latestEventSeqs(sql, pairs), log);
    const wakeUps = await database.startWakeUps(waiters, { log, heartbeatMs: opts.listenerHeartbeatMs, sockets, feed });
    cleanups.unshift(() => wakeUps.stop());
    const identity = config.idUrl === "builtin" ? null : cachedIdentityService(fmsgidClient(config.idUrl), config.idCacheSeconds);
    const lookups = identity ?? builtinIdentityService;
    // Shared buckets for N instances; Redis being away never stops the start (the store counts locally).
    const rateStore = config.rateStoreUrl ? new RedisRateStore({ url: config.rateStoreUrl, rate: config.rateLimit, burst: config.rateBurst, log }) : null;
    if (rateStore) {
      cleanups.unshift(() => rateStore.close());
      await rateStore.start();
    }
    const metrics = config.metrics
      ? new Metrics({
          fmsg_api_open_waits: { help: "Open /fmsg/wait requests.", read: () => waiters.size },
          fmsg_api_open_event_waits: { help: "Open GET /fmsg/events long polls and streams waiting for events.", read: () => feed.size },
          fmsg_api_open_websockets: { help: "Open /fmsg/ws connections.", read: () => sockets.size },
          // Bun counts a request until its answer is out: long polls and this scrape included.
          fmsg_api_requests_in_flight: { help: "Requests received and not yet answered (open waits and this scrape included).", read: () => servers.reduce((n, s) => n + s.pendingRequests, 0) },
          fmsg_api_listener_connected: { help: "1 when the LISTEN connection is up.", read: () => (wakeUps.connected() ? 1 : 0) },
          fmsg_api_identity_cache_hits: { help: "Identity look-ups answered from the cache.", read: () => identity?.stats.hits ?? 0 },
          fmsg_api_identity_cache_misses: { help: "Identity look-ups sent to fmsgid.", read: () => identity?.stats.misses ?? 0 },
          ...(rateStore && {
            fmsg_api_rate_store_shared: { help: "1 while the rate limit counts in Redis for every instance, 0 while this instance counts alone.", read: () => (rateStore.isShared ? 1 : 0) },
          }),
        })
      : null;
    const app = createApp({
      config,
      sql,
      identity: lookups,
      waiters,
      feed,
      sockets,
      listener: wakeUps,
      wake: wakeUps.wake,
      log,
      metrics,
      schemaWarnings: schema.warnings,
      shortTexts,
      rateLimitStore: rateStore ?? undefined,
    });

    const serveOptions = {
      hostname: config.host,
      development: false,
      // Bun 1.4 binds with SO_REUSEPORT when development is off unless told not to: a second server
      // on the same port would then start and share the traffic instead of failing.
      reusePort: false,
      idleTimeout: opts.idleTimeoutSeconds ?? IDLE_TIMEOUT_SECONDS,
      // Per-route limits cut bodies off while streaming, with JSON errors. Bun's own limit would
      // answer an empty 413 before any route runs, so it is set far out of the way.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      // A long poll's answer comes after its middleware chain has finished (src/http/parked.ts).
      fetch: (req: Request, server: Server<undefined>) => unpark(app.fetch(req, { server })),
      websocket: webSocketHandler,
      error: (err: Error) => {
        // A sent file is opened by Bun itself once the route has answered; out of descriptors
        // (EMFILE, ENFILE) or a failing disk there is the storage's fault, answered as every
        // other route answers it (503 storage unavailable, Retry-After), not a 500.
        const code = (err as { code?: unknown } | null)?.code;
        if (typeof code === "string" && STORAGE_FAULT_CODES.has(code)) {
          log({ level: "warn", msg: "storage unavailable", error: String(err) });
          return Response.json({ error: "storage unavailable" }, { status: 503, headers: { "Retry-After": RETRY_AFTER_SECONDS } });
        }
        log({ level: "error", msg: "unhandled server error", error: String(err?.stack ?? err) });
        return Response.json({ error: "internal server error" }, { status: 500 });
      },
    };
    const servers: Server<undefined>[] = [];
    cleanups.unshift(async () => {
      for (const s of servers) await s.stop(true);
    });
    servers.push(listen(() => Bun.serve({ ...serveOptions, port: config.port }), config.host, config.port, "FMSG_API_PORT"));
    if (config.tls) {
      const tls = { cert: Bun.file(config.tls.cert), key: Bun.file(config.tls.key) };
      servers.push(listen(() => Bun.serve({ ...serveOptions, port: config.tls!.port, tls }), config.host, config.tls.port, "FMSG_API_TLS_PORT"));
    }

    // Recipients left pending (fmsgid away, the database failing, or a crash between a send's commit
    // and its local delivery) are tried at start too: after a restart they need not wait a minute.
    const deliverPending = () => void retryLocalDeliveries({ sql, domain: config.domain, identity: lookups, log, wake: wakeUps.wake });
    if (config.domain) deliverPending();
    const retry = config.domain ? setInterval(deliverPending, LOCAL_DELIVERY_RETRY_MS) : null;

    // Idempotency-Key answers older than 24 h are ignored already; this only keeps the table small.
    const prune = setInterval(
      () => void pruneExpiredAnswers(sql).catch((err) => log({ level: "warn", msg: "pruning idempotency keys failed", error: String(err) })),
      IDEMPOTENCY_PRUNE_MS,
    );

    const stopPruningEvents = startEventPruner(sql, config.eventRetentionDays, log);

    let stopping: Promise<void> | null = null;
    return {
      urls: servers.map((s) => s.url.toString()),
      sql,
      waiters,
      feed,
      sockets,
      listener: wakeUps,
      identity,
      openApiDocument: (profile) => openApiDocument(app, profile),
      stop: () =>
        (stopping ??= (async () => {
          if (retry) clearInterval(retry);
          clearInterval(prune);
          // Open waits answer 204 and sockets close (1001) first, so the graceful stop below does not hang on them.
          stopPruningEvents();
          waiters.closeAll();
          feed.closeAll(); // ends event streams too
          sockets.closeAll();
          await Promise.all(servers.map((s) => drain(s, config.shutdownTimeoutMs)));
          for (const cleanup of cleanups) await cleanup().catch(() => {});
        })()),
    };
  } catch (err) {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    throw err;
  }
}

/**
 * Binds one listener; a port already taken (or not allowed) is a start-up error naming the variable.
 * With reusePort off (see serveOptions), a second server on a busy port fails here rather than
 * sharing the port with the first.
 */
function listen(bind: () => Server<undefined>, host: string, port: number, variable: string): Server<undefined> {
  try {
    return bind();
  } catch (err) {
    const reason = /in use|EADDRINUSE/i.test(String(err)) ? "the port is already in use" : String(err instanceof Error ? err.message : err);
    throw new StartupError(`cannot listen on ${host}:${port} (${variable}): ${reason}`);
  }
}

/** Stops accepting, lets in-flight requests finish for `timeoutMs` (FMSG_API_SHUTDOWN_TIMEOUT), then closes what is left. */
async function drain(server: Server<undefined>, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      void server.stop(true);
      resolve();
    }, timeoutMs);
  });
  await Promise.race([server.stop(false), forced]);
  clearTimeout(timer);
}
