// Bearer-JWT authentication and the identity-service check; leaves the identity in the context variable "identity".
import type { Context, MiddlewareHandler } from "hono";
import { isValidAddress } from "../domain/address.ts";
import type { IdentityService } from "../identity/identity-service.ts";
import type { JwksVerifier } from "../identity/jwks-verifier.ts";
import type { MintedTokenCheck } from "./api-key-tokens.ts";
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
  /** Identity-provider (EdDSA) tokens; absent or null when FMSG_JWT_JWKS_URL is not set. */
  jwks?: JwksVerifier | null;
  /** Refuses tokens minted from an API key that has since been rotated, revoked or expired. */
  mintedTokens?: MintedTokenCheck;
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

/** The token of an `Authorization: Bearer <token>` header, or null when the header is not that shape. */
export function bearerValue(header: string | undefined): string | null {
  return /^Bearer +([^\s]+)\s*$/i.exec(header ?? "")?.[1] ?? null;
}

/** The bearer token of a header that must carry one (401 with the reason when it does not). */
function requireBearer(header: string | undefined): string {
  if (header === undefined || header.trim() === "") throw unauthorized("auth header is empty");
  const token = bearerValue(header);
  if (token === null) throw unauthorized("auth header is invalid");
  return token;
}

/** A verified token's `sub`, which must be an address; remembered for the token's lifetime. */
function acceptVerified(token: string, claims: Record<string, unknown>, verified: VerifiedTokens | null): string {
  const sub = claims.sub;
  if (!isValidAddress(sub)) throw unauthorized("token subject is not a valid address");
  verified?.add(token, sub, claims.exp as number);
  return sub;
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
  const token = requireBearer(header);
  const known = verified?.get(token, nowSeconds);
  if (known) return known;
  let result = verifyJwt(token, key, nowSeconds, maxTtlSeconds);
  if (!result.ok && result.reason === "signature is invalid" && previousKey) {
    result = verifyJwt(token, previousKey, nowSeconds, maxTtlSeconds);
  }
  if (!result.ok) throw unauthorized(result.reason);
  return acceptVerified(token, result.claims, verified);
}

/** The `alg` a bearer token's header names, or null when there is none to read (the HS256 path then says why). */
export function tokenAlgorithm(header: string | undefined): string | null {
  const head = /^Bearer +([A-Za-z0-9_-]+)\./i.exec(header ?? "")?.[1];
  if (!head) return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(head, "base64url").toString("utf8"));
    const alg = parsed !== null && typeof parsed === "object" ? (parsed as Record<string, unknown>).alg : undefined;
    return typeof alg === "string" ? alg : null;
  } catch {
    return null;
  }
}

/**
 * Any bearer token, routed by its header's `alg`: EdDSA to the identity provider's JWKS when one is
 * configured; everything else to the HS256 path, which refuses every other alg. Returns the `sub`.
 */
export async function authenticateBearer(header: string | undefined, opts: AuthOptions, nowSeconds: number, verified: VerifiedTokens | null = null): Promise<string> {
  if (!opts.jwks || tokenAlgorithm(header) !== "EdDSA") {
    return authenticateToken(header, opts.jwtKey, nowSeconds, verified, opts.maxTokenTtl, opts.jwtPreviousKey ?? null);
  }
  const token = requireBearer(header);
  const known = verified?.get(token, nowSeconds);
  if (known) return known;
  const result = await opts.jwks.verify(token, nowSeconds);
  if (!result.ok) throw unauthorized(result.reason);
  return acceptVerified(token, result.claims, verified);
}

/** Maps the identity service's answer for the caller to 400, 403 or 503 (docs/API.md "Errors"). */
export async function checkIdentity(identity: IdentityService, address: string): Promise<void> {
  const answer = await identity.lookup(address);
  if (answer === "accepting") return;
  if (answer === "unknown") throw new ApiError(400, `User ${address} not found`);
  if (answer === "not_accepting") throw new ApiError(403, `User ${address} not authorised to send new messages`);
  throw new ApiError(503, "identity service unavailable");
}

/** The one route that also takes its token from the query: browsers cannot set headers on a WebSocket. */
const QUERY_TOKEN_PATH = "/fmsg/ws";

/** The Authorization header, or on the WebSocket route without one, `access_token` as if it were one. */
export function bearerCredentials(c: Context): string | undefined {
  const header = c.req.header("authorization");
  if (header !== undefined || c.req.path !== QUERY_TOKEN_PATH) return header;
  const token = c.req.query("access_token");
  return token === undefined ? undefined : `Bearer ${token}`;
}

export function requireIdentity(opts: AuthOptions): MiddlewareHandler<AppEnv> {
  const now = opts.now ?? (() => Date.now() / 1000);
  const verified = new VerifiedTokens();
  return async (c, next) => {
    const authorization = bearerCredentials(c);
    const address = await authenticateBearer(authorization, opts, now(), verified);
    await opts.mintedTokens?.refuseStale(authorization);
    await checkIdentity(opts.identity, address);
    c.set("identity", address);
    await next();
  };
}
