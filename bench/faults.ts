// `bun run faults`: crash rounds and database-outage rounds against the real server (child processes), counted.
//
//   bun run faults                 10 crash rounds + 10 outage rounds (1–3 minutes on the 2-core host;
//                                  up to ~10 when waits are lost: each such round waits 45 s for them)
//   bun run faults --quick         3 of each
//   bun run faults --rounds=N      N of each
//   bun run faults --only=crash    one kind only (crash | outage)
//
// Crash round (a database on the shared PostgreSQL at 127.0.0.1:5432, FMSG_TEST_PG_URL overrides the
// admin URL; one database and data directory for all rounds): ~20 writers mix creates, PUTs (body
// length and type change), uploads (new and replacing names, 0–300 KB), attachment deletes, draft
// deletes and sends; SIGKILL at a random 50–800 ms; restart (the start-up sweep runs before it
// listens, and leaves what is younger than its grace period); the same sweep as if that period had
// passed; then rows against files, /healthz and a fresh write.
// Outage round (a private PostgreSQL cluster): ~300 open waits, one per address, and ~20 writers;
// then, cycling, restart("immediate"), restart("fast") or pg_terminate_backend of the server's
// connections; once the database takes connections, fmsgd's mail (SQL) for every waiting address.
//
// The counts (every one but rounds must be 0; exit code 0, else 1; 2 when the script itself failed):
//   crashes              the server process exited on its own (not by our SIGKILL)
//   lost_wakeups         a wait answered 204 after its mail committed, not answered within 45 s of
//                        the commit, or answered 200 with a latest_id below its mail's id
//   inconsistent_rows    a msg or msg_attachment row whose file is missing or of another size
//   orphan_files         a .tmp-* file, a file under <dataDir>/<domain>/<user>/out/ no row points
//                        to, or a message folder without a msg row (after the restart's sweep)
//   server_errors_500    answers 500 (or any 5xx but 503 database unavailable / 507 disk full)
//   unanswered_requests  requests with no answer within 15 s, or (outage rounds, server up) whose
//                        connection ended without an answer
//   failed_recoveries    after the fault: no restart, /healthz or /readyz never 200, or a fresh
//                        write not stored
//   stuck_rounds         rounds that did not end within their deadline or could not be carried out
// A line per round shows the answers the clients got; non-zero counts come with examples and the
// server's own log lines. Everything created (database, cluster, temp dirs, processes) is removed,
// also after a failure or Ctrl-C.
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { createTestDatabase, type TestDatabase } from "../tests/helpers/db.ts";
import { startPrivatePostgres, type PrivatePostgres } from "../tests/helpers/private-postgres.ts";
import { crashRound, type CrashState } from "./lib/faults-crash.ts";
import { TIMED_OUT, withDeadline } from "./lib/faults-http.ts";
import { outageRound, type OutageState } from "./lib/faults-outage.ts";
import { KindTotals, RoundResult, summaryLine, table } from "./lib/faults-report.ts";
import { killAllServers, killAllServersNow } from "./lib/faults-server.ts";

const CRASH_DEADLINE_MS = 120_000;
const OUTAGE_DEADLINE_MS = 240_000;

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { rounds: { type: "string" }, quick: { type: "boolean" }, only: { type: "string" } },
  strict: true,
});
const rounds = values.rounds !== undefined ? Number(values.rounds) : values.quick ? 3 : 10;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got "${values.rounds}"`);
const only = values.only;
if (only !== undefined && only !== "crash" && only !== "outage") throw new Error(`--only must be crash or outage, got "${only}"`);

const say = (line: string) => process.stdout.write(`${line}\n`);

// Everything this run creates, removed by cleanup() whatever ends the run.
const dirs: string[] = [];
let crashDb: TestDatabase | null = null;
let cluster: PrivatePostgres | null = null;
let outageSql: postgres.Sql | null = null;
let current: AbortController | null = null;
/** After Ctrl-C the round in flight fails on the removed database; nothing of it is reported. */
let interrupted = false;

async function cleanup(): Promise<void> {
  current?.abort();
  await killAllServers();
  await outageSql?.end({ timeout: 5 }).catch(() => {});
  outageSql = null;
  await cluster?.destroy().catch((err: unknown) => say(`cleanup: cluster: ${String(err)}`));
  cluster = null;
  await crashDb?.drop().catch((err: unknown) => say(`cleanup: database: ${String(err)}`));
  crashDb = null;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

process.on("exit", () => {
  killAllServersNow(); // the cluster's own exit hook stops it
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  process.once(signal, () => {
    interrupted = true;
    say(`${signal}: cleaning up`);
    void withDeadline(cleanup(), 30_000).finally(() => process.exit(code));
  });
}

/** Runs one round under a deadline; a round that overruns or throws is counted, cut off, and the run moves on. */
async function runRound(kind: KindTotals, n: number, deadlineMs: number, body: (r: RoundResult, signal: AbortSignal) => Promise<string>): Promise<void> {
  const r = new RoundResult();
  const ac = new AbortController();
  current = ac;
  const started = Date.now();
  const running = body(r, ac.signal);
  let detail: string;
  try {
    const out = await withDeadline(running, deadlineMs);
    if (out === TIMED_OUT) {
      r.add("stuck_rounds", 1, `no end within ${deadlineMs / 1000} s`);
      detail = "stuck";
    } else {
      detail = out;
    }
  } catch (err) {
    r.add("stuck_rounds", 1, `failed: ${String(err).slice(0, 500)}`);
    detail = `failed: ${String(err).split("\n")[0]}`;
  }
  ac.abort();
  if (r.counts.stuck_rounds > 0) {
    // Everything the round does is bounded; let it unwind before the next one starts afresh.
    await withDeadline(running.catch(() => ""), 60_000);
    await killAllServers();
  }
  if (interrupted) return;
  kind.add(r, n);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  say(`${kind.kind.padEnd(6)} ${String(n).padStart(3)}/${rounds} ${secs.padStart(5)}s  ${r.verdict()}  ${detail}`);
  for (const e of r.evidence.slice(0, 6)) say(`         ${e.slice(0, 400)}`);
}

async function crashRounds(kind: KindTotals): Promise<void> {
  crashDb = await createTestDatabase();
  const dataDir = await mkdtemp(join(tmpdir(), "fmsg-faults-crash-"));
  dirs.push(dataDir);
  const state: CrashState = { sql: crashDb.sql, databaseUrl: crashDb.url, dataDir, server: null };
  for (let n = 1; n <= rounds; n++) await runRound(kind, n, CRASH_DEADLINE_MS, (r, signal) => crashRound(state, r, signal));
  await state.server?.kill();
}

async function outageRounds(kind: KindTotals): Promise<void> {
  cluster = await startPrivatePostgres();
  const databaseUrl = await cluster.createDatabase("fmsg_faults");
  outageSql = postgres(databaseUrl, { max: 2, onnotice: () => {}, connect_timeout: 5, connection: { application_name: "fmsg-faults" } });
  const dataDir = await mkdtemp(join(tmpdir(), "fmsg-faults-outage-"));
  dirs.push(dataDir);
  const state: OutageState = { pg: cluster, databaseUrl, dataDir, sql: outageSql, server: null };
  for (let n = 1; n <= rounds; n++) await runRound(kind, n, OUTAGE_DEADLINE_MS, (r, signal) => outageRound(state, n, r, signal));
  await state.server?.kill();
}

const kinds: KindTotals[] = [];
let exitCode = 0;
try {
  say(`faults: ${rounds} round(s) of ${only ?? "each kind"}`);
  if (only !== "outage") {
    const k = new KindTotals("crash");
    kinds.push(k);
    await crashRounds(k);
  }
  if (only !== "crash") {
    const k = new KindTotals("outage");
    kinds.push(k);
    await outageRounds(k);
  }
} catch (err) {
  say(`faults: the script itself failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 2;
} finally {
  await withDeadline(cleanup(), 60_000);
}

for (const k of kinds) {
  if (k.evidence.length === 0) continue;
  say(`\n${k.kind}: what explains the non-zero counts (examples and server lines)`);
  for (const e of k.evidence) say(`  ${e}`);
}
say("");
say(table(kinds));
const summary = summaryLine(kinds);
say(summary.line);
process.exit(exitCode || (summary.clean ? 0 : 1));
