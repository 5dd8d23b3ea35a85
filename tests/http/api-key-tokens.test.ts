// MintedTokenCheck: a token minted from an API key is refused once its key is revoked, expired or
// rotated, with the key's state read at most once per 5 s per key (no database query per request).
import { describe, expect, test } from "bun:test";
import type { ApiKeyState } from "../../src/db/api-keys.ts";
import { MintedTokenCheck } from "../../src/http/api-key-tokens.ts";
import { ApiError } from "../../src/http/errors.ts";
import { signJwt } from "../../src/lib/jwt.ts";

const KEY = new TextEncoder().encode("k");
const T0 = 1_800_000_000_000;
const bearer = (claims: Record<string, unknown>) => `Bearer ${signJwt({ sub: "@a@example.com", exp: T0 / 1000 + 600, ...claims }, KEY)}`;
const active: ApiKeyState = { rotatedAt: new Date(T0 - 60_000), revokedAt: null, expiresAt: null };

/** A state loader that counts its reads (standing in for the one query), and a clock the test moves. */
function setup(initial: ApiKeyState | null = active) {
  let state = initial;
  let clock = T0;
  const reads: string[] = [];
  const check = new MintedTokenCheck(
    async (keyId) => {
      reads.push(keyId);
      return state;
    },
    { now: () => clock },
  );
  return {
    check,
    reads,
    set: (s: ApiKeyState | null) => (state = s),
    advance: (ms: number) => (clock += ms),
  };
}

async function refusal(p: Promise<void>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    expect(err.status).toBe(401);
    return err.message;
  }
}

describe("MintedTokenCheck", () => {
  test("tokens without api_key_id are never looked up", async () => {
    const { check, reads } = setup();
    expect(await refusal(check.refuseStale(bearer({ iat: T0 / 1000 })))).toBeNull();
    expect(reads).toEqual([]);
  });

  test("one read per key per 5 s, however many requests; concurrent requests share it", async () => {
    const { check, reads, advance } = setup();
    const header = bearer({ iat: T0 / 1000, api_key_id: "AAAAAAAAAAAA" });
    await Promise.all(Array.from({ length: 20 }, () => check.refuseStale(header)));
    for (let i = 0; i < 50; i++) await check.refuseStale(header);
    expect(reads).toHaveLength(1);
    advance(4_999);
    await check.refuseStale(header);
    expect(reads).toHaveLength(1);
    advance(1);
    await check.refuseStale(header);
    expect(reads).toHaveLength(2);
  });

  test.each([
    ["revoked", { ...active, revokedAt: new Date(T0) }],
    ["expired", { ...active, expiresAt: new Date(T0 - 1) }],
    ["rotated after the token was minted", { ...active, rotatedAt: new Date(T0 + 500) }],
    ["deleted", null],
  ])("a key %s: refused (api key revoked) once the cached state is older than 5 s", async (_, changed) => {
    const { check, set, advance } = setup();
    const header = bearer({ iat: T0 / 1000, api_key_id: "AAAAAAAAAAAA" });
    expect(await refusal(check.refuseStale(header))).toBeNull();
    set(changed);
    expect(await refusal(check.refuseStale(header))).toBeNull(); // still the cached state
    advance(5_000);
    expect(await refusal(check.refuseStale(header))).toBe("api key revoked");
  });

  test("a token minted from the current secret (iat at its generation) passes", async () => {
    const { check } = setup({ ...active, rotatedAt: new Date(T0 - 300) });
    expect(await refusal(check.refuseStale(bearer({ iat: T0 / 1000, api_key_id: "AAAAAAAAAAAA" })))).toBeNull();
  });

  test("a failed read is not cached: the next request reads again", async () => {
    let fail = true;
    let reads = 0;
    const check = new MintedTokenCheck(async () => {
      reads++;
      if (fail) throw new Error("database unavailable");
      return active;
    });
    const header = bearer({ iat: T0 / 1000, api_key_id: "AAAAAAAAAAAA" });
    await expect(check.refuseStale(header)).rejects.toThrow("database unavailable");
    fail = false;
    expect(await refusal(check.refuseStale(header))).toBeNull();
    expect(reads).toBe(2);
  });

  test("api_key_gen decides over iat: a token of the old secret with a late iat is refused; one of the new secret passes", async () => {
    const rotatedAt = new Date(T0 - 1_500);
    const { check } = setup({ rotatedAt, revokedAt: null, expiresAt: null });
    const generation = Math.ceil(rotatedAt.getTime() / 1000);
    const late = T0 / 1000 + 10; // minted after the rotation by the clock, from the secret before it
    expect(await refusal(check.refuseStale(bearer({ iat: late, api_key_id: "AAAAAAAAAAAA", api_key_gen: generation - 1 })))).toBe("api key revoked");
    expect(await refusal(check.refuseStale(bearer({ iat: late, api_key_id: "AAAAAAAAAAAA", api_key_gen: generation })))).toBeNull();
    // Without the claim (a token of an earlier version) iat decides, as before.
    expect(await refusal(check.refuseStale(bearer({ iat: late, api_key_id: "AAAAAAAAAAAA" })))).toBeNull();
    expect(await refusal(check.refuseStale(bearer({ iat: generation - 1, api_key_id: "AAAAAAAAAAAA" })))).toBe("api key revoked");
    expect(await refusal(check.refuseStale(bearer({ iat: late, api_key_id: "AAAAAAAAAAAA", api_key_gen: "x" })))).toBe("api key revoked");
  });
});
