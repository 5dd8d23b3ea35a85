// Per-client-IP token bucket (sustained rate, burst), plugged into hono-rate-limiter as its store.
import { rateLimiter, type Store } from "hono-rate-limiter";
import type { MiddlewareHandler } from "hono";
import type { CidrRange } from "../lib/ip.ts";
import { rateLimitKey } from "../lib/ip.ts";
import { clientIp } from "./client-ip.ts";
import type { AppEnv } from "./app-env.ts";

type Bucket = { tokens: number; at: number };

/** Bound on remembered clients; the least recently seen is forgotten first. */
export const MAX_TRACKED_CLIENTS = 50_000;

/**
 * hono-rate-limiter counts "hits" against a limit; this store reports hits = burst - tokens left,
 * so `limit: burst` admits a burst of `burst` and then `rate` requests per second.
 */
export class TokenBucketStore implements Store<AppEnv> {
  readonly localKeys = true;
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxKeys = MAX_TRACKED_CLIENTS,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  increment(key: string) {
    const now = this.now();
    const old = this.buckets.get(key);
    let tokens = old ? Math.min(this.burst, old.tokens + ((now - old.at) / 1000) * this.rate) : this.burst;
    if (old) this.buckets.delete(key); // re-inserted below: Map order is least-recently-used first
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    this.buckets.set(key, { tokens, at: now });
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
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

export function rateLimit(opts: RateLimitOptions & { store?: TokenBucketStore }): MiddlewareHandler<AppEnv> {
  const store = opts.store ?? new TokenBucketStore(opts.rate, opts.burst);
  return rateLimiter<AppEnv>({
    windowMs: Math.ceil((opts.burst / opts.rate) * 1000),
    limit: opts.burst,
    standardHeaders: "draft-6",
    store,
    keyGenerator: (c) => {
      const ip = clientIp(c, opts.trustedProxies);
      const key = ip ? rateLimitKey(ip) : "unknown-peer";
      c.set("clientIp", key);
      return key;
    },
    handler: (c) => {
      opts.onLimited?.();
      return c.json({ error: "rate limit exceeded" }, 429);
    },
  });
}
