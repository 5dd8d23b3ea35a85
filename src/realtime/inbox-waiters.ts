// In-memory registry of long-poll waiters grouped in coarse address buckets; wake-ups are answered by one query per batch.
import type { NotifiedAnswer, NotifiedCandidate } from "../db/wake-confirm.ts";
import { addressBucket } from "../domain/address.ts";

/** Per waiting identity (as its waiters spell it), the newest visible inbox id above its cursor; SQL decides who is who. */
export type LatestIds = (pairs: { addr: string; sinceId: number }[]) => Promise<Map<string, number>>;

/** Of a batch of notified (message, address, waiting spelling) candidates, which are confirmed and which in doubt; SQL decides. */
export type ConfirmNotified = (candidates: NotifiedCandidate[]) => Promise<NotifiedAnswer>;

/**
 * What a wait ends with: the newest id found; null for nothing new in time (or shutdown); IN_DOUBT
 * when its time ran out while the database could not say (API §1: 503); LEFT when its request's
 * signal aborted (the client went away: nothing is sent).
 */
export const IN_DOUBT = "in doubt";
export const LEFT = "left";
export type WaitResult = number | null | typeof IN_DOUBT | typeof LEFT;

type Waiter = {
  address: string;
  bucket: string;
  sinceId: number;
  /**
   * The last check that covered it succeeded and no notification may have been lost since: "nothing
   * new" is known, not assumed. False until its catch-up check has answered.
   */
  known: boolean;
  settle: (latestId: WaitResult) => void;
};

/** The waits one request signal ends when it aborts (GET /fmsg/events waits on its signal again and again). */
type Watched = Set<Waiter>;

/** A notification not yet confirmed: message `msgId` for the address `named`, as the trigger spelt it. */
type Notified = { msgId: number; named: string; bucket: string };

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
   * together shares a bucket; a wake-up looks at the whole bucket and SQL decides each identity exactly.
   */
  private readonly byBucket = new Map<string, Set<Waiter>>();
  private readonly dirty = new Set<string>();
  private readonly retrying = new Set<string>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  /**
   * Notifications waiting for the next confirmation, in arrival order. A repeated one (rare) is only
   * looked at twice by the same query: cheaper than keying every notification of a wave.
   */
  private notified: Notified[] = [];
  /**
   * One abort listener per request signal, never removed: a settled wait only leaves the signal's
   * set. Adding and removing a listener per wait cost ~3 % of the CPU of answering a 10,000-waiter wave.
   */
  private readonly watched = new WeakMap<AbortSignal, Watched>();
  private readonly confirming = new Set<Promise<void>>();
  private confirmQueued = false;
  /** Counts doubtAll() calls: a check that began before one cannot vouch for what was lost after it. */
  private doubts = 0;
  private closed = false;
  private failureHook: () => void = () => {};

  /**
   * `latestIds` is the full per-address query: the catch-up of a new waiter, hints without a message,
   * and every re-check after notifications may have been lost. `confirm`, when given, answers the
   * notifications that name a message instead (without it they are hints like any other).
   */
  constructor(
    private readonly latestIds: LatestIds,
    private readonly log: (line: Record<string, unknown>) => void = () => {},
    private readonly confirm?: ConfirmNotified,
  ) {}

  /** True once closeAll() ran (shutdown): streams that wait in a loop end. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Whether anyone waits at all: the listener skips a notification's parsing when nobody does. */
  get anyone(): boolean {
    return this.byBucket.size > 0;
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
  wait(address: string, sinceId: number, timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    if (this.closed) return Promise.resolve(null);
    if (signal?.aborted) return Promise.resolve(LEFT);
    const bucket = addressBucket(address);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let watched: Watched | undefined;
      const waiter: Waiter = {
        address,
        bucket,
        sinceId,
        known: false,
        settle: (latestId) => {
          const set = this.byBucket.get(bucket);
          if (!set?.delete(waiter)) return; // already settled
          if (set.size === 0) this.byBucket.delete(bucket);
          clearTimeout(timer);
          watched?.delete(waiter);
          resolve(latestId);
        },
      };
      let set = this.byBucket.get(bucket);
      if (!set) this.byBucket.set(bucket, (set = new Set()));
      set.add(waiter);
      timer = setTimeout(() => waiter.settle(waiter.known ? null : IN_DOUBT), timeoutMs);
      if (signal) watched = this.watch(signal, waiter);
      this.markDirty(bucket);
      this.schedule();
    });
  }

  /**
   * Mail for these addresses may have been committed. With `msgId` (a notification naming that
   * message) the waiters are answered from the notifications once one query confirms them; without
   * it, the full query re-checks the addresses.
   */
  wake(addresses: Iterable<string>, msgId?: number): void {
    // Nobody waits: nothing to mark (most notifications on a busy host with no open long poll).
    if (this.byBucket.size === 0) return;
    if (msgId === undefined || !this.confirm) {
      for (const a of addresses) this.markDirty(addressBucket(a));
      this.schedule();
      return;
    }
    for (const named of addresses) {
      const bucket = addressBucket(named);
      if (this.byBucket.has(bucket)) this.notified.push({ msgId, named, bucket });
    }
    this.scheduleConfirm();
  }

  /** Adds `waiter` to the waits `signal` ends, listening on the signal the first time it is seen. */
  private watch(signal: AbortSignal, waiter: Waiter): Watched {
    let watched = this.watched.get(signal);
    if (!watched) {
      const waits: Watched = new Set();
      signal.addEventListener("abort", () => {
        for (const w of [...waits]) w.settle(LEFT);
      }, { once: true });
      this.watched.set(signal, (watched = waits));
    }
    watched.add(waiter);
    return watched;
  }

  /**
   * Notifications may be getting lost (the listener is unsure): until a check of theirs answers
   * again, no waiter knows it has nothing new.
   */
  doubtAll(): void {
    this.doubts++;
    for (const set of this.byBucket.values()) for (const w of set) w.known = false;
  }

  /** Notifications may have been lost (listener reconnect or outage): everyone re-checks. */
  wakeAll(): void {
    for (const bucket of this.byBucket.keys()) this.dirty.add(bucket);
    this.schedule();
  }

  /** Shutdown: every open wait answers "nothing new" (204) now. */
  closeAll(): void {
    this.closed = true;
    this.notified = [];
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const set of [...this.byBucket.values()]) for (const w of [...set]) w.settle(null);
  }

  /** Resolves when no check or confirmation is queued or running (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      if (this.running) await this.running;
      else if (this.confirming.size > 0) await Promise.all(this.confirming);
      else if (this.confirmQueued) await Promise.resolve();
      else return;
    }
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
    const covered: Waiter[] = [];
    for (const bucket of buckets) {
      for (const w of this.byBucket.get(bucket) ?? []) {
        since.set(w.address, Math.min(since.get(w.address) ?? w.sinceId, w.sinceId));
        covered.push(w);
      }
    }
    if (since.size === 0) return;
    const doubts = this.doubts;
    let latest: Map<string, number>;
    try {
      latest = await this.latestIds([...since].map(([addr, sinceId]) => ({ addr, sinceId })));
    } catch (err) {
      // The waiters' timeouts still run meanwhile; one that runs out before a check answers is in doubt.
      this.checkFailed(err, buckets);
      return;
    }
    if (doubts === this.doubts) for (const w of covered) w.known = true;
    for (const bucket of buckets) {
      for (const w of [...(this.byBucket.get(bucket) ?? [])]) {
        const id = latest.get(w.address);
        if (id !== undefined && id > w.sinceId) w.settle(id);
      }
    }
  }

  private scheduleConfirm(): void {
    if (this.confirmQueued || this.notified.length === 0 || this.confirming.size >= PARALLEL_CHECKS) return;
    this.confirmQueued = true;
    // After the current tick: one read of the LISTEN connection carries hundreds of NOTIFYs (one per
    // recipient of a commit), and they become one query.
    queueMicrotask(() => {
      this.confirmQueued = false;
      if (this.notified.length === 0 || this.confirming.size >= PARALLEL_CHECKS) return;
      const batch = this.notified;
      this.notified = [];
      // Batches run side by side; notifications arriving while all slots are busy wait for the next one.
      const done: Promise<void> = this.confirmBatch(batch)
        .catch((err) => this.log({ level: "error", msg: "inbox confirmation failed", error: String(err) }))
        .finally(() => {
          this.confirming.delete(done);
          this.scheduleConfirm();
        });
      this.confirming.add(done);
    });
  }

  /**
   * Answers the waiters a batch of notifications concerns: each with the highest confirmed message id
   * above its own since_id. A notification the query does not confirm (a draft, someone else's mail)
   * leaves its waiters waiting; one it is in doubt about, or a failed query, falls back to the full query.
   */
  private async confirmBatch(batch: Notified[]): Promise<void> {
    const confirm = this.confirm;
    if (!confirm) return;
    const { candidates, waitersOf } = candidatesOf(batch, this.byBucket);
    if (candidates.length === 0) return;
    let answer: NotifiedAnswer;
    try {
      answer = await confirm(candidates);
    } catch (err) {
      // The full query takes over these waiters.
      this.checkFailed(err, [...new Set(batch.map((n) => n.bucket))]);
      return;
    }
    answerConfirmed(candidates, waitersOf, answer.confirmed);
    if (answer.doubtful.length === 0) return;
    for (const i of answer.doubtful) this.markDirty(addressBucket(candidates[i]!.addr));
    this.schedule();
  }

  /**
   * A failed check or confirmation never throws (both run from notification callbacks): logged,
   * these buckets re-checked later, and the listener told that notifications may be getting lost.
   */
  private checkFailed(err: unknown, buckets: string[]): void {
    this.log({ level: "error", msg: "inbox check failed", error: String(err) });
    for (const b of buckets) for (const w of this.byBucket.get(b) ?? []) w.known = false;
    this.retryLater(buckets);
    this.failureHook();
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

/** The waiters a candidate answers: the one waiter of its bucket (the usual case), or all of one spelling. */
type Answers = Waiter | Waiter[];

/**
 * One candidate per notification and distinct waiting spelling in its bucket: SQL decides which
 * spellings are the named identity, never JS. Plain loops outside the async function: this runs for
 * every notification of a wave.
 */
function candidatesOf(batch: readonly Notified[], byBucket: ReadonlyMap<string, Set<Waiter>>) {
  const candidates: NotifiedCandidate[] = [];
  const waitersOf: Answers[] = [];
  for (const n of batch) {
    const set = byBucket.get(n.bucket);
    if (!set) continue;
    if (set.size === 1) {
      const w = set.values().next().value!;
      candidates.push({ msgId: n.msgId, named: n.named, addr: w.address });
      waitersOf.push(w);
      continue;
    }
    const bySpelling = new Map<string, Waiter[]>();
    for (const w of set) {
      const list = bySpelling.get(w.address);
      if (list) list.push(w);
      else bySpelling.set(w.address, [w]);
    }
    for (const [addr, list] of bySpelling) {
      candidates.push({ msgId: n.msgId, named: n.named, addr });
      waitersOf.push(list);
    }
  }
  return { candidates, waitersOf };
}

/**
 * Answers each waiter the confirmed candidates concern with the highest of their message ids, if
 * above its own since_id. A waiter that settled meanwhile (timeout, abort, another check) ignores it.
 */
function answerConfirmed(candidates: readonly NotifiedCandidate[], waitersOf: readonly Answers[], confirmed: readonly number[]): void {
  const best = new Map<Waiter, number>();
  const note = (w: Waiter, msgId: number) => {
    if (msgId > (best.get(w) ?? 0)) best.set(w, msgId);
  };
  for (const i of confirmed) {
    const msgId = candidates[i]!.msgId;
    const answers = waitersOf[i]!;
    if (Array.isArray(answers)) for (const w of answers) note(w, msgId);
    else note(answers, msgId);
  }
  for (const [w, id] of best) if (id > w.sinceId) w.settle(id);
}
