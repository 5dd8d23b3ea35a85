// Opens the postgres.js pool (and its single LISTEN connection) from the configuration.
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
