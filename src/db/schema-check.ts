// Compares the database with what `migrate` installs: tables, indexes, triggers and trigger function bodies.
import { arrayLiteral } from "./arrays.ts";
import type { Sql } from "./pool.ts";
import { missingTables, SCHEMA_FILES } from "./schema.ts";

export type SchemaReport = {
  /** Tables the server cannot run without: it refuses to start. */
  missingTables: string[];
  /** Everything else that differs, one line per object, each naming it. */
  warnings: string[];
};

type Expected = { tables: string[]; indexes: string[]; triggers: string[]; functions: Map<string, string> };

let expected: Expected | undefined;

/** What sql/ installs, read from its text once: index and trigger names, trigger function bodies. */
function expectedObjects(): Expected {
  if (expected) return expected;
  const text = SCHEMA_FILES.join("\n");
  const names = (re: RegExp) => [...text.matchAll(re)].map((m) => m[1]!);
  const functions = new Map<string, string>();
  // `create or replace function name() … as $tag$body$tag$`: PostgreSQL keeps the body verbatim (prosrc).
  for (const m of text.matchAll(/create or replace function (\w+)\([^)]*\)[\s\S]*?\bas \$(\w*)\$([\s\S]*?)\$\2\$/gi)) {
    functions.set(m[1]!, m[3]!);
  }
  expected = {
    tables: names(/create table if not exists (\w+)/gi),
    indexes: names(/create (?:unique )?index if not exists (\w+)/gi),
    triggers: names(/create (?:constraint )?trigger (\w+)/gi),
    functions,
  };
  return expected;
}

/**
 * The differences between the database and sql/. A trigger function whose body differs is how a
 * re-run of fmsgd's own DDL after `migrate` shows (README "Running next to fmsgd"); the fix for
 * every warning is to run `migrate` again.
 */
export async function checkSchema(sql: Sql): Promise<SchemaReport> {
  const missing = await missingTables(sql);
  const want = expectedObjects();
  const [tables, indexes, triggers, functions] = await Promise.all([
    sql<{ name: string }[]>`
      select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = current_schema() and c.relkind in ('r', 'p') and c.relname = any(${arrayLiteral(want.tables)}::text[])`,
    sql<{ name: string }[]>`
      select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = current_schema() and c.relkind = 'i' and c.relname = any(${arrayLiteral(want.indexes)}::text[])`,
    sql<{ name: string }[]>`
      select t.tgname as name from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = current_schema() and not t.tgisinternal and t.tgname = any(${arrayLiteral(want.triggers)}::text[])`,
    sql<{ name: string; body: string }[]>`
      select p.proname as name, p.prosrc as body from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = current_schema() and p.proname = any(${arrayLiteral([...want.functions.keys()])}::text[])`,
  ]);
  const present = (rows: { name: string }[]) => new Set(rows.map((r) => r.name));
  const haveIndexes = present(indexes);
  const haveTriggers = present(triggers);
  const bodies = new Map(functions.map((f) => [f.name, f.body]));
  const warnings: string[] = [];
  // fmsgd's own tables are already in `missing` (the server cannot start without them); the API's are
  // warnings: only the routes that use them fail (503) until migrate runs.
  const haveTables = present(tables);
  for (const name of want.tables) if (!haveTables.has(name) && !missing.includes(name)) warnings.push(`missing table ${name}`);
  for (const name of want.indexes) if (!haveIndexes.has(name)) warnings.push(`missing index ${name}`);
  for (const name of want.triggers) if (!haveTriggers.has(name)) warnings.push(`missing trigger ${name}`);
  for (const [name, body] of want.functions) {
    const installed = bodies.get(name);
    if (installed === undefined) warnings.push(`missing function ${name}`);
    else if (installed.trim() !== body.trim()) warnings.push(`function ${name} differs from what migrate installs`);
  }
  return { missingTables: missing, warnings };
}
