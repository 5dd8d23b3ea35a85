// API key strings (`fmsgk_<key_id>_<secret>`): making, parsing, and the salted hash compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const API_KEY_PREFIX = "fmsgk_";
const KEY_ID_LENGTH = 16;
const SECRET_BYTES = 32;
const SALT_BYTES = 16;
const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** 12+ letters and digits (the contract's rule; the table's check allows up to 64). */
export const KEY_ID_PATTERN = /^[A-Za-z0-9]{12,64}$/;
/** base64url of at least 32 bytes: 43 characters or more, no padding. */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43,}$/;

export type ParsedApiKey = { keyId: string; secret: string };
export type SecretHash = { salt: Uint8Array; hash: Uint8Array };

/** A new random key id: 16 characters of [A-Za-z0-9] (95 bits; ids are not secret, only unique). */
export function newKeyId(): string {
  let id = "";
  // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
  while (id.length < KEY_ID_LENGTH) {
    for (const byte of randomBytes(KEY_ID_LENGTH * 2)) {
      if (byte < 248 && id.length < KEY_ID_LENGTH) id += ALPHANUMERIC[byte % 62];
    }
  }
  return id;
}

/** A new secret: 32 random bytes, base64url. */
export function newSecret(): string {
  return randomBytes(SECRET_BYTES).toString("base64url");
}

export function formatApiKey(keyId: string, secret: string): string {
  return `${API_KEY_PREFIX}${keyId}_${secret}`;
}

/**
 * The key id and secret of `fmsgk_<key_id>_<secret>`, or null for anything else (a JWT, a typo).
 * The key id holds no `_`, so the first `_` after it ends the id; the secret may contain `_` itself.
 */
export function parseApiKey(text: string): ParsedApiKey | null {
  if (!text.startsWith(API_KEY_PREFIX)) return null;
  const rest = text.slice(API_KEY_PREFIX.length);
  const cut = rest.indexOf("_");
  if (cut < 0) return null;
  const keyId = rest.slice(0, cut);
  const secret = rest.slice(cut + 1);
  if (!KEY_ID_PATTERN.test(keyId) || !SECRET_PATTERN.test(secret)) return null;
  return { keyId, secret };
}

function digest(salt: Uint8Array, secret: string): Buffer {
  return createHash("sha256").update(salt).update(secret, "utf8").digest();
}

/** What the table stores for `secret`: a fresh salt and SHA-256(salt || secret). */
export function hashSecret(secret: string): SecretHash {
  const salt = randomBytes(SALT_BYTES);
  return { salt, hash: digest(salt, secret) };
}

/** Whether `secret` is the one stored as `stored`; the comparison takes the same time whatever differs. */
export function secretMatches(secret: string, stored: SecretHash): boolean {
  const given = digest(stored.salt, secret);
  return given.length === stored.hash.length && timingSafeEqual(given, stored.hash);
}

/**
 * The whole second from which tokens minted from a key's current secret count (rotated_at rounded
 * up). Minted tokens carry an iat at or after it, tokens of an older secret an iat before it; rotate
 * moves rotated_at on by at least a second, so two rotations never share one generation.
 */
export function keyGeneration(rotatedAt: Date): number {
  return Math.ceil(rotatedAt.getTime() / 1000);
}
