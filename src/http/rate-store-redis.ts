// The rate limiter's token buckets in Redis (FMSG_API_RATE_STORE), shared by every instance; this instance's own while Redis is away.
import { RedisClient } from "bun";
import type { ClientRateLimitInfo, Store } from "hono-rate-limiter";
import { withoutPassword } from "../config.ts";
import type { AppEnv } from "./app-env.ts";
import { TokenBucketStore } from "./rate-limit.ts";
import type { Logger } from "./request-log.ts";

/** A Redis call slower than this counts as failed: a hung Redis must not hang the requests it limits. */
export const REDIS_CALL_TIMEOUT_MS = 250;
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
 * and 1 to take a token or -1 to give one back. Returns {totalHits, ms until the next token or a full
 * bucket} as integers (Redis truncates Lua numbers). The key expires once the bucket would be full
 * again, since a missing key is a full bucket. Needs Redis 5 or later (TIME before a write).
 */
const BUCKET_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if old[1] and old[2] then
  tokens = math.min(burst, tonumber(old[1]) + math.max(0, now - tonumber(old[2])) / 1000 * rate)
end
local hits
local wait
if tonumber(ARGV[3]) < 0 then
  tokens = math.min(burst, tokens + 1)
  hits = math.ceil(burst - tokens)
  wait = (burst - tokens) / rate * 1000
elseif tokens >= 1 then
  tokens = tokens - 1
  hits = math.ceil(burst - tokens)
  wait = (burst - tokens) / rate * 1000
else
  hits = burst + 1
  wait = (1 - tokens) / rate * 1000
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate * 1000)))
return {hits, math.ceil(wait)}
`;
const BUCKET_SCRIPT_SHA = new Bun.CryptoHasher("sha1").update(BUCKET_SCRIPT).digest("hex");

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
  private shared = false;
  private retry: ReturnType<typeof setInterval> | null = null;
  private probing = false;
  private closed = false;

  constructor(private readonly opts: RedisRateStoreOptions) {
    this.prefix = opts.prefix ?? REDIS_KEY_PREFIX;
    this.local = new TokenBucketStore(opts.rate, opts.burst);
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

  async increment(key: string): Promise<ClientRateLimitInfo> {
    if (!this.shared) return this.local.increment(key);
    try {
      const [totalHits, waitMs] = await this.bucket(key, 1);
      return { totalHits, resetTime: new Date(Date.now() + Math.max(waitMs, 1)) };
    } catch (err) {
      this.fallBack(reasonOf(err));
      return this.local.increment(key);
    }
  }

  async decrement(key: string): Promise<void> {
    if (!this.shared) return this.local.decrement(key);
    await this.bucket(key, -1).catch((err: unknown) => this.fallBack(reasonOf(err)));
  }

  async resetKey(key: string): Promise<void> {
    this.local.resetKey(key);
    if (this.shared) await within(this.client.del(this.prefix + key), REDIS_CALL_TIMEOUT_MS).catch((err: unknown) => this.fallBack(reasonOf(err)));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearInterval(this.retry);
    this.retry = null;
    this.client.close();
  }

  private async bucket(key: string, cost: 1 | -1): Promise<[number, number]> {
    const args = [this.prefix + key, this.opts.rate, this.opts.burst, cost] as const;
    const call = async () => {
      try {
        return await this.client.evalsha(BUCKET_SCRIPT_SHA, 1, ...args);
      } catch (err) {
        // Redis forgets loaded scripts when it restarts; EVAL runs the script and loads it again.
        if (!/NOSCRIPT/.test(reasonOf(err))) throw err;
        return await this.client.eval(BUCKET_SCRIPT, 1, ...args);
      }
    };
    const reply: unknown = await within(call(), REDIS_CALL_TIMEOUT_MS);
    if (!Array.isArray(reply) || typeof reply[0] !== "number" || typeof reply[1] !== "number") {
      throw new Error(`unexpected reply from Redis: ${JSON.stringify(reply)}`);
    }
    return [reply[0], reply[1]];
  }

  /** Into local counting, logged once per outage; the background retry starts with it. */
  private fallBack(reason: string): void {
    if (this.closed) return;
    this.shared = false;
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
      await this.bucket(PROBE_KEY, -1);
      return null;
    } catch (err) {
      return reasonOf(err);
    }
  }
}
