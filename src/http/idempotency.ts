// Idempotency-Key on the four writes: the request's fingerprint, the stored answer, and replaying it.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { StoredAnswer } from "../db/idempotency.ts";
import type { Sql } from "../db/pool.ts";
import { AlreadyAnswered, checkEarlierAnswer, KeyReused, onceOnly, type KeyedRequest, type Once } from "../messages/idempotency.ts";
import type { AppEnv } from "./app-env.ts";
import { ApiError } from "./errors.ts";

export const REPLAYED_HEADER = "Idempotent-Replayed";
export const KEY_REUSED = "Idempotency-Key already used for a different request";

const sha256 = (data: string | Uint8Array) => new Bun.CryptoHasher("sha256").update(data).digest("hex");

/** What makes two requests the same: method, route, path parameters and a hash of the body. */
export function fingerprintOf(method: string, route: string, params: unknown, bodyDigest: string): string {
  return sha256(JSON.stringify([method, route, params, bodyDigest]));
}

/** A hash of a validated JSON body (so spacing and key order as sent do not matter). */
export const jsonDigest = (body: unknown) => sha256(JSON.stringify(body));

/** Hashes a stream while it passes through (an upload is hashed as it is written to disk). */
export class StreamDigest {
  private readonly hasher = new Bun.CryptoHasher("sha256");
  private done: string | null = null;

  async *pass(stream: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    for await (const chunk of stream) {
      this.hasher.update(chunk);
      yield chunk;
    }
  }

  /** Only once the stream has been read to its end. */
  digest(): string {
    this.done ??= this.hasher.digest("hex");
    return this.done;
  }
}

export type Keyed = { key: string | undefined; fingerprint: () => string };

/**
 * Runs a write and answers it; with a key, the write gets a `Once` that claims the key and records
 * the answer in its transaction, and an earlier answer of the key is replayed instead.
 * `early`: look for an earlier answer before any work (where the fingerprint is known up front).
 */
export async function answerOnce<T>(
  c: Context<AppEnv>,
  sql: Sql,
  keyed: Keyed,
  answer: (result: T) => { status: ContentfulStatusCode; body: unknown },
  write: (once: Once<T> | undefined) => Promise<T>,
  opts: { early: boolean } = { early: true },
): Promise<Response> {
  const stored = (result: T): StoredAnswer => {
    const a = answer(result);
    return { status: a.status, body: JSON.stringify(a.body) };
  };
  if (keyed.key === undefined) return send(c, stored(await write(undefined)), false);
  const request: KeyedRequest = { identity: c.get("identity"), key: keyed.key, fingerprint: keyed.fingerprint };
  try {
    if (opts.early) await checkEarlierAnswer(sql, request);
    return send(c, stored(await write(onceOnly(request, stored))), false);
  } catch (err) {
    if (err instanceof AlreadyAnswered) return send(c, err.answer, true);
    if (err instanceof KeyReused) throw new ApiError(422, KEY_REUSED);
    throw err;
  }
}

function send(c: Context<AppEnv>, answer: StoredAnswer, replayed: boolean): Response {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (replayed) headers[REPLAYED_HEADER] = "true";
  return c.body(answer.body, answer.status as ContentfulStatusCode, headers);
}
