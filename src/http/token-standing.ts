// How long the token behind a long-lived answer (a WebSocket, an event stream) keeps standing.
import type { Context } from "hono";
import { verifiedTokenExpiry } from "../lib/jwt.ts";
import { KEY_SWEEP_MS } from "../realtime/inbox-sockets.ts";
import type { MintedTokenCheck } from "./api-key-tokens.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerCredentials, bearerValue } from "./auth.ts";

export type TokenStanding = {
  /** When the token runs out (ms since the epoch); 0 when no expiry can be read (end at once). */
  expiresAt: number;
  /**
   * For a token minted from an API key: whether the key still stands behind it (not revoked,
   * rotated or expired), from a key state at most KEY_SWEEP_MS old. Null for other tokens.
   */
  keyCheck: (() => Promise<boolean>) | null;
};

/** The standing of the token that authenticated this request (the auth middleware has accepted it). */
export function tokenStanding(c: Context<AppEnv>, mintedTokens?: MintedTokenCheck): TokenStanding {
  const token = bearerValue(bearerCredentials(c)) ?? "";
  return {
    expiresAt: (verifiedTokenExpiry(token) ?? 0) * 1000,
    keyCheck: mintedTokens?.standingCheck(token, KEY_SWEEP_MS) ?? null,
  };
}
