// X-Request-Id and one JSON log line per request (never tokens or query strings), feeding /metrics.
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "./app-env.ts";
import type { Metrics } from "./metrics.ts";
import { holdParked } from "./parked.ts";

export type Logger = (line: Record<string, unknown>) => void;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's X-Request-Id when it is 1–128 of [A-Za-z0-9._:-], else a fresh UUID. */
const requestIdFor = (c: Context) => {
  const given = c.req.header("x-request-id");
  return given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID();
};

/** A logger whose lines may wait for the end of the event-loop turn; flush() writes them now. */
export type BufferedLogger = Logger & { flush(): void };

/** Lines held longer than this are written at once, whatever the turn. */
const FLUSH_AT_CHARS = 64 * 1024;

/**
 * One JSON line per call. Lines of one event-loop turn go out in one write: a wave of 10,000
 * long-poll answers logged line by line cost ~27 ms more CPU in write calls than in batches (in
 * process, to a pipe). A line waits at most until the turn ends; only a kill -9 within that turn
 * loses it. The server flushes on its "exit" event (src/main.ts), whichever way it exits.
 */
export function jsonLogger(enabled: boolean, write: (text: string) => void = (t) => process.stdout.write(t)): BufferedLogger {
  if (!enabled) return Object.assign(() => {}, { flush: () => {} });
  let held: string[] = [];
  let chars = 0;
  let scheduled = false;
  const flush = () => {
    if (held.length === 0) return;
    const text = held.join("");
    held = [];
    chars = 0;
    write(text);
  };
  const logger = (line: Record<string, unknown>) => {
    const text = `${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`;
    held.push(text);
    chars += text.length;
    if (chars >= FLUSH_AT_CHARS) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        flush();
      });
    }
  };
  return Object.assign(logger, { flush });
}

export function requestLog(log: Logger, metrics: Metrics | null): MiddlewareHandler<AppEnv> {
  // Hono's request-id middleware would do the first two steps, but as one more async layer around
  // every request, and with its own rule for a client's id (up to 255 of [A-Za-z0-9_=-]), not ours.
  return async (c, next) => {
    const started = performance.now();
    const id = requestIdFor(c);
    c.set("requestId", id);
    c.header("X-Request-Id", id); // before the route runs: it goes into the answer as that is built
    try {
      await next();
    } finally {
      logRequest(c, started, log, metrics);
    }
  };
}

function logRequest(c: Context<AppEnv>, started: number, log: Logger, metrics: Metrics | null): void {
  const requestId = c.get("requestId");
  // An answer built without the header set before the route ran (the WebSocket's); set on the
  // answer itself, since c.header() now would make Hono wrap the whole response again.
  if (!c.res.headers.has("X-Request-Id")) c.res.headers.set("X-Request-Id", requestId);
  // The first route with a method is the handler that answered (or would have, when
  // middleware refused first); middleware (method ALL, e.g. "/*") and later matches such as
  // "/fmsg/:id" for /fmsg/wait are not it.
  const route = matchedRoutes(c).find((r) => r.method !== "ALL")?.path ?? "unmatched";
  const { method, path } = c.req; // the path only: query strings may carry secrets
  const clientIp = c.get("clientIp") ?? null;
  // Read now, not when a parked request is answered: the context is not kept for that.
  const answered = (status: number) => {
    const seconds = (performance.now() - started) / 1000;
    metrics?.observe(method, route, status, seconds);
    log({ msg: "request", method, path, status, ms: Math.round(seconds * 10000) / 10, request_id: requestId, client_ip: clientIp });
  };
  if (!holdParked(c, answered)) answered(c.get("switchedProtocols") ? 101 : c.res.status);
}
