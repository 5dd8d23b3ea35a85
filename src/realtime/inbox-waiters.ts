// In-memory registry of long-poll waiters grouped in coarse address buckets; wake-ups are hints answered by one query.
import { addressBucket } from "../domain/address.ts";

/** Per waiting identity (as its waiters spell it), the newest visible inbox id above its cursor; SQL decides who is who. */
export type LatestIds = (pairs: { addr: string; sinceId: number }[]) => Promise<Map<string, number>>;

type Waiter = {
  address: string;
  bucket: string;
  sinceId: number;
  settle: (latestId: number | null) => void;
};

/** How many buckets one catch-up query checks at most. */
const QUERY_CHUNK = 500;
/** Checks in flight at once (each holds one pool connection while it runs). */
const PARALLEL_CHECKS = 4;
/**
 * Delay before re-checking after a failed query. Only a backstop: a failure also tells the listener
 * (onCheckFailed), which re-checks every waiter the moment the database answers again.
 */
const RETRY_MS = 500;

export class InboxWaiters {
  /**
   * Waiters by addressBucket(address): coarse on purpose, so every spelling PostgreSQL might fold
   * together shares a bucket; a wake-up re-checks the whole bucket and SQL answers each identity exactly.
   */
  private readonly byBucket = new Map<string, Set<Waiter>>();
  private readonly dirty = new Set<string>();
  private readonly retrying = new Set<string>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private failureHook: () => void = () => {};

  constructor(
    private readonly latestIds: LatestIds,
    private readonly log: (line: Record<string, unknown>) => void = () => {},
  ) {}

  /** True once closeAll() ran (shutdown): streams that wait in a loop end. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Number of open waits (exposed for tests and /metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.byBucket.values()) n += set.size;
    return n;
  }

  /** Called after a failed check: notifications may be getting lost too (the listener re-checks until it is sure). */
  onCheckFailed(hook: () => void): void {
    this.failureHook = hook;
  }

  /**
   * Resolves with the newest visible inbox id above `sinceId`, or null at timeout, abort or
   * shutdown. The waiter is registered before its first check, so mail committed at any moment
   * after the call is seen either by that check or by the wake-up it triggers.
   */
  wait(address: string, sinceId: number, timeoutMs: number, signal?: AbortSignal): Promise<number | null> {
    if (this.closed || signal?.aborted) return Promise.resolve(null);
    const bucket = addressBucket(address);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => waiter.settle(null);
      const waiter: Waiter = {
        address,
        bucket,
        sinceId,
        settle: (latestId) => {
          const set = this.byBucket.get(bucket);
          if (!set?.delete(waiter)) return; // already settled
          if (set.size === 0) this.byBucket.delete(bucket);
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(latestId);
        },
      };
      let set = this.byBucket.get(bucket);
      if (!set) this.byBucket.set(bucket, (set = new Set()));
      set.add(waiter);
      timer = setTimeout(() => waiter.settle(null), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.markDirty(bucket);
      this.schedule();
    });
  }

  /** A hint that mail for these addresses may have been committed. */
  wake(addresses: Iterable<string>): void {
    for (const a of addresses) this.markDirty(addressBucket(a));
    this.schedule();
  }

  /** Notifications may have been lost (listener reconnect or outage): everyone re-checks. */
  wakeAll(): void {
    for (const bucket of this.byBucket.keys()) this.dirty.add(bucket);
    this.schedule();
  }

  /** Shutdown: every open wait answers "nothing new" (204) now. */
  closeAll(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const set of [...this.byBucket.values()]) for (const w of [...set]) w.settle(null);
  }

  /** Resolves when no check is queued or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private markDirty(bucket: string): void {
    if (this.byBucket.has(bucket)) this.dirty.add(bucket);
  }

  private schedule(): void {
    if (this.running || this.dirty.size === 0) return;
    // Wake-ups arriving while a check runs are collected and answered by the next one.
    this.running = (async () => {
      try {
        while (this.dirty.size > 0) {
          const buckets = [...this.dirty];
          this.dirty.clear();
          const chunks: string[][] = [];
          for (let i = 0; i < buckets.length; i += QUERY_CHUNK) chunks.push(buckets.slice(i, i + QUERY_CHUNK));
          // A burst (fmsgd delivering to thousands) is answered by a few queries side by side.
          for (let i = 0; i < chunks.length; i += PARALLEL_CHECKS) {
            await Promise.all(chunks.slice(i, i + PARALLEL_CHECKS).map((chunk) => this.check(chunk)));
          }
        }
      } finally {
        this.running = null;
      }
    })();
  }

  private async check(buckets: string[]): Promise<void> {
    // One row per distinct spelling: SQL decides which spellings are one identity, so JS never merges them.
    const since = new Map<string, number>();
    for (const bucket of buckets) {
      for (const w of this.byBucket.get(bucket) ?? []) since.set(w.address, Math.min(since.get(w.address) ?? w.sinceId, w.sinceId));
    }
    if (since.size === 0) return;
    let latest: Map<string, number>;
    try {
      latest = await this.latestIds([...since].map(([addr, sinceId]) => ({ addr, sinceId })));
    } catch (err) {
      // Never throw: this runs from notification callbacks. The waiters' timeouts still run.
      this.log({ level: "error", msg: "inbox check failed", error: String(err) });
      this.retryLater(buckets);
      this.failureHook();
      return;
    }
    for (const bucket of buckets) {
      for (const w of [...(this.byBucket.get(bucket) ?? [])]) {
        const id = latest.get(w.address);
        if (id !== undefined && id > w.sinceId) w.settle(id);
      }
    }
  }

  /** One timer for all failed buckets, however many checks failed meanwhile. */
  private retryLater(buckets: string[]): void {
    for (const b of buckets) this.retrying.add(b);
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const again = [...this.retrying];
      this.retrying.clear();
      for (const b of again) this.markDirty(b);
      this.schedule();
    }, RETRY_MS);
    this.retryTimer.unref?.();
  }
}
