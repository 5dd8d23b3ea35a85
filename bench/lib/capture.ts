// Captures the statements a function sends through postgres.js (its debug hook), so the bench can
// EXPLAIN and pgbench exactly what the server runs, and check that baseline (b)'s copy is current.
import postgres from "postgres";
import { findMessage, listInbox } from "../../src/db/messages.ts";
import * as copy from "../servers/direct-sql.ts";
import { INT8_AS_NUMBER } from "./db.ts";

export type Captured = { query: string; params: unknown[]; types: number[] };

export async function captureStatements(url: string, fn: (sql: postgres.Sql<any>) => Promise<unknown>): Promise<Captured[]> {
  const seen: Captured[] = [];
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    types: INT8_AS_NUMBER,
    connection: { application_name: "fmsg-bench", jit: "off" },
    debug: (_conn: number, query: string, params: unknown[], types: number[]) => void seen.push({ query, params, types }),
  });
  try {
    await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return seen;
}

const normalise = (q: string) => q.replace(/\s+/g, " ").trim();

async function one(url: string, fn: (sql: postgres.Sql<any>) => Promise<unknown>, marker: string): Promise<Captured> {
  const found = (await captureStatements(url, fn)).find((s) => s.query.includes(marker));
  if (!found) throw new Error(`could not capture the statement containing "${marker}"`);
  return found;
}

/**
 * The statement src/db/messages.ts sends for `which`, after checking that baseline (b)'s copy
 * (bench/servers/direct-sql.ts) sends the same text; throws when it has drifted.
 */
export async function checkedStatement(url: string, which: "findMessage" | "listInbox", arg: { id?: number; address: string }): Promise<Captured> {
  const [ours, theirs] =
    which === "findMessage"
      ? [
          await one(url, (sql) => findMessage(sql, arg.id!, arg.address), "from msg m where m.id"),
          await one(url, (sql) => copy.findMessage(sql, arg.id!, arg.address), "from msg m where m.id"),
        ]
      : [
          await one(url, (sql) => listInbox(sql, arg.address!, { limit: 20, offset: 0, beforeId: null }), "with page as"),
          await one(url, (sql) => copy.listInbox(sql, arg.address!, 20, 0), "with page as"),
        ];
  if (normalise(ours.query) !== normalise(theirs.query)) {
    throw new Error(
      `baseline (b) no longer runs the SQL of src/db/messages.ts ${which}: update bench/servers/direct-sql.ts\n--- src:\n${ours.query}\n--- bench copy:\n${theirs.query}`,
    );
  }
  return ours;
}
