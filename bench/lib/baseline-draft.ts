// The baselines' compose work, shared by the load generator's direct modes and baseline (b)'s
// POST /fmsg, so both run the same SQL and write the body file the same way. None of our server's
// code: a baseline must not measure what it is compared with.
import { mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";
import type postgres from "postgres";

export type BaselineDraft = { from: string; to: string[]; topic: string; type: string; bytes: Uint8Array };

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Inserts the draft (msg, then its msg_to rows in order) in one transaction and returns its id.
 * With `dir`, the body is written as our server writes it: a temp file (wx, write, fsync) in a new
 * folder, renamed to `<dir>/data.txt` inside the transaction, then the folder fsynced.
 */
export async function insertBaselineDraft(sql: postgres.Sql<any>, draft: BaselineDraft, dir: string | null): Promise<number> {
  let temp = "";
  let final = "/bench-direct/none";
  if (dir) {
    await mkdir(dir, { recursive: true });
    temp = join(dir, `.tmp-data-${crypto.randomUUID()}`);
    final = join(dir, "data.txt");
    const fh = await open(temp, "wx", 0o640);
    await fh.write(draft.bytes);
    await fh.sync();
    await fh.close();
  }
  return sql.begin(async (tx) => {
    const [m] = await tx<{ id: number }[]>`
      insert into msg (version, pid, no_reply, is_important, is_deflate, time_sent, from_addr,
                       topic, type, size, filepath, sha256, psha256)
      values (1, null, false, false, false, null, ${draft.from}, ${draft.topic}, ${draft.type}, ${draft.bytes.length}, ${final}, null, null)
      returning id`;
    await tx`
      insert into msg_to (msg_id, addr)
      select ${m!.id}, x.addr from unnest(${draft.to}::varchar[]) with ordinality as x(addr, n) order by x.n`;
    if (dir) {
      await rename(temp, final);
      await fsyncDir(dir);
    }
    return m!.id;
  });
}

/** The send: one statement, as the SQL-pair baseline runs it. */
export async function sendBaselineDraft(sql: postgres.Sql<any>, id: number): Promise<boolean> {
  const rows = await sql`update msg set time_sent = extract(epoch from now()) where id = ${id} and time_sent is null returning time_sent`;
  return rows.length === 1;
}
