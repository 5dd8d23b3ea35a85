// Bearer-JWT authentication and the identity-service check; leaves the identity in c.var.identity.
import type { MiddlewareHandler } from "hono";
import { isValidAddress } from "../domain/address.ts";
import type { IdentityService } from "../identity/identity-service.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import { LEEWAY_SECONDS, verifyJwt } from "../lib/jwt.ts";
import { ApiError, unauthorized } from "./errors.ts";
import type { AppEnv } from "./app-env.ts";

export type AuthOptions = {
  jwtKey: Uint8Array;
  /** Verification only: tokens signed before a secret rotation stay valid while this is set. */
  jwtPreviousKey?: Uint8Array | null;
  maxTokenTtl: number;
  identity: IdentityService;
  now?: () => number;
};

/**
 * Tokens that passed verification, with their subject and expiry. A token valid now stays valid
 * until `exp` (its nbf and iat only grow older), so a client re-using its token skips the HMAC and
 * JSON work. Bounded; the least recently used entry goes first.
 */
export class VerifiedTokens {
  private readonly entries: BoundedMap<string, { sub: string; exp: number }>;
  constructor(max = 10_000) {
    this.entries = new BoundedMap(max);
  }

  get(token: string, nowSeconds: number): string | null {
    const hit = this.entries.get(token);
    if (!hit) return null;
    if (nowSeconds > hit.exp + LEEWAY_SECONDS) {
      this.entries.delete(token);
      return null;
    }
    return hit.sub;
  }

  add(token: string, sub: string, exp: number): void {
    this.entries.set(token, { sub, exp });
  }
}

/** Parses the Authorization header and verifies the token; returns the `sub` address. */
export function authenticateToken(
  header: string | undefined,
  key: Uint8Array,
  nowSeconds: number,
  verified: VerifiedTokens | null = null,
  maxTtlSeconds = Number.POSITIVE_INFINITY,
  previousKey: Uint8Array | null = null,
): string {
  if (header === undefined || header.trim() === "") throw unauthorized("auth header is empty");
  const m = /^Bearer +([^\s]+)\s*$/i.exec(header);
  if (!m) throw unauthorized("auth header is invalid");
  const token = m[1]!;
  const known = verified?.get(token, nowSeconds);
  if (known) return known;
  let result = verifyJwt(token, key, nowSeconds, maxTtlSeconds);
  if (!result.ok && result.reason === "signature is invalid" && previousKey) {
    result = verifyJwt(token, previousKey, nowSeconds, maxTtlSeconds);
  }
  if (!result.ok) throw unauthorized(result.reason);
  const sub = result.claims.sub;
  if (!isValidAddress(sub)) throw unauthorized("token subject is not a valid address");
  verified?.add(token, sub, result.claims.exp as number);
  return sub;
}

/** Maps the identity service's answer for the caller to 400, 403 or 503 (docs/API.md "Errors"). */
export async function checkIdentity(identity: IdentityService, address: string): Promise<void> {
  const answer = await identity.lookup(address);
  if (answer === "accepting") return;
  if (answer === "unknown") throw new ApiError(400, `User ${address} not found`);
  if (answer === "not_accepting") throw new ApiError(403, `User ${address} not authorised to send new messages`);
  throw new ApiError(503, "identity service unavailable");
}

export function requireIdentity(opts: AuthOptions): MiddlewareHandler<AppEnv> {
  const now = opts.now ?? (() => Date.now() / 1000);
  const verified = new VerifiedTokens();
  return async (c, next) => {
    const address = authenticateToken(c.req.header("authorization"), opts.jwtKey, now(), verified, opts.maxTokenTtl, opts.jwtPreviousKey ?? null);
    await checkIdentity(opts.identity, address);
    c.set("identity", address);
    await next();
  };
}
