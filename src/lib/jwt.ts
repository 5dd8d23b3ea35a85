// HS256 JSON Web Tokens: signing (token command, tests) and strict verification (auth middleware).
import { createHmac, timingSafeEqual } from "node:crypto";

export const LEEWAY_SECONDS = 10;

export type JwtClaims = { sub?: unknown; exp?: unknown; nbf?: unknown; iat?: unknown; [k: string]: unknown };
export type VerifyResult = { ok: true; claims: JwtClaims } | { ok: false; reason: string };

const b64url = (buf: Buffer | Uint8Array) => Buffer.from(buf).toString("base64url");

function hmac(key: Uint8Array, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

export function signJwt(claims: JwtClaims, key: Uint8Array, header: Record<string, unknown> = { alg: "HS256", typ: "JWT" }): string {
  const head = b64url(Buffer.from(JSON.stringify(header)));
  const body = b64url(Buffer.from(JSON.stringify(claims)));
  return `${head}.${body}.${b64url(hmac(key, `${head}.${body}`))}`;
}

function decodeJsonPart(part: string): Record<string, unknown> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Verifies signature (HS256 only), then exp (required), nbf and iat with a symmetric leeway, and
 * that exp lies at most `maxTtlSeconds` after iat (after now, for a token without iat).
 */
export function verifyJwt(token: string, key: Uint8Array, nowSeconds: number, maxTtlSeconds = Number.POSITIVE_INFINITY): VerifyResult {
  const parts = token.split(".");
  if (parts.length !== 3) return { ok: false, reason: "token is malformed" };
  const [head = "", body = "", sig = ""] = parts;
  const header = decodeJsonPart(head);
  const claims = decodeJsonPart(body);
  if (!header || !claims || !/^[A-Za-z0-9_-]+$/.test(sig)) return { ok: false, reason: "token is malformed" };
  if (header.alg !== "HS256") return { ok: false, reason: "signing method is invalid" };
  // RFC 7515 4.1.11: a token naming extensions in `crit` must be refused by a verifier that does
  // not understand them, and this one understands none.
  if ((header as Record<string, unknown>).crit !== undefined) return { ok: false, reason: "token is malformed" };
  // Compared as text: base64url has more than one spelling of the same bytes (the last character's
  // unused low bits), and only the canonical one is this token; others are distinct strings that
  // would each take a place in the caches keyed by token.
  const expected = Buffer.from(b64url(hmac(key, `${head}.${body}`)));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: "signature is invalid" };
  }
  return checkTokenTimes(claims, nowSeconds, maxTtlSeconds);
}

/**
 * The time rules every accepted token follows, whoever signed it: exp required, exp/nbf/iat with a
 * symmetric leeway, and exp at most `maxTtlSeconds` after iat (after now, for a token without iat).
 */
export function checkTokenTimes(claims: JwtClaims, nowSeconds: number, maxTtlSeconds = Number.POSITIVE_INFINITY): VerifyResult {
  if (claims.exp === undefined) return { ok: false, reason: "token has no expiry" };
  if (!isTime(claims.exp)) return { ok: false, reason: "token is malformed" };
  if (nowSeconds > claims.exp + LEEWAY_SECONDS) return { ok: false, reason: "token is expired" };
  if (claims.nbf !== undefined) {
    if (!isTime(claims.nbf)) return { ok: false, reason: "token is malformed" };
    if (nowSeconds < claims.nbf - LEEWAY_SECONDS) return { ok: false, reason: "token is not valid yet" };
  }
  if (claims.iat !== undefined) {
    if (!isTime(claims.iat)) return { ok: false, reason: "token is malformed" };
    if (nowSeconds < claims.iat - LEEWAY_SECONDS) return { ok: false, reason: "token used before issued" };
  }
  const issued = isTime(claims.iat) ? claims.iat : nowSeconds;
  if (claims.exp - issued > maxTtlSeconds + LEEWAY_SECONDS) return { ok: false, reason: "token lifetime exceeds the maximum" };
  return { ok: true, claims };
}

/** Mints a token for `sub`, valid for ttlSeconds (iat a little in the past for skewed clocks). */
export function mintToken(sub: string, key: Uint8Array, ttlSeconds: number, nowSeconds = Date.now() / 1000): string {
  const now = Math.floor(nowSeconds);
  return signJwt({ sub, iat: now - 5, exp: now + ttlSeconds }, key);
}

/**
 * The `exp` of a token that has ALREADY passed verification (its signature is not checked here),
 * or null: an open WebSocket is closed when the token it was opened with runs out.
 */
export function verifiedTokenExpiry(token: string): number | null {
  const claims = decodeJsonPart(token.split(".")[1] ?? "");
  return claims && isTime(claims.exp) ? claims.exp : null;
}
