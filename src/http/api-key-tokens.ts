// Whether a token minted from an API key still counts: its key not revoked, expired or rotated since.
import type { ApiKeyState } from "../db/api-keys.ts";
import { KEY_ID_PATTERN, keyGeneration } from "../lib/api-key.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import { bearerValue } from "./auth.ts";
import { unauthorized } from "./errors.ts";

/** The contract's bound: a token stops working within 5 s of its key being rotated or revoked. */
export const KEY_STATE_MAX_AGE_MS = 5_000;
const MAX_KEYS = 10_000;
const MAX_TOKENS = 10_000;

/** `generation`: that of the secret the token was minted from (see mintedClaims). */
type Minted = { keyId: string; generation: number };
type Cached = { loadedAt: number; state: Promise<ApiKeyState | null> };

/**
 * The api_key_id and secret generation of an HS256 token (already verified by the caller), or null
 * for other tokens. The generation is the `api_key_gen` claim: read from the same row as the secret
 * that matched, so a token minted while a rotation was still uncommitted carries the old generation,
 * whatever the clocks say. Tokens minted before that claim existed fall back to `iat`.
 */
function mintedClaims(token: string): Minted | null {
  const [head = "", body = ""] = token.split(".");
  try {
    const header = JSON.parse(Buffer.from(head, "base64url").toString("utf8")) as { alg?: unknown };
    if (header.alg !== "HS256") return null;
    const claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as { api_key_id?: unknown; api_key_gen?: unknown; iat?: unknown };
    if (claims.api_key_id === undefined) return null;
    // A minted token always has them; one without a usable generation can never be shown to postdate a rotation.
    const keyId = typeof claims.api_key_id === "string" ? claims.api_key_id : "";
    const finite = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    const generation = claims.api_key_gen !== undefined ? finite(claims.api_key_gen) : finite(claims.iat);
    return { keyId, generation: generation ?? Number.NEGATIVE_INFINITY };
  } catch {
    return null;
  }
}

/**
 * Checks tokens minted at POST /fmsg/token against their key's state, which is read at most once per
 * `maxAgeMs` per key (concurrent reads of one key share one query): no database query per request.
 */
export class MintedTokenCheck {
  private readonly states = new BoundedMap<string, Cached>(MAX_KEYS);
  private readonly claims = new BoundedMap<string, Minted | null>(MAX_TOKENS);
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(
    private readonly load: (keyId: string) => Promise<ApiKeyState | null>,
    opts: { maxAgeMs?: number; now?: () => number } = {},
  ) {
    this.maxAgeMs = Math.min(opts.maxAgeMs ?? KEY_STATE_MAX_AGE_MS, KEY_STATE_MAX_AGE_MS);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Throws 401 `api key revoked` for a minted token whose key no longer stands behind it; other
   * tokens pass. `header` is an Authorization header whose bearer token was already verified.
   */
  async refuseStale(header: string | undefined): Promise<void> {
    const token = bearerValue(header);
    if (token === null) return;
    const minted = this.mintedFrom(token);
    if (minted !== null && !(await this.stands(minted, this.maxAgeMs))) throw unauthorized("api key revoked");
  }

  /**
   * For a verified token minted from an API key, the check an open WebSocket re-runs: true while
   * the key still stands behind the token. Null for every other token (nothing to re-check).
   * `maxAgeMs` bounds how old a cached key state the check accepts (at most the contract's bound).
   */
  standingCheck(token: string, maxAgeMs = this.maxAgeMs): (() => Promise<boolean>) | null {
    const minted = this.mintedFrom(token);
    if (minted === null) return null;
    const age = Math.min(maxAgeMs, this.maxAgeMs);
    return () => this.stands(minted, age);
  }

  private mintedFrom(token: string): Minted | null {
    let minted = this.claims.get(token);
    if (minted === undefined) {
      minted = mintedClaims(token);
      this.claims.set(token, minted);
    }
    return minted;
  }

  private async stands(minted: Minted, maxAgeMs: number): Promise<boolean> {
    const state = await this.state(minted.keyId, maxAgeMs);
    const now = this.now();
    return !(
      state === null ||
      state.revokedAt !== null ||
      (state.expiresAt !== null && state.expiresAt.getTime() <= now) ||
      keyGeneration(state.rotatedAt) > minted.generation
    );
  }

  private state(keyId: string, maxAgeMs: number): Promise<ApiKeyState | null> {
    // No key has such an id (a signed token can still carry anything, a NUL even, which PostgreSQL
    // refuses): it stands for no key, without a query.
    if (!KEY_ID_PATTERN.test(keyId)) return Promise.resolve(null);
    const now = this.now();
    const hit = this.states.get(keyId);
    if (hit && now - hit.loadedAt < maxAgeMs) return hit.state;
    const state = this.load(keyId);
    const entry = { loadedAt: now, state };
    this.states.set(keyId, entry);
    // A failed read is not remembered: the next request asks again (this one fails closed with 503).
    state.catch(() => {
      if (this.states.get(keyId) === entry) this.states.delete(keyId);
    });
    return state;
  }
}
