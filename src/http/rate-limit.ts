// Per-client-IP token bucket (sustained rate, burst) plugged into hono-rate-limiter as its store (this
// process's own, or shared through Redis: rate-store-redis.ts), and the RateLimit-Limit / -Remaining /
// -Reset headers (IETF draft 6) on every response of a limited route.
import type { Context, MiddlewareHandler } from "hono";
import { rateLimiter, type RateLimitInfo, type Store } from "hono-rate-limiter";
import { BoundedMap } from "../lib/bounded-map.ts";
import { rateLimitKey, trustedProxyList, type CidrRange } from "../lib/ip.ts";
import { clientIp } from "./client-ip.ts";
import type { AppEnv } from "./app-env.ts";

declare module "hono" {
  interface ContextVariableMap {
    /** Left by hono-rate-limiter (its default requestPropertyName) before the route or the refusal runs. */
    rateLimit: RateLimitInfo;
  }
}

type Bucket = { tokens: number; at: number };

/** Bound on remembered clients; the least recently seen is forgotten first. */
export const MAX_TRACKED_CLIENTS = 50_000;

/**
 * hono-rate-limiter counts "hits" against a limit; this store reports hits = burst - tokens left,
 * so `limit: burst` admits a burst of `burst` and then `rate` requests per second.
 */
export class TokenBucketStore implements Store<AppEnv> {
  readonly localKeys = true;
  private readonly buckets: BoundedMap<string, Bucket>;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    maxKeys = MAX_TRACKED_CLIENTS,
    private readonly now: () => number = Date.now,
  ) {
    this.buckets = new BoundedMap(maxKeys);
  }

  get size(): number {
    return this.buckets.size;
  }

  increment(key: string) {
    const now = this.now();
    const old = this.buckets.get(key);
    let tokens = old ? Math.min(this.burst, old.tokens + ((now - old.at) / 1000) * this.rate) : this.burst;
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    this.buckets.set(key, { tokens, at: now });
    const waitMs = allowed ? ((this.burst - tokens) / this.rate) * 1000 : ((1 - tokens) / this.rate) * 1000;
    return {
      totalHits: allowed ? Math.ceil(this.burst - tokens) : this.burst + 1,
      resetTime: new Date(now + Math.max(waitMs, 1)),
    };
  }

  decrement(key: string) {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.burst, b.tokens + 1);
  }

  resetKey(key: string) {
    this.buckets.delete(key);
  }

  resetAll() {
    this.buckets.clear();
  }
}

export type RateLimitOptions = { rate: number; burst: number; trustedProxies: CidrRange[]; onLimited?: () => void };

/** Where the buckets live: a TokenBucketStore, or the Redis store that every instance shares. */
export type RateStore = Store<AppEnv>;

const secondsUntil = (time: Date | undefined) => (time ? Math.max(0, Math.ceil((time.getTime() - Date.now()) / 1000)) : 0);

/** The RateLimit headers, through c.header() (before the answer exists) or onto `answer` itself. */
function setRateLimitHeaders(c: Context<AppEnv>, policy: string, answer?: Headers): void {
  const info = c.get("rateLimit");
  const set = answer ? (name: string, value: string) => answer.set(name, value) : (name: string, value: string) => c.header(name, value);
  set("RateLimit-Limit", String(info.limit));
  set("RateLimit-Remaining", String(info.remaining));
  set("RateLimit-Reset", String(secondsUntil(info.resetTime)));
  set("RateLimit-Policy", policy);
}

/** The `next` handed to the library's middleware: the rest of the request runs after it returns. */
const countedOnly = async () => {};

export function rateLimit(opts: RateLimitOptions & { store?: RateStore }): MiddlewareHandler<AppEnv> {
  const store = opts.store ?? new TokenBucketStore(opts.rate, opts.burst);
  const proxies = trustedProxyList(opts.trustedProxies);
  const windowMs = Math.ceil((opts.burst / opts.rate) * 1000);
  const policy = `${opts.burst};w=${Math.ceil(windowMs / 1000)}`;
  const limiter = rateLimiter<AppEnv>({
    windowMs,
    limit: opts.burst,
    // The headers are ours: the library's draft-6 code leaves RateLimit-Reset out whenever it rounds
    // to 0 s, and never reaches a response a handler builds itself (downloads).
    standardHeaders: false,
    store,
    keyGenerator: (c) => {
      const ip = clientIp(c, proxies);
      const key = ip ? rateLimitKey(ip) : "unknown-peer";
      c.set("clientIp", key);
      return key;
    },
    handler: (c) => {
      opts.onLimited?.();
      setRateLimitHeaders(c, policy);
      c.header("Retry-After", String(Math.max(1, secondsUntil(c.get("rateLimit").resetTime))));
      return c.json({ error: "rate limit exceeded" }, 429);
    },
  });
  return async (c, next) => {
    // The library only counts here: with skipFailedRequests and skipSuccessfulRequests off it does
    // nothing after its `next`, so the route runs below, not two more async layers deep inside it.
    const refused = await limiter(c, countedOnly);
    if (refused) return refused;
    // Set before the route runs, so c.json() answers and app.onError's take them as they are built.
    setRateLimitHeaders(c, policy);
    await next();
    // An answer built without them (the WebSocket's): set on it, as c.header() now would make Hono
    // wrap the whole response again, once per header.
    if (!c.res.headers.has("RateLimit-Limit")) setRateLimitHeaders(c, policy, c.res.headers);
  };
}
