// Rows against files after a crash: what points at nothing (or at the wrong size), and what nothing points at.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type postgres from "postgres";

export type Consistency = {
  rows: number;
  files: number;
  /** Rows whose file is missing or of another size than the row says. */
  inconsistent: string[];
  /** Temp files anywhere, files under an out/ folder no row points to, message folders without a row. */
  orphans: string[];
};

async function walk(dir: string, files: string[]): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, files);
    else files.push(p);
  }
}

async function subdirs(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
}

export async function checkRowsAndFiles(sql: postgres.Sql, dataDir: string): Promise<Consistency> {
  const rows = await sql<{ path: string; size: number }[]>`
    select filepath as path, size from msg union all select filepath, filesize from msg_attachment`;
  const ids = new Set((await sql<{ id: string }[]>`select id::text as id from msg`).map((r) => r.id));
  const inconsistent: string[] = [];
  for (const r of rows) {
    const st = await stat(r.path).catch(() => null);
    if (!st) inconsistent.push(`${r.path}: row says ${r.size} bytes, file missing`);
    else if (st.size !== r.size) inconsistent.push(`${r.path}: row says ${r.size} bytes, file has ${st.size}`);
  }
  const referenced = new Set(rows.map((r) => r.path));
  const all: string[] = [];
  await walk(dataDir, all);
  const orphans: string[] = [];
  const orphanFolders: string[] = [];
  // `<dataDir>/<domain>/<user>/out/...` is the API's own tree; fmsgd's folders are none of its business.
  for (const domain of await subdirs(dataDir)) {
    for (const user of await subdirs(domain)) {
      const out = join(user, "out");
      for (const e of await readdir(out, { withFileTypes: true }).catch(() => [])) {
        const p = join(out, e.name);
        if (e.isDirectory() && !ids.has(e.name)) {
          orphanFolders.push(`${p}/`); // its files are counted once, with it
          continue;
        }
        const files: string[] = [];
        if (e.isDirectory()) await walk(p, files);
        else files.push(p);
        for (const f of files) {
          if (!referenced.has(f) && !f.slice(f.lastIndexOf("/") + 1).startsWith(".tmp-")) orphans.push(`${f} (no row points to it)`);
        }
      }
    }
  }
  for (const f of all) {
    if (!f.slice(f.lastIndexOf("/") + 1).startsWith(".tmp-") || orphanFolders.some((d) => f.startsWith(d))) continue;
    orphans.push(`${f} (temp file)`);
  }
  orphans.push(...orphanFolders.map((d) => `${d} (folder without a row)`));
  return { rows: rows.length, files: all.length, inconsistent, orphans };
}
