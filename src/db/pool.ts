// Opens the postgres.js pool (and its single LISTEN connection) from the configuration; ping and notify.
import postgres from "postgres";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export type PoolOptions = {
  /** A connection URL, or null to let postgres.js read PGHOST, PGUSER, … itself. */
  url: string | null;
  max: number;
  /** postgres.js startup parameters (e.g. jit off); the embedded database takes none. */
  startupParams?: Record<string, string>;
  /** Named prepared statements (postgres.js default); the embedded database may need them off. */
  prepare?: boolean;
};

export function openPool(opts: PoolOptions): Sql {
  const options = {
    max: opts.max,
    idle_timeout: 60,
    connect_timeout: 10,
    onnotice: () => {},
    prepare: opts.prepare ?? true,
    // ids are int8: JSON numbers for clients (API.md §1); they stay below 2^53 in any real host.
    types: {
      int8: {
        to: 20,
        from: [20],
        serialize: (v: number | bigint | string) => String(v),
        parse: (v: string) => Number(v),
      },
    },
    connection: { application_name: "fmsg-webapi", ...(opts.startupParams ?? { jit: "off" }) },
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
