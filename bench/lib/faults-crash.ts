// Crash round: ~20 writers mixing every draft write, SIGKILL at a random instant, restart, then rows against files.
import type postgres from "postgres";
import { fileRows } from "../../src/db/files.ts";
import { openPool } from "../../src/db/pool.ts";
import { SWEEP_GRACE_MS, sweepDataDir } from "../../src/storage/sweep.ts";
import { checkRowsAndFiles } from "./faults-check.ts";
import { call, pick, probe, randomInt, tokenFor, until, withDeadline, TIMED_OUT, type Tally } from "./faults-http.ts";
import { countAnswers, type RoundResult } from "./faults-report.ts";
import { launchServer, type FaultServer } from "./faults-server.ts";

const WRITERS = 20;
const KILL_AFTER_MS = [50, 800] as const;
const MAX_ATTACHMENT = 300 * 1024;
const MAX_BODY = 30_000;
/** Drafts per writer above which it stops creating (the database stays small over many rounds). */
const MAX_DRAFTS = 8;
const MAX_NAMES = 6;
const RECIPIENT = "@bob@example.com";

/** Kept between rounds: one database and one data directory for all crash rounds, and the server of the moment. */
export type CrashState = { sql: postgres.Sql; databaseUrl: string; dataDir: string; server: FaultServer | null };

type Draft = { id: number; names: string[] };

const owner = (i: number) => `@cw${i}@example.com`;
const FILLER = crypto.getRandomValues(new Uint8Array(65536));
const ATTACHMENT = new Uint8Array(MAX_ATTACHMENT).map((_, i) => FILLER[i % FILLER.length]!);
const TEXT = "The quick brown fox jumps over the lazy dog. ".repeat(Math.ceil(MAX_BODY / 45));

/** Body length and type change from write to write, so a replacement also renames (data.txt ↔ data.md). */
function draftBody(from: string): Record<string, unknown> {
  return { version: 1, from, to: [RECIPIENT], type: pick(["text/plain", "text/markdown"]), topic: "crash round", data: TEXT.slice(0, randomInt(0, MAX_BODY)) };
}

function upload(name: string): FormData {
  const form = new FormData();
  form.append("file", new Blob([ATTACHMENT.subarray(0, randomInt(0, MAX_ATTACHMENT))], { type: "application/octet-stream" }), name);
  return form;
}

/** The drafts each writer owns, as the database has them after the last crash. */
async function loadDrafts(sql: postgres.Sql): Promise<Map<string, Draft[]>> {
  const rows = await sql<{ id: string; owner: string; names: string[] }[]>`
    select m.id::text as id, lower(m.from_addr) as owner,
           coalesce(array_agg(a.filename) filter (where a.filename is not null), '{}') as names
    from msg m left join msg_attachment a on a.msg_id = m.id
    where m.time_sent is null group by m.id`;
  const byOwner = new Map<string, Draft[]>();
  for (const r of rows) {
    const list = byOwner.get(r.owner) ?? [];
    list.push({ id: Number(r.id), names: r.names });
    byOwner.set(r.owner, list);
  }
  return byOwner;
}

type Op = "create" | "put" | "attach" | "detach" | "delete" | "send";
const WEIGHTS: [Op, number][] = [["create", 15], ["put", 20], ["attach", 35], ["detach", 10], ["delete", 10], ["send", 10]];

function chooseOp(drafts: Draft[]): Op {
  if (drafts.length === 0) return "create";
  let roll = Math.random() * WEIGHTS.reduce((a, [, w]) => a + w, 0);
  for (const [op, w] of WEIGHTS) {
    if ((roll -= w) < 0) return op === "create" && drafts.length >= MAX_DRAFTS ? "delete" : op;
  }
  return "put";
}

async function writer(base: string, from: string, drafts: Draft[], tally: Tally, stopped: () => boolean, signal: AbortSignal): Promise<void> {
  const token = tokenFor(from);
  const opts = { signal };
  while (!stopped() && !signal.aborted) {
    const op = chooseOp(drafts);
    const d = op === "create" ? null : pick(drafts);
    const forget = () => drafts.splice(drafts.indexOf(d!), 1);
    if (op === "create") {
      const a = await call(base, token, "POST", "/fmsg", { ...opts, json: draftBody(from) }, tally);
      const id = (a.body as { id?: unknown } | null)?.id;
      if (a.status === 201 && typeof id === "number") drafts.push({ id, names: [] });
    } else if (op === "put") {
      const a = await call(base, token, "PUT", `/fmsg/${d!.id}`, { ...opts, json: draftBody(from) }, tally);
      if (a.status === 404 || a.status === 403) forget();
    } else if (op === "attach" || (op === "detach" && d!.names.length === 0)) {
      const replace = d!.names.length >= MAX_NAMES || (d!.names.length > 0 && Math.random() < 0.5);
      const name = replace ? pick(d!.names) : `f${randomInt(0, 99_999)}.bin`;
      const a = await call(base, token, "POST", `/fmsg/${d!.id}/attach`, { ...opts, form: upload(name) }, tally);
      if (a.status === 201 && !d!.names.includes(name)) d!.names.push(name);
      if (a.status === 404 || a.status === 403) forget();
    } else if (op === "detach") {
      const name = pick(d!.names);
      const a = await call(base, token, "DELETE", `/fmsg/${d!.id}/attach/${encodeURIComponent(name)}`, opts, tally);
      if (a.status === 204 || a.status === 404) d!.names.splice(d!.names.indexOf(name), 1);
    } else {
      const a = op === "delete"
        ? await call(base, token, "DELETE", `/fmsg/${d!.id}`, opts, tally)
        : await call(base, token, "POST", `/fmsg/${d!.id}/send`, opts, tally);
      if (a.status === 204 || a.status === 200 || a.status === 404 || a.status === 403) forget();
    }
  }
}

async function start(state: CrashState, r: RoundResult): Promise<FaultServer | null> {
  try {
    state.server = await launchServer({ databaseUrl: state.databaseUrl, dataDir: state.dataDir });
    return state.server;
  } catch (err) {
    state.server = null;
    r.add("failed_recoveries", 1, `server did not start: ${String(err).slice(0, 2000)}`);
    return null;
  }
}

/** What the restart's sweep removed (temp files, orphan files, orphan folders), from its log line. */
function sweepNote(server: FaultServer): string {
  const line = server.events(40).find((l) => l.includes("removed files left by an interrupted write"));
  if (!line) return "";
  const s = JSON.parse(line) as { tempFiles?: number; orphanFiles?: number; orphanFolders?: number };
  return ` swept=${s.tempFiles ?? 0}t/${s.orphanFiles ?? 0}f/${s.orphanFolders ?? 0}d`;
}

/** One crash round; returns the details of its progress line. */
export async function crashRound(state: CrashState, r: RoundResult, signal: AbortSignal): Promise<string> {
  if (state.server && !state.server.alive()) await state.server.kill(); // one that crashed may still be draining
  const server = state.server?.alive() ? state.server : await start(state, r);
  if (!server || signal.aborted) return "no server";
  const drafts = await loadDrafts(state.sql);
  let stopped = false;
  const writers = Array.from({ length: WRITERS }, (_, i) => {
    const list = drafts.get(owner(i)) ?? [];
    return writer(server.url, owner(i), list, r.tally, () => stopped, signal);
  });
  const killAt = randomInt(...KILL_AFTER_MS);
  await Promise.race([Bun.sleep(killAt), server.child.exited]);
  stopped = true;
  if (server.crashed()) r.add("crashes", 1, `${server.ending()} on its own before the kill:`, ...server.events());
  await server.kill();
  if ((await withDeadline(Promise.all(writers), 20_000)) === TIMED_OUT) r.add("unanswered_requests", 1, "writers still busy 20 s after the kill");
  const answers = r.tally.total;
  if (signal.aborted) return "aborted";

  const next = await start(state, r);
  if (!next || signal.aborted) return `kill@${killAt}ms answers=${answers} restart failed`;
  // The restart's sweep leaves leftovers younger than its grace period (another instance's write
  // may be in flight); the same sweep run as if that period had passed is what they meet later.
  // Nothing writes meanwhile, so whatever it still leaves is an orphan. On the server's own kind of
  // connection: the sweep's row look-up expects ids parsed as numbers.
  const pool = openPool({ url: state.databaseUrl, max: 1 });
  const later = await sweepDataDir(state.dataDir, fileRows(pool), { now: () => Date.now() + SWEEP_GRACE_MS + 60_000 }).finally(() => pool.end({ timeout: 5 }));
  const c = await checkRowsAndFiles(state.sql, state.dataDir);
  if (c.inconsistent.length > 0) r.add("inconsistent_rows", c.inconsistent.length, ...c.inconsistent.slice(0, 10));
  if (c.orphans.length > 0) r.add("orphan_files", c.orphans.length, ...c.orphans.slice(0, 10));

  // The restarted server serves, and a fresh write (draft plus attachment) lands.
  const healthy = await until(async () => (await probe(`${next.url}/healthz`)) === 200, 10_000, signal);
  const token = tokenFor("@cwcheck@example.com");
  const created = await call(next.url, token, "POST", "/fmsg", { signal, json: draftBody("@cwcheck@example.com") }, r.tally);
  const id = (created.body as { id?: unknown } | null)?.id;
  const attached = typeof id === "number" ? await call(next.url, token, "POST", `/fmsg/${id}/attach`, { signal, form: upload("check.bin") }, r.tally) : null;
  if (!healthy || created.status !== 201 || attached?.status !== 201) {
    r.add("failed_recoveries", 1, `after restart: healthz ${healthy ? 200 : "no 200"}, create ${created.status}, attach ${attached?.status ?? "-"}`, ...next.events(5));
  }
  if (next.crashed()) r.add("crashes", 1, `restarted server ${next.ending()} on its own:`, ...next.events());
  countAnswers(r, r.tally, [server, next], { noAnswerIsBug: false }); // the kill cuts requests by design
  return `kill@${killAt}ms answers=${answers} rows=${c.rows} files=${c.files}${sweepNote(next)} later=${later.tempFiles}t/${later.orphanFiles}f/${later.orphanFolders}d`;
}
