// Opens the postgres.js pool (and its single LISTEN connection) from the configuration; ping and notify.
import postgres from "postgres";
import type { DatabaseSsl } from "../config.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export type PoolOptions = {
  /** A connection URL, or null to let postgres.js read PGHOST, PGUSER, … itself. */
  url: string | null;
  /** TLS from PGSSLMODE (Config.databaseSsl); null or absent: as the URL says. */
  ssl?: DatabaseSsl | null;
  max: number;
  /** postgres.js startup parameters (e.g. jit off); the embedded database takes none. */
  startupParams?: Record<string, string>;
  /** Named prepared statements (postgres.js default); the embedded database may need them off. */
  prepare?: boolean;
  /** statement_timeout and lock_timeout for every connection (ms); unset for the embedded database. */
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
};

/** Queries postgres.js may send on a connection before its running one answers (see openPool). */
export const MAX_PIPELINE = 1;
/** Connecting to a database that does not answer fails after this long (seconds), not a minute. */
const CONNECT_TIMEOUT_SECONDS = 5;
/**
 * A query still unanswered this long past statement_timeout means a database that stopped answering
 * with its sockets open (stopped, frozen, cut off without a reset): its connection is closed, the
 * query fails as CONNECTION_CLOSED (503) and the pool connects anew. Without it the request waited
 * until TCP gave up, minutes later (the answer_timeout of patches/postgres@3.4.9.patch).
 */
const ANSWER_MARGIN_SECONDS = 5;
/** A transaction left idle (a request stuck on the disk between statements) is ended by PostgreSQL. */
export const IDLE_IN_TRANSACTION_MS = 60_000;

/**
 * Startup parameters of a PostgreSQL connection: no JIT (it compiled the batched wake-up query, ~150 ms
 * each) and bounded waits (without statement_timeout and lock_timeout one stuck row lock fills the pool).
 */
function startupParameters(opts: PoolOptions): Record<string, string> {
  if (opts.startupParams) return opts.startupParams;
  const params: Record<string, string> = { jit: "off", idle_in_transaction_session_timeout: String(IDLE_IN_TRANSACTION_MS) };
  if (opts.statementTimeoutMs) params.statement_timeout = String(opts.statementTimeoutMs);
  if (opts.lockTimeoutMs) params.lock_timeout = String(opts.lockTimeoutMs);
  return params;
}

/** Seconds before reconnect attempt `retries`: quick growth to a 0.25–0.5 s cap, jittered. */
export function reconnectDelaySeconds(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 0.5);
}

export function openPool(opts: PoolOptions): Sql {
  const options = {
    max: opts.max,
    // At most one query queued behind a connection's running one (postgres.js pipelines up to 100).
    // A deeper queue makes a cheap statement wait behind whatever its connection happened to get (a
    // commit's WAL flush, an inbox page, a wake-up's confirmation) while other connections finish
    // and sit idle: under load the tail grows. One queued query still keeps each connection busy
    // between round trips; the rest wait in the pool's own queue, first come first served.
    max_pipeline: MAX_PIPELINE,
    idle_timeout: 60,
    // postgres.js's reconnect backoff (shared by the pool and the LISTEN connection) grows to ~20 s;
    // after an outage, queries and the re-listen would wait that long. Capped at 0.5 s.
    backoff: reconnectDelaySeconds,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    // Only where statement_timeout bounds a slow query (not the embedded database).
    ...(opts.statementTimeoutMs ? { answer_timeout: opts.statementTimeoutMs / 1000 + ANSWER_MARGIN_SECONDS } : {}),
    onnotice: () => {},
    prepare: opts.prepare ?? true,
    // ids are int8: JSON numbers for clients (docs/API.md "The basics"); below 2^53 in any real host.
    types: {
      int8: {
        to: 20,
        from: [20],
        serialize: (v: number | bigint | string) => String(v),
        parse: (v: string) => Number(v),
      },
    },
    connection: { application_name: "fmsg-webapi", ...startupParameters(opts) },
    ...(opts.ssl === undefined || opts.ssl === null ? {} : { ssl: opts.ssl }),
  };
  return opts.url ? postgres(opts.url, options) : postgres(options);
}

/** The cheapest round trip: does the database answer? */
export async function ping(sql: Sql): Promise<void> {
  await sql`select 1`;
}

/** NOTIFY through the pool (the listener's heartbeat). */
export async function notify(sql: Sql, channel: string, payload: string): Promise<void> {
  await sql`select pg_notify(${channel}, ${payload})`;
}
