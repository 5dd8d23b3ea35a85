// What a statement costs PostgreSQL itself, beside another one in the same run: the executor's own
// time (no protocol, no client, no planning), for comparisons such as "the query's cost halved".
import postgres from "postgres";
import { median } from "./util.ts";

/** A statement as PREPARE takes it: the text with $n placeholders, their type names and values. */
export type Prepared = { query: string; types: string[]; params: unknown[] };

/** Rounds run first and not counted: caches and the plan cache settle. */
const WARMUP_ROUNDS = 10;

/** A parameter as an SQL literal for EXECUTE: integers bare, everything else quoted. */
export const sqlLiteral = (v: unknown) => (typeof v === "number" || /^-?[0-9]+$/.test(String(v)) ? String(v) : `'${String(v).replace(/'/g, "''")}'`);

/**
 * Median executor time (ms) of each statement: `EXPLAIN (ANALYZE, TIMING OFF)` of a prepared
 * statement on its generic plan (the one the server settles on). The statements take turns round by
 * round on one connection, so the machine's drift falls on all of them alike.
 */
export async function executorMs(url: string, statements: Prepared[], rounds: number): Promise<number[]> {
  const sql = postgres(url, { max: 1, idle_timeout: 0, onnotice: () => {}, connection: { application_name: "fmsg-bench", jit: "off" } });
  try {
    await sql.unsafe("set plan_cache_mode = force_generic_plan");
    for (const [i, s] of statements.entries()) await sql.unsafe(`prepare cost_${i} (${s.types.join(", ")}) as ${s.query}`);
    const times: number[][] = statements.map(() => []);
    for (let r = 0; r < WARMUP_ROUNDS + rounds; r++) {
      for (const [i, s] of statements.entries()) {
        const plan = await sql.unsafe<{ "QUERY PLAN": string }[]>(
          `explain (analyze, timing off, costs off, summary on) execute cost_${i} (${s.params.map(sqlLiteral).join(", ")})`,
        );
        const line = plan.map((p) => p["QUERY PLAN"]).find((l) => l.startsWith("Execution Time:"));
        if (!line) throw new Error(`no execution time in the plan of statement ${i}`);
        if (r >= WARMUP_ROUNDS) times[i]!.push(Number(/([0-9.]+) ms/.exec(line)![1]));
      }
    }
    return times.map((t) => median(t));
  } finally {
    await sql.end({ timeout: 5 });
  }
}
