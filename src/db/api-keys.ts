// Queries of fmsg_api_key: issuing, listing, rotating and revoking API keys, and what the token exchange reads.
import { arrayLiteral } from "./arrays.ts";
import type { Sql } from "./pool.ts";

/** A key as the operator sees it: never its secret or hash. */
export type ApiKeyInfo = {
  keyId: string;
  address: string;
  label: string | null;
  cidrs: string[];
  expiresAt: Date | null;
  createdAt: Date;
  rotatedAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
};

/** A key with its stored secret hash, for the token exchange. */
export type ApiKeyRecord = ApiKeyInfo & { salt: Uint8Array; hash: Uint8Array };

/** What decides whether tokens minted from a key still count. */
export type ApiKeyState = { rotatedAt: Date; revokedAt: Date | null; expiresAt: Date | null };

type Row = {
  key_id: string;
  address: string;
  label: string | null;
  cidrs: string[];
  expires_at: Date | null;
  created_at: Date;
  rotated_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
};

const info = (r: Row): ApiKeyInfo => ({
  keyId: r.key_id,
  address: r.address,
  label: r.label,
  cidrs: r.cidrs,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  rotatedAt: r.rotated_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
});

export async function insertApiKey(
  sql: Sql,
  key: { keyId: string; address: string; salt: Uint8Array; hash: Uint8Array; label: string | null; cidrs: readonly string[]; expiresAt: Date | null },
): Promise<ApiKeyInfo> {
  const [row] = await sql<Row[]>`
    insert into fmsg_api_key (key_id, address, secret_salt, secret_hash, label, cidrs, expires_at)
    values (${key.keyId}, ${key.address}, ${key.salt}, ${key.hash}, ${key.label}, ${arrayLiteral(key.cidrs)}::text[], ${key.expiresAt})
    returning key_id, address, label, cidrs, expires_at, created_at, rotated_at, revoked_at, last_used_at
  `;
  return info(row!);
}

/** Every key, or those of one address (case-insensitively), oldest first. */
export async function listApiKeys(sql: Sql, address: string | null = null): Promise<ApiKeyInfo[]> {
  const rows = await sql<Row[]>`
    select key_id, address, label, cidrs, expires_at, created_at, rotated_at, revoked_at, last_used_at
    from fmsg_api_key
    where ${address}::text is null or lower(address) = lower(${address}::text)
    order by created_at, key_id
  `;
  return rows.map(info);
}

/**
 * Replaces the secret of a key that is not revoked; rotated_at moves on, so every token minted from
 * the old secret stops counting. Null when there is no such key or it is revoked.
 */
export async function rotateApiKey(sql: Sql, keyId: string, secret: { salt: Uint8Array; hash: Uint8Array }): Promise<ApiKeyInfo | null> {
  const [row] = await sql<Row[]>`
    update fmsg_api_key
    set secret_salt = ${secret.salt}, secret_hash = ${secret.hash}, rotated_at = greatest(now(), rotated_at + interval '1 second')
    where key_id = ${keyId} and revoked_at is null
    returning key_id, address, label, cidrs, expires_at, created_at, rotated_at, revoked_at, last_used_at
  `;
  return row ? info(row) : null;
}

/** Revokes a key (a second revoke keeps the first time). Null when there is no such key. */
export async function revokeApiKey(sql: Sql, keyId: string): Promise<ApiKeyInfo | null> {
  const [row] = await sql<Row[]>`
    update fmsg_api_key
    set revoked_at = coalesce(revoked_at, now())
    where key_id = ${keyId}
    returning key_id, address, label, cidrs, expires_at, created_at, rotated_at, revoked_at, last_used_at
  `;
  return row ? info(row) : null;
}

export async function findApiKey(sql: Sql, keyId: string): Promise<ApiKeyRecord | null> {
  const [row] = await sql<(Row & { secret_salt: Uint8Array; secret_hash: Uint8Array })[]>`
    select key_id, address, label, cidrs, expires_at, created_at, rotated_at, revoked_at, last_used_at, secret_salt, secret_hash
    from fmsg_api_key
    where key_id = ${keyId}
  `;
  return row ? { ...info(row), salt: row.secret_salt, hash: row.secret_hash } : null;
}

export async function apiKeyState(sql: Sql, keyId: string): Promise<ApiKeyState | null> {
  const [row] = await sql<{ rotated_at: Date; revoked_at: Date | null; expires_at: Date | null }[]>`
    select rotated_at, revoked_at, expires_at from fmsg_api_key where key_id = ${keyId}
  `;
  return row ? { rotatedAt: row.rotated_at, revokedAt: row.revoked_at, expiresAt: row.expires_at } : null;
}

/** Keys whose use is being recorded right now: one write per key at a time. */
const touching = new Set<string>();

/**
 * Records a use; at most one write a minute per key, since exchanges of one client can come in
 * bursts. Bookkeeping only, so it never waits: a row locked elsewhere (a rotate, a revoke) is
 * skipped, not waited for. Waiting, each exchange of a burst held a pool connection for the lock
 * timeout; ten filled the pool, and unrelated requests and the listener's heartbeat queued behind.
 */
export async function touchApiKey(sql: Sql, keyId: string): Promise<void> {
  if (touching.has(keyId)) return;
  touching.add(keyId);
  try {
    await sql`
      update fmsg_api_key set last_used_at = now()
      where key_id = (
        select key_id from fmsg_api_key
        where key_id = ${keyId} and (last_used_at is null or last_used_at < now() - interval '1 minute')
        for update skip locked)
    `;
  } finally {
    touching.delete(keyId);
  }
}
