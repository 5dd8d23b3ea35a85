// Once-only writes (Idempotency-Key): a write claims its key and records its answer inside its own transaction.
import { deleteExpiredAnswers, findAnswer, lockKey, saveAnswer, type PriorAnswer, type StoredAnswer } from "../db/idempotency.ts";
import type { Sql, Tx } from "../db/pool.ts";

/** How long a key's answer is replayed. */
export const IDEMPOTENCY_HORIZON_SECONDS = 24 * 60 * 60;
/** Rows deleted per statement by the background prune, so it never holds many row locks at once. */
const PRUNE_BATCH = 1000;
/** Batches per prune run; the next run continues where this one stopped. */
const PRUNE_MAX_BATCHES = 100;

/** The key's earlier request got this answer: give it again, change nothing. */
export class AlreadyAnswered extends Error {
  constructor(readonly answer: StoredAnswer) {
    super("already answered");
  }
}

/** The key was used by this identity for another request within the horizon. */
export class KeyReused extends Error {
  constructor() {
    super("idempotency key reused with a different request");
  }
}

/** A keyed request as plain data: whose, which key, and what it asked (a hash, possibly known only once the body is read). */
export type KeyedRequest = { identity: string; key: string; fingerprint: () => string };

/**
 * Threaded through a write's transaction: `claim` first (waits for a concurrent request with the key,
 * then throws AlreadyAnswered or KeyReused if the key was used), `record` after the effect, so the
 * answer commits or rolls back with it.
 */
export type Once<T> = {
  claim(tx: Tx): Promise<void>;
  record(tx: Tx, result: T): Promise<void>;
};

function settle(prior: PriorAnswer | null, fingerprint: string): void {
  if (prior === null) return;
  if (prior.fingerprint !== fingerprint) throw new KeyReused();
  throw new AlreadyAnswered({ status: prior.status, body: prior.body });
}

export function onceOnly<T>(request: KeyedRequest, answer: (result: T) => StoredAnswer, horizonSeconds = IDEMPOTENCY_HORIZON_SECONDS): Once<T> {
  return {
    async claim(tx) {
      await lockKey(tx, request.identity, request.key);
      settle(await findAnswer(tx, request.identity, request.key, horizonSeconds), request.fingerprint());
    },
    async record(tx, result) {
      await saveAnswer(tx, request.identity, request.key, request.fingerprint(), answer(result));
    },
  };
}

/**
 * The fast path before any work (no lock): a retry of a finished write is answered at once. Throws
 * like `claim`; returns when the key is unused or its holder has not committed yet (then `claim`
 * decides, under the lock).
 */
export async function checkEarlierAnswer(sql: Sql, request: KeyedRequest, horizonSeconds = IDEMPOTENCY_HORIZON_SECONDS): Promise<void> {
  settle(await findAnswer(sql, request.identity, request.key, horizonSeconds), request.fingerprint());
}

/** The key's unexpired earlier answer, if any (attach: then the upload is only hashed, never stored). */
export async function earlierAnswer(sql: Sql, identity: string, key: string): Promise<PriorAnswer | null> {
  return findAnswer(sql, identity, key, IDEMPOTENCY_HORIZON_SECONDS);
}

/** An earlier answer against this request: AlreadyAnswered when it is the same request, else KeyReused. */
export function replayOrRefuse(prior: PriorAnswer, fingerprint: string): never {
  settle(prior, fingerprint);
  throw new Error("unreachable: settle throws for every earlier answer");
}

/** Deletes expired answers in bounded batches; returns how many. */
export async function pruneExpiredAnswers(sql: Sql, horizonSeconds = IDEMPOTENCY_HORIZON_SECONDS): Promise<number> {
  let total = 0;
  for (let i = 0; i < PRUNE_MAX_BATCHES; i++) {
    const n = await deleteExpiredAnswers(sql, horizonSeconds, PRUNE_BATCH);
    total += n;
    if (n < PRUNE_BATCH) break;
  }
  return total;
}
