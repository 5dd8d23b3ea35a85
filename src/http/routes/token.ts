// POST /fmsg/token: an API key (`Authorization: Bearer fmsgk_…`) exchanged for a short-lived bearer token.
import { BlockList } from "node:net";
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { TokenGrant } from "../../contract/responses.ts";
import { findApiKey, touchApiKey } from "../../db/api-keys.ts";
import type { Sql } from "../../db/pool.ts";
import type { IdentityService } from "../../identity/identity-service.ts";
import { keyGeneration, parseApiKey, secretMatches, type SecretHash } from "../../lib/api-key.ts";
import { isTrusted, parseCidr, trustedProxyList, type CidrRange, type ParsedIp } from "../../lib/ip.ts";
import { signJwt } from "../../lib/jwt.ts";
import type { AppEnv } from "../app-env.ts";
import { bearerValue, checkIdentity } from "../auth.ts";
import { clientIp } from "../client-ip.ts";
import { ApiError, unauthorized } from "../errors.ts";
import type { Logger } from "../request-log.ts";
import { answers, json } from "../openapi.ts";
import { refuseInvalid } from "../validation.ts";

/** The security scheme of this one route: the key travels as a bearer token, but is no JWT. */
export const API_KEY = "apiKey";

export type TokenDeps = {
  sql: Sql;
  identity: IdentityService;
  jwtKey: Uint8Array;
  /** Seconds a minted token lives at most (FMSG_API_TOKEN_TTL). */
  tokenTtl: number;
  /** This host's name, the minted tokens' `iss` (FMSG_DOMAIN). */
  domain: string | null;
  trustedProxies: readonly CidrRange[];
  log: Logger;
  now?: () => number;
};

const exchange = createRoute({
  operationId: "exchangeApiKey",
  method: "post",
  path: "/token",
  tags: ["auth"],
  security: [{ [API_KEY]: [] }],
  summary: "Exchange an API key for a short-lived bearer token",
  description:
    "Send the key as `Authorization: Bearer fmsgk_<key_id>_<secret>` and no body. The token lives FMSG_API_TOKEN_TTL (default 12h), never past the key's expiry, and stops working within 5 s of its key being rotated or revoked (`api key revoked`).",
  responses: answers(
    { 200: json(TokenGrant, "A bearer token for the key's address.") },
    {
      400: "The key's address is unknown to the identity service (`User <addr> not found`).",
      401: "No Authorization header (`auth header is empty`); otherwise anything but a valid key — unknown, wrong secret, revoked, expired, or not a key at all — answers `invalid api key` (carries `WWW-Authenticate: Bearer`).",
      403: "The key is limited to CIDRs the client IP is outside of (`api key not allowed from this address`), or its address is not accepting new messages (`User <addr> not authorised to send new messages`).",
      503: "The database or the identity service is unavailable; nothing was done. Retry after Retry-After.",
    },
    { authenticated: false },
  ),
});

/** Hashed when the key id is unknown, so that answer takes as long as a wrong secret. */
const NO_SUCH_KEY: SecretHash = { salt: new Uint8Array(16), hash: new Uint8Array(32) };

function fromAllowedRange(cidrs: readonly string[], ip: ParsedIp | null): boolean {
  if (ip === null) return false;
  const list = new BlockList();
  for (const text of cidrs) {
    const range = parseCidr(text);
    if (range) list.addSubnet(range.address, range.prefix, range.family);
  }
  return isTrusted(ip, list);
}

export function tokenRoutes(deps: TokenDeps) {
  const now = deps.now ?? Date.now;
  const proxies = trustedProxyList(deps.trustedProxies);
  const app = new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid });
  app.openAPIRegistry.registerComponent("securitySchemes", API_KEY, {
    type: "http",
    scheme: "bearer",
    bearerFormat: "fmsgk_<key_id>_<secret>",
    description: "An API key the operator issued with `api-key create`; only POST /fmsg/token takes it.",
  });
  return app.openapi(exchange, async (c) => {
    const header = c.req.header("authorization");
    if (header === undefined || header.trim() === "") throw unauthorized("auth header is empty");
    // One answer for everything that is not a usable key: no oracle for ids, secrets or key states.
    const invalid = () => unauthorized("invalid api key");
    const presented = parseApiKey(bearerValue(header) ?? "");
    if (!presented) throw invalid();
    const key = await findApiKey(deps.sql, presented.keyId);
    const matches = secretMatches(presented.secret, key ?? NO_SUCH_KEY);
    const nowMs = now();
    if (!key || !matches || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt.getTime() <= nowMs)) throw invalid();
    if (key.cidrs.length > 0 && !fromAllowedRange(key.cidrs, clientIp(c, proxies))) {
      throw new ApiError(403, "api key not allowed from this address");
    }
    await checkIdentity(deps.identity, key.address);

    const nowSeconds = Math.floor(nowMs / 1000);
    // api_key_gen names the generation of the secret that matched (read in the same row), so the
    // check in front of the other routes (src/http/api-key-tokens.ts) tells this token from one of a
    // newer secret even when a rotation committed after this read began before this clock second.
    // iat stays no earlier than it, as tokens without the claim are judged by iat.
    const generation = keyGeneration(key.rotatedAt);
    const iat = Math.max(nowSeconds, generation);
    const keyEnd = key.expiresAt === null ? Number.POSITIVE_INFINITY : Math.floor(key.expiresAt.getTime() / 1000);
    const exp = Math.min(nowSeconds + deps.tokenTtl, keyEnd);
    if (exp <= nowSeconds) throw invalid(); // the key ends within this second
    const token = signJwt({ sub: key.address, iat, exp, iss: deps.domain ?? "fmsg-webapi", api_key_id: key.keyId, api_key_gen: generation }, deps.jwtKey);
    // Bookkeeping only: a failure here never costs the client its token.
    touchApiKey(deps.sql, key.keyId).catch((err: unknown) => {
      deps.log({ level: "warn", msg: "could not record an API key's use", keyId: key.keyId, error: String(err) });
    });
    return c.json({ access_token: token, token_type: "Bearer" as const, expires_in: exp - nowSeconds, expires_at: new Date(exp * 1000).toISOString().replace(".000Z", "Z") }, 200);
  });
}
