// Browser access (README "Configuration"): Hono's CORS middleware for the origins in FMSG_CORS_ORIGINS, and for no other.
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "./app-env.ts";

/** Response headers a page may read beyond the CORS-safelisted ones. */
export const EXPOSED_HEADERS = [
  "Fmsg-Profile",
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
  "RateLimit-Policy",
  "Retry-After",
  "ETag",
  "Link",
  "X-Request-Id",
];

/**
 * `origins` as config.ts left them: empty (no CORS at all), `["*"]` (any origin), or normalised
 * origins such as `https://app.example.com`. Mounted before the rate limiter, so a preflight is
 * answered 204 before authentication and a 429 still carries Access-Control-Allow-Origin.
 */
export function corsPolicy(origins: readonly string[]): MiddlewareHandler<AppEnv> {
  if (origins.length === 0) return (_c, next) => next();
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins);
  const allowCors = cors({
    origin: anyOrigin ? "*" : [...origins],
    allowMethods: ["GET", "POST", "PUT", "DELETE"],
    // Every request header the API reads: a page can choose its profile, retry idempotently, resume.
    allowHeaders: ["Authorization", "Content-Type", "Fmsg-Profile", "Idempotency-Key", "If-None-Match", "If-Range", "Last-Event-ID", "Range", "X-Request-Id"],
    exposeHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });
  return (c, next) => {
    const origin = c.req.header("origin");
    if (anyOrigin || (origin !== undefined && allowed.has(origin))) return allowCors(c, next);
    // Hono's cors would still send Expose-Headers (and Allow-Methods/-Headers on OPTIONS) to an
    // origin it does not allow; ours get no Access-Control-* header at all, only the Vary that tells
    // caches the answer depends on Origin.
    c.header("Vary", "Origin", { append: true });
    return next();
  };
}
