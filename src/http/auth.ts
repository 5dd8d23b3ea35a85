// Bearer-JWT authentication and the identity-service check; leaves the identity in c.var.identity.
import type { MiddlewareHandler } from "hono";
import { isValidAddress } from "../domain/address.ts";
import type { IdentityService } from "../identity/identity-service.ts";
import { verifyJwt } from "../lib/jwt.ts";
import { ApiError, unauthorized } from "./errors.ts";
import type { AppEnv } from "./app-env.ts";

export type AuthOptions = { jwtKey: Uint8Array; identity: IdentityService; now?: () => number };

/** Parses the Authorization header and verifies the token; returns the `sub` address. */
export function authenticateToken(header: string | undefined, key: Uint8Array, nowSeconds: number): string {
  if (header === undefined || header.trim() === "") throw unauthorized("auth header is empty");
  const m = /^Bearer +([^\s]+)\s*$/i.exec(header);
  if (!m) throw unauthorized("auth header is invalid");
  const result = verifyJwt(m[1]!, key, nowSeconds);
  if (!result.ok) throw unauthorized(result.reason);
  const sub = result.claims.sub;
  if (!isValidAddress(sub)) throw unauthorized("token subject is not a valid address");
  return sub;
}

/** Maps the identity service's answer for the caller to the statuses of API.md §3.4. */
export async function checkIdentity(identity: IdentityService, address: string): Promise<void> {
  const answer = await identity.lookup(address);
  if (answer === "accepting") return;
  if (answer === "unknown") throw new ApiError(400, `User ${address} not found`);
  if (answer === "not_accepting") throw new ApiError(403, `User ${address} not authorised to send new messages`);
  throw new ApiError(503, "identity service unavailable");
}

export function requireIdentity(opts: AuthOptions): MiddlewareHandler<AppEnv> {
  const now = opts.now ?? (() => Date.now() / 1000);
  return async (c, next) => {
    const address = authenticateToken(c.req.header("authorization"), opts.jwtKey, now());
    await checkIdentity(opts.identity, address);
    c.set("identity", address);
    await next();
  };
}
