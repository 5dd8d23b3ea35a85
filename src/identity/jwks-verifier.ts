// Identity-provider tokens (docs/API.md "Authentication"): EdDSA (Ed25519) JWTs verified against the provider's JWKS, keys cached by kid.
import { compactVerify, createLocalJWKSet, errors, type CryptoKey, type JSONWebKeySet, type JWSHeaderParameters } from "jose";
import { cappedText } from "../lib/capped-body.ts";
import { checkTokenTimes, type JwtClaims, type VerifyResult } from "../lib/jwt.ts";

export type IdentityProvider = {
  /** https URL of the provider's JSON Web Key Set (http only to this machine). */
  jwksUrl: string;
  /** The exact `iss` its tokens carry. */
  issuer: string;
  /** When set, the token's `aud` must be or contain it. */
  audience: string | null;
};

export type JwksVerifier = {
  /** Signature, issuer, audience and the time rules every token follows; never throws. */
  verify(token: string, nowSeconds: number): Promise<VerifyResult>;
};

export const JWKS_FETCH_TIMEOUT_MS = 3_000;
/** Fewest milliseconds between two JWKS requests once keys are held: an unknown kid refetches at most this often. */
export const JWKS_REFETCH_COOLDOWN_MS = 60_000;
/** While no key set has ever arrived, a failed fetch may be retried this soon (the provider may just be starting). */
export const JWKS_FIRST_FETCH_RETRY_MS = 5_000;
/** Held keys are refreshed after this long, so a key the provider withdrew stops verifying. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
const MAX_JWKS_BYTES = 1024 * 1024;

/** Keys could not be fetched and none is held: fail closed. */
class KeysUnavailable extends Error {}

type LocalKeys = ReturnType<typeof createLocalJWKSet>;

/**
 * The provider's keys, fetched lazily and cached by kid (jose's local key set does the selection
 * by kid and alg). Written here rather than with jose's createRemoteJWKSet because that one's
 * cooldown starts only after a successful fetch — so while the provider is down every request with
 * an unknown kid, or every request at all before the first success, would fetch again — and it
 * drops held keys when a refresh fails. Here every network attempt counts toward the cooldown, and
 * held keys keep verifying while the provider cannot be reached (fail closed only with no key).
 */
class ProviderKeys {
  private keys: LocalKeys | null = null;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<boolean> | null = null;

  constructor(
    private readonly url: string,
    private readonly log: (line: Record<string, unknown>) => void,
  ) {}

  async keyFor(header: JWSHeaderParameters, nowMs: number): Promise<CryptoKey> {
    if (!this.keys || nowMs - this.fetchedAt > JWKS_MAX_AGE_MS) await this.refresh(nowMs);
    const keys = this.keys;
    if (!keys) throw new KeysUnavailable();
    try {
      return await keys(header);
    } catch (err) {
      // A kid we do not hold may be a key the provider has just added.
      if (!(err instanceof errors.JWKSNoMatchingKey) || !(await this.refresh(nowMs)) || !this.keys) throw err;
      return await this.keys(header);
    }
  }

  /** Fetches the key set unless the last attempt was too recent; true when a new set arrived. */
  private refresh(nowMs: number): Promise<boolean> {
    if (this.pending) return this.pending; // one request in flight, shared
    const wait = this.keys ? JWKS_REFETCH_COOLDOWN_MS : JWKS_FIRST_FETCH_RETRY_MS;
    if (nowMs - this.attemptedAt < wait) return Promise.resolve(false);
    this.attemptedAt = nowMs;
    const pending = this.fetchKeys().then(
      (keys) => {
        this.keys = keys;
        this.fetchedAt = nowMs;
        return true;
      },
      (err: unknown) => {
        this.log({ level: "warn", msg: "identity provider keys unavailable", url: this.url, error: err instanceof Error ? err.message : String(err) });
        return false;
      },
    );
    this.pending = pending.finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async fetchKeys(): Promise<LocalKeys> {
    const res = await fetch(this.url, {
      signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS),
      redirect: "manual",
      headers: { accept: "application/jwk-set+json, application/json" },
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`JWKS answered HTTP ${res.status}`);
    }
    const text = await cappedText(res, MAX_JWKS_BYTES);
    const body: unknown = JSON.parse(text);
    const listed = body !== null && typeof body === "object" && "keys" in body && Array.isArray(body.keys) ? (body.keys as unknown[]) : null;
    if (!listed) throw new Error("JWKS has no keys array");
    // Only Ed25519 keys can verify these tokens. Others (RSA for other clients, say, or an entry this
    // version cannot read) are left out here: jose refuses a whole set over one malformed member.
    const keys = listed.filter((k): k is JSONWebKeySet["keys"][number] => {
      const jwk = k as Record<string, unknown> | null;
      return jwk !== null && typeof jwk === "object" && jwk.kty === "OKP" && jwk.crv === "Ed25519";
    });
    return createLocalJWKSet({ keys });
  }
}

/** Why a token was refused, as the short 401 reason (the same words as for HS256 where they overlap). */
function refusal(err: unknown): string {
  if (err instanceof KeysUnavailable) return "identity provider keys unavailable";
  if (err instanceof errors.JWKSNoMatchingKey) return "token signing key is unknown";
  if (err instanceof errors.JWKSMultipleMatchingKeys) return "token signing key is ambiguous";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "signature is invalid";
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return "signing method is invalid";
  return "token is malformed";
}

function hasAudience(aud: unknown, audience: string): boolean {
  return aud === audience || (Array.isArray(aud) && aud.includes(audience));
}

export function jwksVerifier(
  provider: IdentityProvider,
  maxTtlSeconds: number,
  log: (line: Record<string, unknown>) => void = () => {},
): JwksVerifier {
  const keys = new ProviderKeys(provider.jwksUrl, log);
  return {
    async verify(token, nowSeconds) {
      let claims: JwtClaims;
      try {
        const { payload } = await compactVerify(token, (header) => keys.keyFor(header, nowSeconds * 1000), { algorithms: ["EdDSA"] });
        const parsed: unknown = JSON.parse(new TextDecoder().decode(payload));
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { ok: false, reason: "token is malformed" };
        claims = parsed as JwtClaims;
      } catch (err) {
        return { ok: false, reason: refusal(err) };
      }
      if (claims.iss !== provider.issuer) return { ok: false, reason: "token issuer is invalid" };
      if (provider.audience !== null && !hasAudience(claims.aud, provider.audience)) return { ok: false, reason: "token audience is invalid" };
      return checkTokenTimes(claims, nowSeconds, maxTtlSeconds);
    },
  };
}
