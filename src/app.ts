// createApp(deps): the one wiring of middleware and routes, shared by the server and the tests.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { Config } from "./config.ts";
import { DocumentQuery } from "./contract/requests.ts";
import { apiKeyState } from "./db/api-keys.ts";
import type { Sql } from "./db/pool.ts";
import type { IdentityService } from "./identity/identity-service.ts";
import { jwksVerifier } from "./identity/jwks-verifier.ts";
import type { AppEnv } from "./http/app-env.ts";
import { MintedTokenCheck } from "./http/api-key-tokens.ts";
import { requireIdentity } from "./http/auth.ts";
import { corsPolicy } from "./http/cors.ts";
import { ApiError, makeErrorHandler } from "./http/errors.ts";
import { answers, openApiDocument } from "./http/openapi.ts";
import { announceProfile, chooseProfile } from "./http/profile.ts";
import type { Metrics } from "./http/metrics.ts";
import { rateLimit, type RateStore } from "./http/rate-limit.ts";
import { requestLog, type Logger } from "./http/request-log.ts";
import { attachmentRoutes } from "./http/routes/attachments.ts";
import { eventRoutes } from "./http/routes/events.ts";
import { healthRoutes } from "./http/routes/health.ts";
import { messageRoutes } from "./http/routes/messages.ts";
import { threadRoutes } from "./http/routes/threads.ts";
import { tokenRoutes } from "./http/routes/token.ts";
import { waitRoutes } from "./http/routes/wait.ts";
import { webSocketRoutes } from "./http/routes/web-socket.ts";
import { refuseInvalid } from "./http/validation.ts";
import type { MessageDeps } from "./messages/context.ts";
import { shortTextCache, type ShortTexts } from "./messages/read-messages.ts";
import type { ListenerStatus } from "./realtime/inbox-listener.ts";
import type { InboxSockets } from "./realtime/inbox-sockets.ts";
import type { InboxWaiters } from "./realtime/inbox-waiters.ts";

export type AppDeps = {
  config: Config;
  sql: Sql;
  identity: IdentityService;
  waiters: InboxWaiters;
  /** The readers of GET /fmsg/events. */
  feed: InboxWaiters;
  /** The open WebSockets of GET /fmsg/ws. */
  sockets: InboxSockets;
  listener: ListenerStatus;
  /** Tells waiters that addresses may have new mail (a no-op where the LISTEN connection hears the triggers). */
  wake: MessageDeps["wake"];
  log: Logger;
  metrics: Metrics | null;
  /** What the start-up schema check found short of a missing table (reported by /readyz). */
  schemaWarnings?: readonly string[];
  /** Where the limiter counts (FMSG_API_RATE_STORE: Redis, shared by every instance); default this process's own buckets. */
  rateLimitStore?: RateStore;
  /** Short texts of sent messages, shared with the WebSocket frames (a fresh cache when absent). */
  shortTexts?: ShortTexts;
};

/**
 * The router decodes percent-escapes, so `/fmsg/%31` would reach a route as id "1". An id must be
 * plain digits as sent: a first segment with an escape in it names no message.
 */
const plainIdSegment: MiddlewareHandler<AppEnv> = (c, next) => {
  const path = c.req.url.slice(c.req.url.indexOf("/", c.req.url.indexOf("//") + 2));
  const segment = /^\/fmsg\/([^/?#]*)/.exec(path)?.[1];
  if (segment?.includes("%")) throw new ApiError(400, "invalid message id");
  return next();
};

/**
 * Middleware that hand on to `next()` as their last act (or throw) run as one layer, in this order.
 * Each layer of Hono's own costs every request a dispatch step on the way in and a resumption on the
 * way back; a wait answered after minutes still walks back through every one of them.
 */
function inTurn(...steps: MiddlewareHandler<AppEnv>[]): MiddlewareHandler<AppEnv> {
  return (c, next) => {
    const step = (i: number): Promise<void> => (i === steps.length ? next() : (steps[i]!(c, () => step(i + 1)) as Promise<void>));
    return step(0);
  };
}

const metricsRoute = createRoute({
  operationId: "metrics",
  method: "get",
  path: "/metrics",
  tags: ["operations"],
  summary: "Prometheus metrics (only when FMSG_API_METRICS is on; rate-limited like every route but the health checks)",
  responses: {
    200: { description: "Text exposition format 0.0.4.", content: { "text/plain": { schema: z.string() } } },
  },
});

const documentRoute = createRoute({
  operationId: "openApiDocument",
  method: "get",
  path: "/openapi.json",
  tags: ["operations"],
  summary: "This document",
  request: { query: DocumentQuery },
  responses: answers(
    { 200: { description: "The OpenAPI 3.1 document of this server's routes.", content: { "application/json": { schema: z.record(z.string(), z.unknown()) } } } },
    { 400: "An unknown profile (`invalid profile`)." },
    { authenticated: false },
  ),
});

export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { config } = deps;
  const messageDeps: MessageDeps = {
    sql: deps.sql,
    dataDir: config.dataDir,
    domain: config.domain,
    identity: deps.identity,
    maxDataBytes: config.maxDataBytes,
    maxAttachBytes: config.maxAttachBytes,
    maxMsgBytes: config.maxMsgBytes,
    shortTextSize: config.shortTextSize,
    shortTexts: deps.shortTexts ?? shortTextCache(),
    wake: deps.wake,
    log: deps.log,
  };

  // Middleware by access level: health checks are open; everything else is rate-limited, and
  // /fmsg additionally needs a valid token and identity (docs/API.md "Errors": limit, then auth, then input).
  const limited = rateLimit({
    rate: config.rateLimit,
    burst: config.rateBurst,
    trustedProxies: config.trustedProxies,
    store: deps.rateLimitStore,
    onLimited: () => deps.metrics?.countRateLimited(),
  });
  // Shared by the token check of every request and the key sweep of open WebSockets: one key-state cache.
  const mintedTokens = new MintedTokenCheck((keyId) => apiKeyState(deps.sql, keyId));
  const authenticated = requireIdentity({
    jwtKey: config.jwtKey,
    jwtPreviousKey: config.jwtPreviousKey,
    maxTokenTtl: config.maxTokenTtl,
    identity: deps.identity,
    mintedTokens,
    // Built once per app: its key cache and refetch cooldown must outlive a request.
    jwks: config.identityProvider ? jwksVerifier(config.identityProvider, config.maxTokenTtl, deps.log) : null,
  });

  const app = new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid });
  app.use("*", requestLog(deps.log, deps.metrics));
  // Every answer under /fmsg names its profile, preflights and 429s included (API §13).
  app.use("/fmsg/*", announceProfile(config.profile));
  app.use("*", corsPolicy(config.corsOrigins)); // before the limiter and auth: preflights, and 429s carry CORS
  app.route("/", healthRoutes(deps.sql, deps.listener, config.dataDir, deps.schemaWarnings));
  // The limit applies to every route but the health checks (API §4): /metrics and /openapi.json too.
  app.use("*", limited);
  if (deps.metrics) {
    const metrics = deps.metrics;
    app.openapi(metricsRoute, (c) => c.text(metrics.render(), 200, { "Content-Type": "text/plain; version=0.0.4" }));
  }
  // Built on first request, once every route below is registered; it never changes after.
  app.openapi(documentRoute, (c) => c.json(openApiDocument(app, c.req.valid("query").profile ?? config.profile), 200));
  // Before the token check: POST /fmsg/token takes an API key, not a token (no other method is served there).
  app.route("/fmsg", tokenRoutes({ ...deps, jwtKey: config.jwtKey, tokenTtl: config.apiTokenTtl, domain: config.domain, trustedProxies: config.trustedProxies }));
  app.use("/fmsg/*", inTurn(authenticated, chooseProfile, plainIdSegment)); // also matches "/fmsg" itself
  app.route("/fmsg", waitRoutes(deps.waiters));
  app.route("/fmsg", webSocketRoutes(deps.sockets, mintedTokens));
  app.route("/fmsg", eventRoutes({ sql: deps.sql, feed: deps.feed, log: deps.log, mintedTokens }));
  app.route("/fmsg", messageRoutes(messageDeps));
  app.route("/fmsg", attachmentRoutes(messageDeps));
  app.route("/fmsg", threadRoutes(messageDeps));

  app.notFound(() => {
    throw new ApiError(404, "not found");
  });
  app.onError(makeErrorHandler(deps.log));
  return app;
}
