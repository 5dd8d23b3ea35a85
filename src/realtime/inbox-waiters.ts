// In-memory registry of long-poll waiters keyed by lower-cased address; wake-ups are hints answered by one query.
export type LatestIds = (pairs: { addr: string; sinceId: number }[]) => Promise<Map<string, number>>;

type Waiter = {
  key: string;
  sinceId: number;
  settle: (latestId: number | null) => void;
};

/** How many addresses one catch-up query checks at most. */
const QUERY_CHUNK = 500;
/** Checks in flight at once (each holds one pool connection while it runs). */
const PARALLEL_CHECKS = 4;
/** Delay before re-checking after a failed query. */
const RETRY_MS = 1000;

export class InboxWaiters {
  private readonly byKey = new Map<string, Set<Waiter>>();
  private readonly dirty = new Set<string>();
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly latestIds: LatestIds,
    private readonly log: (line: Record<string, unknown>) => void = () => {},
  ) {}

  /** Number of open waits (exposed for tests and /metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.byKey.values()) n += set.size;
    return n;
  }

  /**
   * Resolves with the newest visible inbox id above `sinceId`, or null at timeout, abort or
   * shutdown. The waiter is registered before its first check, so mail committed at any moment
   * after the call is seen either by that check or by the wake-up it triggers.
   */
  wait(address: string, sinceId: number, timeoutMs: number, signal?: AbortSignal): Promise<number | null> {
    if (this.closed || signal?.aborted) return Promise.resolve(null);
    const key = address.toLowerCase();
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => waiter.settle(null);
      const waiter: Waiter = {
        key,
        sinceId,
        settle: (latestId) => {
          const set = this.byKey.get(key);
          if (!set?.delete(waiter)) return; // already settled
          if (set.size === 0) this.byKey.delete(key);
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(latestId);
        },
      };
      let set = this.byKey.get(key);
      if (!set) this.byKey.set(key, (set = new Set()));
      set.add(waiter);
      timer = setTimeout(() => waiter.settle(null), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.wake([key]);
    });
  }

  /** A hint that mail for these addresses may have been committed. */
  wake(addresses: Iterable<string>): void {
    for (const a of addresses) {
      const key = a.toLowerCase();
      if (this.byKey.has(key)) this.dirty.add(key);
    }
    this.schedule();
  }

  /** After a listener (re)connect: notifications may have been lost, so everyone re-checks. */
  wakeAll(): void {
    for (const key of this.byKey.keys()) this.dirty.add(key);
    this.schedule();
  }

  /** Shutdown: every open wait answers "nothing new" (204) now. */
  closeAll(): void {
    this.closed = true;
    for (const set of [...this.byKey.values()]) for (const w of [...set]) w.settle(null);
  }

  /** Resolves when no check is queued or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private schedule(): void {
    if (this.running || this.dirty.size === 0) return;
    // Wake-ups arriving while a check runs are collected and answered by the next one.
    this.running = (async () => {
      try {
        while (this.dirty.size > 0) {
          const keys = [...this.dirty];
          this.dirty.clear();
          const chunks: string[][] = [];
          for (let i = 0; i < keys.length; i += QUERY_CHUNK) chunks.push(keys.slice(i, i + QUERY_CHUNK));
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

  private async check(keys: string[]): Promise<void> {
    const pairs: { addr: string; sinceId: number }[] = [];
    for (const key of keys) {
      const set = this.byKey.get(key);
      if (!set) continue;
      let since = Number.MAX_SAFE_INTEGER;
      for (const w of set) since = Math.min(since, w.sinceId);
      pairs.push({ addr: key, sinceId: since });
    }
    if (pairs.length === 0) return;
    let latest: Map<string, number>;
    try {
      latest = await this.latestIds(pairs);
    } catch (err) {
      // The database is unreachable: check these keys again shortly (their waiters' timeouts still
      // run). Never throw: this runs from notification callbacks.
      this.log({ level: "error", msg: "inbox check failed", error: String(err) });
      const retry = setTimeout(() => this.wake(keys), RETRY_MS);
      retry.unref?.();
      return;
    }
    for (const [key, id] of latest) {
      const set = this.byKey.get(key);
      if (!set) continue;
      for (const w of [...set]) if (id > w.sinceId) w.settle(id);
    }
  }
}
