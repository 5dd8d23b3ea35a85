// Owns the database schema: applying sql/ (migrate), its fingerprint, and the start-up check for fmsgd's tables.
import fmsgdDdl from "../../sql/001_fmsgd.sql" with { type: "text" };
import apiDdl from "../../sql/002_api.sql" with { type: "text" };
import eventsDdl from "../../sql/003_events.sql" with { type: "text" };
import idempotencyDdl from "../../sql/004_idempotency.sql" with { type: "text" };
import type { Sql } from "./pool.ts";

/** The schema files in the order they apply; each is idempotent. */
export const SCHEMA_FILES: readonly string[] = [fmsgdDdl, apiDdl, eventsDdl, idempotencyDdl];

/** Serialises concurrent migrations of one database (two API instances starting together). */
const MIGRATE_LOCK_KEY = 0x666d_7367; // "fmsg"

/** The tables fmsgd and the API both work on; without any of them the server cannot start. */
export const REQUIRED_TABLES: readonly string[] = [
  "msg",
  "msg_to",
  "msg_add_to_batch",
  "msg_add_to",
  "msg_attachment",
  "msg_add_to_notify",
];

let fingerprint: string | undefined;

/** A short hash of the schema text: changes whenever any sql/ file does. */
export function schemaFingerprint(): string {
  if (fingerprint === undefined) {
    const hasher = new Bun.CryptoHasher("sha256");
    for (const text of SCHEMA_FILES) hasher.update(text);
    fingerprint = hasher.digest("hex").slice(0, 12);
  }
  return fingerprint;
}

/** Applies every schema file in one transaction and records the fingerprint. Safe to re-run. */
export async function migrate(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATE_LOCK_KEY})`;
    // "already exists, skipping" notices on every re-run are not news.
    await tx`set local client_min_messages = warning`;
    for (const text of SCHEMA_FILES) await tx.unsafe(text);
    await tx`
      insert into fmsg_api_schema_version (fingerprint) values (${schemaFingerprint()})
      on conflict (fingerprint) do update set applied_at = now()
    `;
  });
}

/** The required tables absent from the current schema, in REQUIRED_TABLES order. */
export async function missingTables(sql: Sql): Promise<string[]> {
  // One text parameter, not an array: postgres.js mis-serialises an array in the first query of a
  // new connection (before it has fetched the array types), and this is often that query.
  const rows = await sql<{ name: string }[]>`
    select t.name
    from unnest(string_to_array(${REQUIRED_TABLES.join(",")}, ',')) with ordinality as t(name, n)
    where to_regclass(quote_ident(current_schema()) || '.' || quote_ident(t.name)) is null
    order by t.n
  `;
  return rows.map((r) => r.name);
}
