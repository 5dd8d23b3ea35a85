// X-Request-Id and one JSON log line per request (never tokens or query strings), feeding /metrics.
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "./app-env.ts";
import type { Metrics } from "./metrics.ts";

export type Logger = (line: Record<string, unknown>) => void;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function jsonLogger(enabled: boolean, write: (text: string) => void = (t) => process.stdout.write(t)): Logger {
  if (!enabled) return () => {};
  return (line) => write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`);
}

export function requestLog(log: Logger, metrics: Metrics | null): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    c.set("requestId", requestId);
    // Set before the handler runs, so it goes into the response as it is built (setting it
    // afterwards makes Hono copy the whole response once more).
    c.header("X-Request-Id", requestId);
    try {
      await next();
    } finally {
      // Responses a handler built itself (downloads) did not pass through c.header().
      if (!c.res.headers.has("X-Request-Id")) c.header("X-Request-Id", requestId);
      const seconds = (performance.now() - started) / 1000;
      // The first route with a method is the handler that answered (or would have, when
      // middleware refused first); middleware (method ALL, e.g. "/*") and later matches such as
      // "/fmsg/:id" for /fmsg/wait are not it.
      const route = matchedRoutes(c).find((r) => r.method !== "ALL")?.path ?? "unmatched";
      metrics?.observe(c.req.method, route, c.res.status, seconds);
      log({
        msg: "request",
        method: c.req.method,
        path: c.req.path, // the path only: query strings may carry secrets
        status: c.res.status,
        ms: Math.round(seconds * 10000) / 10,
        request_id: requestId,
        client_ip: c.var.clientIp ?? null,
      });
    }
  };
}
