// `bun run bench`: every scenario end to end on this machine, against baselines measured in the same run.
// Creates its own database (fmsg_bench_<pid>), seeds it, starts the real server as a separate process,
// drives it with separate load generators, drops the database, and writes
// bench/results/<timestamp>.json, bench/results/<timestamp>.md and BENCHMARKS.md.
// Exits 1 when a goal is missed (the shortfall is printed), 2 when the bench itself failed.
//
//   bun run bench                   full run (rewrites BENCHMARKS.md)
//   bun run bench --quick           short smoke run (1 s runs, fewer waiters); BENCHMARKS.md untouched
//   bun run bench --only=read,inbox selected scenarios (read inbox compose journal feed waiters websockets attachment footprint instances growth)
//   bun run bench --render=bench/results/<timestamp>.json
//                                   re-renders BENCHMARKS.md from a saved full run (after editing
//                                   bench/ANALYSIS.md), without measuring anything
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { makeCtx, type ScenarioResult, type Settings } from "./lib/context.ts";
import { connect, createDatabase, createdDatabases, dropDatabase, migrate, seed, ADMIN_URL } from "./lib/db.ts";
import { killAllChildren, startServer, type Server } from "./lib/procs.ts";
import { machine, markdown, packageVersion, shortfalls, summaryTable, type Report } from "./lib/report.ts";
import { pgbenchVersion } from "./lib/pgbench.ts";
import { log, raisePriority } from "./lib/util.ts";
import { ensureWrk } from "./lib/wrk.ts";
import { attachmentScenario } from "./scenarios/attachment.ts";
import { composeScenario } from "./scenarios/compose.ts";
import { feedScenario } from "./scenarios/feed.ts";
import { footprintScenario } from "./scenarios/footprint.ts";
import { growthScenario } from "./scenarios/growth.ts";
import { instancesScenario } from "./scenarios/instances.ts";
import { inboxScenario } from "./scenarios/inbox.ts";
import { journalScenario } from "./scenarios/journal.ts";
import { readScenario } from "./scenarios/read.ts";
import { waitersScenario } from "./scenarios/waiters.ts";
import { webSocketsScenario } from "./scenarios/websockets.ts";

const ALL = ["read", "inbox", "compose", "journal", "feed", "waiters", "websockets", "attachment", "footprint", "instances", "growth"] as const;
type ScenarioId = (typeof ALL)[number];

const args = process.argv.slice(2);
const renderArg = args.find((a) => a.startsWith("--render="));
if (renderArg) {
  const saved = JSON.parse(readFileSync(renderArg.slice("--render=".length), "utf8")) as Report & { started: string };
  const report: Report = { ...saved, started: new Date(saved.started) };
  if (!report.full || report.failures.length > 0) throw new Error("only a complete full run renders BENCHMARKS.md");
  writeFileSync(join(import.meta.dir, "..", "BENCHMARKS.md"), markdown(report, { analysisFile: join(import.meta.dir, "ANALYSIS.md") }));
  process.stdout.write("BENCHMARKS.md re-rendered\n");
  process.exit(0);
}
const quick = args.includes("--quick");
const onlyArg = args.find((a) => a.startsWith("--only="));
const only = onlyArg ? (onlyArg.slice("--only=".length).split(",") as ScenarioId[]) : [...ALL];
for (const id of only) if (!ALL.includes(id)) throw new Error(`unknown scenario "${id}" (${ALL.join(", ")})`);
const full = !quick && !onlyArg;
const envNum = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);

const settings: Settings = {
  seconds: envNum("BENCH_SECONDS", quick ? 1 : 5),
  warmup: envNum("BENCH_WARMUP", quick ? 1 : 2),
  runs: envNum("BENCH_RUNS", quick ? 1 : 3),
  conns: [32, 128],
  poolSize: envNum("BENCH_POOL_SIZE", 8),
  waiters: envNum("BENCH_WAITERS", quick ? 2000 : 10_000),
  waiterProcesses: envNum("BENCH_WAITER_PROCESSES", 2),
  wakeSends: envNum("BENCH_WAKE_SENDS", quick ? 100 : 1000),
  webSockets: envNum("BENCH_WEBSOCKETS", 10_000),
  webSocketProcesses: envNum("BENCH_WEBSOCKET_PROCESSES", 4),
  attachMiB: envNum("BENCH_ATTACH_MIB", quick ? 50 : 200),
  contrastCap: envNum("BENCH_CONTRAST_CAP", 500),
};

// The bench process only stamps times and samples memory (bench/lib/util.ts raisePriority).
raisePriority();

/** The code being measured: HEAD and any uncommitted change to what the server runs (read at the start). */
function gitState(): Report["git"] {
  const out = (cmd: string[]) => new TextDecoder().decode(Bun.spawnSync(cmd, { stderr: "ignore" }).stdout);
  return {
    commit: out(["git", "rev-parse", "--short", "HEAD"]).trim() || "?",
    dirty: out(["git", "status", "--porcelain", "--", "src", "sql", "package.json", "bun.lock"])
      .split("\n")
      .map((l) => l.slice(3).trim())
      .filter(Boolean),
  };
}
const git = gitState();

const started = new Date();
const loadAtStart = loadavg()[0] ?? 0;
const t0 = performance.now();
const dbName = `fmsg_bench_${process.pid}`;
const tmp = mkdtempSync(join(tmpdir(), "fmsg-bench-"));
const scenarios: ScenarioResult[] = [];
const failures: { scenario: string; error: string }[] = [];
let dbCreated = false;
let seedInfo: Report["seed"] = null;
let pgVersion = "?";
let wrkVersion = "?";

async function cleanup(): Promise<void> {
  killAllChildren();
  if (dbCreated) {
    await dropDatabase(dbName).catch((err) => log(`could not drop ${dbName}: ${err}`));
    dbCreated = false;
  }
  for (const name of createdDatabases()) await dropDatabase(name).catch((err) => log(`could not drop ${name}: ${err}`));
  rmSync(tmp, { recursive: true, force: true });
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function scenario(id: string, fn: () => Promise<ScenarioResult>): Promise<void> {
  const s0 = performance.now();
  try {
    scenarios.push(await fn());
    log(`${id} done in ${((performance.now() - s0) / 1000).toFixed(1)} s`);
  } catch (err) {
    const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`${id} FAILED: ${error}`);
    failures.push({ scenario: id, error });
  }
}

let exitCode = 0;
try {
  wrkVersion = await ensureWrk();
  const admin = connect(ADMIN_URL, { max: 1 });
  pgVersion = (await admin<{ v: string }[]>`select current_setting('server_version') as v`)[0]!.v;
  await admin.end({ timeout: 5 });
  log(`database ${dbName}; temp ${tmp}; ${JSON.stringify(settings)}`);
  const dbUrl = await createDatabase(dbName);
  dbCreated = true;
  await migrate(dbUrl);
  seedInfo = await seed(dbUrl);
  const ctx = makeCtx(dbName, dbUrl, tmp, settings);

  const http = only.filter((id) => id === "read" || id === "inbox" || id === "compose" || id === "journal" || id === "feed");
  if (http.length > 0) {
    const dataDir = join(tmp, "data-main");
    mkdirSync(dataDir);
    const ours: Server = await startServer("ours", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir), "/readyz");
    const direct: Server = await startServer("baseline-b", ["bun", "bench/servers/direct.ts"], {
      DATABASE_URL: dbUrl,
      FMSG_API_JWT_SECRET: ctx.secret,
      FMSG_API_DB_POOL_SIZE: String(settings.poolSize),
      FMSG_DATA_DIR: dataDir, // short_text reads the bodies ours wrote
      BENCH_DIRECT_DATA_DIR: join(tmp, "compose-bare"), // scenario 3's body files, apart from ours
    });
    try {
      if (only.includes("read")) await scenario("read", () => readScenario(ctx, ours, direct));
      if (only.includes("inbox")) await scenario("inbox", () => inboxScenario(ctx, ours, direct, { dataDir }));
      if (only.includes("compose")) await scenario("compose", () => composeScenario(ctx, ours, direct));
      if (only.includes("journal")) await scenario("journal", () => journalScenario(ctx, ours));
      if (only.includes("feed")) await scenario("feed", () => feedScenario(ctx, ours));
    } finally {
      await direct.stop();
      await ours.stop();
    }
  }
  if (only.includes("waiters")) {
    const dataDir = join(tmp, "data-waiters");
    mkdirSync(dataDir);
    await scenario("waiters", () => waitersScenario(ctx, dataDir));
  }
  if (only.includes("websockets")) {
    const dataDir = join(tmp, "data-websockets");
    mkdirSync(dataDir);
    await scenario("websockets", () => webSocketsScenario(ctx, dataDir));
  }
  if (only.includes("attachment")) {
    const dataDir = join(tmp, "data-attach");
    mkdirSync(dataDir);
    await scenario("attachment", () => attachmentScenario(ctx, dataDir));
  }
  if (only.includes("footprint")) {
    // Quick runs idle 3 s instead of 10 s before reading the settled RSS.
    await scenario("footprint", () => footprintScenario(ctx, { runs: settings.runs, idleSeconds: quick ? 3 : 10 }));
  }
  if (only.includes("instances")) {
    const dataDir = join(tmp, "data-instances");
    mkdirSync(dataDir);
    await scenario("instances", () => instancesScenario(ctx, dataDir));
  }
  if (only.includes("growth")) {
    // A database of its own, seeded, grown to 2,000,000 messages and dropped (see scenarios/growth.ts).
    await scenario("growth", () => growthScenario({ settings, tmp, dbName }, { quick }));
  }
} catch (err) {
  const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  log(`bench FAILED: ${error}`);
  failures.push({ scenario: "setup", error });
} finally {
  await cleanup();
}

const order = new Map<string, number>(ALL.map((id, i) => [id, i]));
scenarios.sort((a, b) => (order.get(a.id) ?? 99) - (order.get(b.id) ?? 99));
const report: Report = {
  started,
  seconds: (performance.now() - t0) / 1000,
  machine: machine(),
  versions: { bun: Bun.version, postgres: pgVersion, wrk: wrkVersion, pgbench: await pgbenchVersion(), hono: packageVersion("hono"), postgresJs: packageVersion("postgres") },
  git,
  load: { start: loadAtStart, end: loadavg()[0] ?? 0 },
  settings,
  seed: seedInfo,
  scenarios,
  failures,
  full,
};
const stamp = started.toISOString().replace(/[:.]/g, "-");
const resultsDir = join(import.meta.dir, "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, `${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
const md = markdown(report, { analysisFile: join(import.meta.dir, "ANALYSIS.md") });
writeFileSync(join(resultsDir, `${stamp}.md`), md);
if (full && failures.length === 0) writeFileSync(join(import.meta.dir, "..", "BENCHMARKS.md"), md);

process.stdout.write(`\n${summaryTable(scenarios.flatMap((s) => s.figures))}\n\n`);
process.stdout.write(`results: bench/results/${stamp}.json, bench/results/${stamp}.md${full && failures.length === 0 ? ", BENCHMARKS.md" : ""}\n`);
process.stdout.write(`total ${(report.seconds / 60).toFixed(1)} min\n`);
const missed = shortfalls(report);
if (failures.length > 0) exitCode = 2;
else if (missed.length > 0) exitCode = 1;
if (missed.length > 0) {
  process.stdout.write(`\nSHORTFALL (${missed.length}):\n${missed.map((x) => `  - ${x}`).join("\n")}\n`);
}
process.exit(exitCode);
