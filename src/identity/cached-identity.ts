// Caches positive identity answers for a while and lets concurrent look-ups of one address share a request.
import { BoundedMap } from "../lib/bounded-map.ts";
import type { IdentityAnswer, IdentityService } from "./identity-service.ts";

export type IdentityCacheStats = { hits: number; misses: number };

export type CachedIdentityService = IdentityService & { stats: IdentityCacheStats; clear(): void };

const MAX_ENTRIES = 100_000;

export function cachedIdentityService(inner: IdentityService, ttlSeconds: number, now: () => number = Date.now): CachedIdentityService {
  // Keyed by the address exactly as the token spells it: folding here in JavaScript could merge two
  // addresses PostgreSQL keeps apart (docs/design/address-case.md); another spelling is one more look-up.
  const cache = new BoundedMap<string, number>(MAX_ENTRIES); // address → expiry (ms)
  const inflight = new Map<string, Promise<IdentityAnswer>>();
  const stats: IdentityCacheStats = { hits: 0, misses: 0 };

  return {
    stats,
    clear: () => cache.clear(),
    lookup(address: string): Promise<IdentityAnswer> {
      const key = address;
      const expiry = cache.get(key);
      if (expiry !== undefined) {
        if (expiry > now()) {
          stats.hits++;
          return Promise.resolve("accepting");
        }
        cache.delete(key);
      }
      const pending = inflight.get(key);
      if (pending) {
        stats.hits++;
        return pending;
      }
      stats.misses++;
      const request = inner
        .lookup(address)
        .then((answer) => {
          // Only "accepting" is cached: a refusal or an outage is asked again next time.
          if (answer === "accepting" && ttlSeconds > 0) {
            cache.set(key, now() + ttlSeconds * 1000);
          }
          return answer;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, request);
      return request;
    },
  };
}
