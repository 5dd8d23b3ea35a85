// Which database failures mean "the database is unavailable right now" (503), not a bug (500).

/** postgres.js's own codes for a connection that failed, dropped or timed out, and socket errors. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs of a database that is going away, overloaded or blocked: connection exceptions (08),
 * insufficient resources (53), operator intervention (57: shutdown, statement_timeout), a held
 * lock past lock_timeout (55P03), serialisation failures and deadlocks (40), a read-only standby.
 */
function unavailableState(state: string): boolean {
  return /^(08|53|57)/.test(state) || state === "55P03" || state === "40001" || state === "40P01" || state === "25006" || isSchemaBehind(state);
}

/**
 * An undefined table or column: the database lacks what `migrate` installs (an upgrade whose
 * migrate has not run yet). The start-up check names it; requests meanwhile get a 503, not a 500.
 */
function isSchemaBehind(state: string): boolean {
  return state === "42P01" || state === "42703";
}

/** The `code` of an error, when it has a string one. */
function codeOf(err: unknown): string | null {
  const code = err !== null && typeof err === "object" ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : null;
}

export function isDatabaseUnavailable(err: unknown): boolean {
  const code = codeOf(err);
  if (code === null) return false;
  // PostgresError carries the SQLSTATE in `code`; connection errors carry postgres.js's or the socket's name.
  return CONNECTION_CODES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && unavailableState(code));
}

/**
 * Whether a failed transaction may still have committed: its connection was lost (or the server
 * went away) with the COMMIT possibly in flight. Files such a transaction placed must stay, since a
 * committed row may point at them; the start-up sweep removes them if no row does.
 */
export function mayHaveCommitted(err: unknown): boolean {
  return isConnectionFailure(err);
}

/** The connection failed, was lost or refused, or the server is starting up or shutting down. */
export function isConnectionFailure(err: unknown): boolean {
  const code = codeOf(err);
  if (code === null) return false;
  return CONNECTION_CODES.has(code) || /^08/.test(code) || /^57P0[1-3]$/.test(code);
}
