// The rate limiter's token buckets in Redis (FMSG_API_RATE_STORE), shared by every instance; this instance's own while Redis is away.
import { RedisClient } from "bun";
import type { ClientRateLimitInfo, Store } from "hono-rate-limiter";
import { withoutPassword } from "../config.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import type { AppEnv } from "./app-env.ts";
import { MAX_TRACKED_CLIENTS, TokenBucketStore } from "./rate-limit.ts";
import type { Logger } from "./request-log.ts";

/** A Redis call slower than this counts as failed: a hung Redis must not hang the requests it limits. */
export const REDIS_CALL_TIMEOUT_MS = 250;
/**
 * How often the calls in flight are checked. One older than the timeout less this at a check has
 * failed, so no request waits on Redis longer than the timeout (a call may be cut from 200 ms).
 */
const WATCHDOG_MS = 50;
/** Connecting is off the request path (start-up and the background retry), so it may take longer, e.g. for TLS. */
const REDIS_CONNECT_TIMEOUT_MS = 2_000;
/** How often an unreachable Redis is tried again while this instance counts on its own. */
export const REDIS_RETRY_MS = 1_000;
export const REDIS_KEY_PREFIX = "fmsg-api:rate:";
/**
 * Redis counts as back when the bucket script runs, not merely when it answers PING: a Redis that
 * answers but refuses writes (out of memory) would otherwise flap between shared and local. No
 * client key looks like this one, and giving a token back leaves its bucket full (gone in 1 ms).
 */
const PROBE_KEY = "probe";

/**
 * TokenBucketStore's arithmetic, run atomically inside Redis: one hash {tokens, at} per client, read
 * against Redis's own clock (TIME) so instances whose clocks differ still agree. ARGV: rate, burst,
 * how many tokens the caller wants (a lease: 0 to only give back), and how many it gives back
 * first. Grants min(want, whole tokens there), at least 1 or refused. Returns {totalHits, ms until
 * the next token or a full bucket, tokens granted} as integers (Redis truncates Lua numbers), the
 * first two for the bucket after the grant. The key expires once the bucket would be full again,
 * since a missing key is a full bucket. Needs Redis 5 or later (TIME before a write).
 */
const BUCKET_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if old[1] and old[2] then
  tokens = math.min(burst, tonumber(old[1]) + math.max(0, now - tonumber(old[2])) / 1000 * rate)
end
tokens = math.min(burst, tokens + tonumber(ARGV[4]))
local granted = 0
local hits
local wait
if want > 0 and tokens < 1 then
  hits = burst + 1
  wait = (1 - tokens) / rate * 1000
else
  if want > 0 then
    granted = math.min(want, math.floor(tokens))
    tokens = tokens - granted
  end
  hits = math.ceil(burst - tokens)
  wait = (burst - tokens) / rate * 1000
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate * 1000)))
return {hits, math.ceil(wait), granted}
`;
const BUCKET_SCRIPT_SHA = new Bun.CryptoHasher("sha1").update(BUCKET_SCRIPT).digest("hex");

/**
 * Tokens taken from Redis in one call: a 64th of the burst, at least 1. Each instance keeps the
 * unused rest of a client's lease and spends it on that client's next requests without asking
 * Redis, so at most N × L tokens of a burst sit unused in N instances' leases (under-admission),
 * never more admitted than Redis handed out. With the default limit (burst 20), or any burst
 * under 128, L is 1: one Redis call per request, no lease.
 */
export const leaseSize = (burst: number) => Math.max(1, Math.floor(burst / 64));

/**
 * A client's tokens held by this instance. `hits` is the totalHits last reported from it, counted
 * from the figures at grant time as if the leased tokens were still in the bucket (so Remaining
 * counts down by one per request here, off by at most the other instances' leases), and `resetAt`
 * (local ms) moves a token's worth later per request spent.
 */
type Lease = { left: number; hits: number; resetAt: number; expiresAt: number };

class RedisTimeout extends Error {}

/** Rejects once `ms` have passed; the call itself is not cancelled (its connection is dropped instead). */
function within<T>(call: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RedisTimeout(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([call, late]).finally(() => clearTimeout(timer));
}

const reasonOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export type RedisRateStoreOptions = {
  url: string;
  rate: number;
  burst: number;
  log: Logger;
  prefix?: string;
};

/**
 * Counts in Redis while it answers, and in this instance's own TokenBucketStore while it does not:
 * a request is never refused or failed because of Redis, and each instance still limits on its own
 * (so behind N instances a client may get up to N times the limit until Redis is back). One log line
 * when it falls back, one when Redis is back; the retry runs in the background, so no request waits
 * on a Redis known to be away.
 */
export class RedisRateStore implements Store<AppEnv> {
  readonly localKeys = false;
  readonly prefix: string;
  private readonly client: RedisClient;
  private readonly local: TokenBucketStore;
  /** Tokens asked for per Redis call (leaseSize), and the ms one token takes to come back. */
  private readonly want: number;
  private readonly msPerToken: number;
  private readonly leases = new BoundedMap<string, Lease>(MAX_TRACKED_CLIENTS);
  /** The lease call in flight per client: the client's other requests wait for it instead of leasing too. */
  private readonly leasing = new Map<string, Promise<Lease | ClientRateLimitInfo>>();
  /** Start (ms) of each Redis call in flight by call number; a Map keeps them oldest first. */
  private readonly inFlight = new Map<number, number>();
  private calls = 0;
  private readonly watchdog: ReturnType<typeof setInterval>;
  private shared = false;
  private retry: ReturnType<typeof setInterval> | null = null;
  private probing = false;
  private closed = false;

  constructor(private readonly opts: RedisRateStoreOptions) {
    this.prefix = opts.prefix ?? REDIS_KEY_PREFIX;
    this.local = new TokenBucketStore(opts.rate, opts.burst);
    this.want = leaseSize(opts.burst);
    this.msPerToken = 1000 / opts.rate;
    // No reconnecting or queueing inside the client: while Redis is away the local buckets count,
    // and the retry below decides when Redis is back.
    this.client = new RedisClient(opts.url, {
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: REDIS_CONNECT_TIMEOUT_MS,
    });
    // A dropped connection (Redis restarting) sends requests to the local buckets at once, rather
    // than after one failed call each; while not shared, start() and the retry say why themselves.
    this.client.onclose = (err) => {
      if (this.shared) this.fallBack(`connection closed: ${reasonOf(err)}`);
    };
    this.watchdog = setInterval(() => this.watch(), WATCHDOG_MS);
    this.watchdog.unref?.();
  }

  /** Whether the counters are shared right now (the fmsg_api_rate_store_shared gauge). */
  get isShared(): boolean {
    return this.shared;
  }

  /** Connects once before the server listens, so the first requests are already shared; never throws. */
  async start(): Promise<void> {
    const failure = await this.failure();
    if (failure === null) this.shared = true;
    else this.fallBack(failure);
  }

  increment(key: string): ClientRateLimitInfo | Promise<ClientRateLimitInfo> {
    if (!this.shared) return this.local.increment(key);
    if (this.want === 1) return this.takeOne(key);
    const lease = this.leases.get(key);
    const now = Date.now();
    if (lease !== undefined && lease.left > 0 && now < lease.expiresAt) return this.spend(lease, now);
    return this.refill(key);
  }

  async decrement(key: string): Promise<void> {
    if (!this.shared) return this.local.decrement(key);
    const lease = this.leases.get(key);
    if (lease !== undefined && Date.now() < lease.expiresAt) {
      lease.left += 1;
      lease.hits -= 1;
      lease.resetAt -= this.msPerToken;
      return;
    }
    await this.bucket(key, 0, 1).catch((err: unknown) => this.fallBack(reasonOf(err)));
  }

  async resetKey(key: string): Promise<void> {
    this.local.resetKey(key);
    this.leases.delete(key);
    if (this.shared) await this.timed(this.client.del(this.prefix + key)).catch((err: unknown) => this.fallBack(reasonOf(err)));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.retry) clearInterval(this.retry);
    this.retry = null;
    this.client.close();
  }

  /** One token per Redis call (a lease of 1): no state kept here. */
  private async takeOne(key: string): Promise<ClientRateLimitInfo> {
    try {
      const [totalHits, waitMs] = await this.bucket(key, 1, 0);
      return { totalHits, resetTime: new Date(Date.now() + Math.max(waitMs, 1)) };
    } catch (err) {
      this.fallBack(reasonOf(err));
      return this.local.increment(key);
    }
  }

  private spend(lease: Lease, now: number): ClientRateLimitInfo {
    lease.left -= 1;
    lease.hits += 1;
    lease.resetAt += this.msPerToken;
    return { totalHits: lease.hits, resetTime: new Date(Math.max(lease.resetAt, now + 1)) };
  }

  /** A new lease for `key`, one call at a time; the requests waiting on it spend from it, or share its refusal. */
  private async refill(key: string): Promise<ClientRateLimitInfo> {
    let call = this.leasing.get(key);
    if (call === undefined) {
      call = this.lease(key);
      this.leasing.set(key, call);
    }
    let got: Lease | ClientRateLimitInfo;
    try {
      got = await call;
    } catch (err) {
      this.fallBack(reasonOf(err));
      return this.local.increment(key);
    } finally {
      if (this.leasing.get(key) === call) this.leasing.delete(key);
    }
    if (!("left" in got)) return got;
    // Spent from even if it expired in flight, so each round of calls serves at least one waiter.
    return got.left > 0 ? this.spend(got, Date.now()) : this.increment(key);
  }

  /**
   * Asks Redis for `want` tokens: the lease, or the refusal. A lease may be spent from for L/rate
   * (the time the bucket takes to refill one lease), counted from before the call: every token is
   * admitted within that of Redis handing it out, so in any window the instances together admit
   * about one lease more at most than one bucket would (the bucket refills while a lease is held).
   * The rest of an expired lease goes back in the same call, unless the bucket would have refilled
   * past it by now (then it would only overflow it), so a client's idle leases do not drain its bucket.
   */
  private async lease(key: string): Promise<Lease | ClientRateLimitInfo> {
    const start = Date.now();
    const old = this.leases.get(key);
    const back = old !== undefined && start < old.resetAt ? old.left : 0;
    this.leases.delete(key);
    const [hits, waitMs, granted] = await this.bucket(key, this.want, back);
    if (granted === 0) return { totalHits: hits, resetTime: new Date(Date.now() + Math.max(waitMs, 1)) };
    const lease = { left: granted, hits: hits - granted, resetAt: start + waitMs - granted * this.msPerToken, expiresAt: start + this.want * this.msPerToken };
    this.leases.set(key, lease);
    return lease;
  }

  private async bucket(key: string, want: number, back: number): Promise<[hits: number, waitMs: number, granted: number]> {
    const args = [this.prefix + key, this.opts.rate, this.opts.burst, want, back] as const;
    const call = async () => {
      try {
        return await this.client.evalsha(BUCKET_SCRIPT_SHA, 1, ...args);
      } catch (err) {
        // Redis forgets loaded scripts when it restarts; EVAL runs the script and loads it again.
        if (!/NOSCRIPT/.test(reasonOf(err))) throw err;
        return await this.client.eval(BUCKET_SCRIPT, 1, ...args);
      }
    };
    const reply: unknown = await this.timed(call());
    if (!Array.isArray(reply) || typeof reply[0] !== "number" || typeof reply[1] !== "number" || typeof reply[2] !== "number") {
      throw new Error(`unexpected reply from Redis: ${JSON.stringify(reply)}`);
    }
    return [reply[0], reply[1], reply[2]];
  }

  /** A Redis call the watchdog sees: cheaper than a timer per call on the request path. */
  private async timed<T>(call: Promise<T>): Promise<T> {
    const id = this.calls++;
    this.inFlight.set(id, Date.now());
    try {
      return await call;
    } finally {
      this.inFlight.delete(id);
    }
  }

  /**
   * A call still unanswered at the last check before REDIS_CALL_TIMEOUT_MS fails them all: dropping
   * the connection rejects every call waiting on it. Also a hung probe's, which fallBack leaves open.
   */
  private watch(): void {
    const oldest = this.inFlight.values().next().value;
    const waited = oldest === undefined ? 0 : Date.now() - oldest;
    if (waited <= REDIS_CALL_TIMEOUT_MS - WATCHDOG_MS) return;
    this.fallBack(`no answer within ${waited} ms`);
    if (this.client.connected) this.client.close();
  }

  /** Into local counting, logged once per outage; the background retry starts with it. */
  private fallBack(reason: string): void {
    if (this.closed) return;
    this.shared = false;
    // Leases are tokens of the shared bucket, which may be gone (an empty, restarted Redis) when it is back.
    this.leases.clear();
    if (this.retry !== null) return;
    this.retry = setInterval(() => void this.probe(), REDIS_RETRY_MS);
    this.retry.unref?.();
    this.opts.log({ level: "warn", msg: "rate limit store unreachable: counting in this instance only", store: withoutPassword(this.opts.url), reason });
    // A connection that let a call hang is not trusted again: drop it (and whatever waits on it).
    // Its onclose comes back here and finds the retry already running.
    if (this.client.connected) this.client.close();
  }

  private async probe(): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    try {
      if ((await this.failure()) !== null) {
        if (this.client.connected) this.client.close(); // a half-answering connection: start afresh next time
        return;
      }
      if (this.closed) return;
      if (this.retry) clearInterval(this.retry);
      this.retry = null;
      this.leases.clear(); // granted by a call that was still answered after the fall-back
      this.shared = true;
      this.opts.log({ level: "info", msg: "rate limit store reachable again: counting shared", store: withoutPassword(this.opts.url) });
    } finally {
      this.probing = false;
    }
  }

  /** Null when Redis runs the bucket script now, else why not. */
  private async failure(): Promise<string | null> {
    try {
      if (!this.client.connected) await within(this.client.connect(), REDIS_CONNECT_TIMEOUT_MS);
      await this.bucket(PROBE_KEY, 0, 1);
      return null;
    } catch (err) {
      return reasonOf(err);
    }
  }
}
