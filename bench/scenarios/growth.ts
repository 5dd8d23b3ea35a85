// Scenario 10 — growth: read one message, the inbox page, the wait catch-up, compose + send and the
// 10,000-waiter wake at 200,000 and at 2,000,000 messages (plus an inbox of 100,000 messages), each
// beside the baseline it has in its own scenario, measured in the same run. A figure of ours that
// grows more than its baseline's at 10× the data is a finding. Runs in a database of its own: seeded
// like the main one, measured, grown in place with set-based SQL, measured again, dropped.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { latestInboxIds } from "../../src/db/messages.ts";
import { getText } from "../lib/api.ts";
import { captureStatements } from "../lib/capture.ts";
import { fmtNum, makeCtx, type Ctx, type ScenarioResult, type Settings } from "../lib/context.ts";
import { connect, createDatabase, dropDatabase, migrate, seed, SEED } from "../lib/db.ts";
import { wrkMatrix, type Matrix, type Target } from "../lib/matrix.ts";
import { asPgbenchScript, findPgbench, pgbench } from "../lib/pgbench.ts";
import { startServer, type Server } from "../lib/procs.ts";
import { growthReport, size, type Key, type Stage } from "../lib/growth-report.ts";
import { BIG_INBOX, growSeed, seedCounts } from "../lib/seed-bulk.ts";
import { log, spread, type Spread } from "../lib/util.ts";
import { runOnce, type Run } from "./compose.ts";
import { inboxScenario, type Plans } from "./inbox.ts";
import { readScenario } from "./read.ts";
import { floorHolding, openWaits, wave, type WaveResult } from "./waiters.ts";

export type GrowthOptions = { quick: boolean };

const envNum = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);

/**
 * The wait catch-up: `GET /fmsg/wait?since_id=0` for an address with mail answers at once, after one
 * check of latestInboxIds — ours under wrk; the database alone runs that captured statement with
 * pgbench at the same concurrency.
 */
async function catchUp(ctx: Ctx, ours: Server, address: string): Promise<Matrix> {
  const token = ctx.token(address);
  const path = "/fmsg/wait?since_id=0&timeout=1";
  const answer = JSON.parse(await getText(ours.url, path, token)) as { latest_id?: number };
  const sql = connect(ctx.dbUrl, { max: 1 });
  try {
    const [newest] = await sql<{ id: number }[]>`select max(msg_id) as id from msg_to where lower(addr) = lower(${address})`;
    if (answer.latest_id !== newest!.id) throw new Error(`wait catch-up for ${address} answered ${JSON.stringify(answer)}, newest is ${newest!.id}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  const captured = (await captureStatements(ctx.dbUrl, (s) => latestInboxIds(s, [{ addr: address, sinceId: 0 }]))).find((q) => /\bunnest\b/.test(q.query));
  if (!captured) throw new Error("could not capture the statement of latestInboxIds");
  const statement = asPgbenchScript(captured.query, captured.params);
  const targets: Target[] = [{ name: "ours", url: `${ours.url}${path}`, token }];
  if (await findPgbench()) {
    targets.unshift({
      name: "db",
      selfWarming: true,
      run: async (connections, seconds) => {
        const r = await pgbench(ctx.dbUrl, statement, { clients: connections, seconds, warmup: ctx.settings.warmup, tmp: ctx.tmp });
        return { rps: r.tps, p50Ms: r.p50Ms, p90Ms: Number.NaN, p99Ms: r.p99Ms, maxMs: Number.NaN, requests: r.transactions, errors: 0, statusErrors: 0 };
      },
    });
  }
  return wrkMatrix(`catch-up ${address}`, targets, ctx.settings);
}

/** Runs `fn`; a failure is recorded in the stage (and the report) instead of ending the scenario. */
async function attempt(stage: Stage, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`growth ${stage.label}: ${what} FAILED: ${message}`);
    stage.errors.push(`${what}: ${message.split("\n")[0]}`);
  }
}

async function measure(ctx: Ctx, label: string, withBigInbox: boolean): Promise<Stage> {
  const t0 = performance.now();
  const tag = label.replace(/[^a-z0-9]/gi, "").toLowerCase();
  const stage: Stage = { label, counts: await seedCounts(ctx.dbUrl), values: {}, control: null, plans: {}, errors: [], seconds: 0 };
  const c = ctx.settings.conns[0]!;
  // A baseline that completed nothing (pgbench on a starved host in a 1 s run) is no baseline.
  const usable = (v: Spread | null) => (v && Number.isFinite(v.median) && v.median > 0 ? v : null);
  const put = (key: Key, ours: Spread, base: Spread | null, note?: string) => (stage.values[key] = { ours, base: usable(base), note });
  const database = `a database of ${fmtNum(stage.counts.msg)} messages and ${fmtNum(stage.counts.msg_to)} msg_to rows`;
  log(`growth ${label}: ${database}`);
  const dataDir = join(ctx.tmp, `growth-${tag}`);
  mkdirSync(dataDir, { recursive: true });

  // Fresh server processes at each size: no plan or cache carried over from the smaller database.
  const ours = await startServer(`ours-growth-${tag}`, ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir), "/readyz");
  const direct = await startServer(`baseline-b-growth-${tag}`, ["bun", "bench/servers/direct.ts"], {
    DATABASE_URL: ctx.dbUrl,
    FMSG_API_JWT_SECRET: ctx.secret,
    FMSG_API_DB_POOL_SIZE: String(ctx.settings.poolSize),
    FMSG_DATA_DIR: dataDir,
  });
  try {
    await attempt(stage, "read one message", async () => {
      const m = ((await readScenario(ctx, ours, direct)).data as { matrix: Matrix }).matrix;
      put("read.rps", m.ours![c]!.rps, m.b![c]!.rps);
      put("read.p99", m.ours![c]!.p99, m.b![c]!.p99);
      stage.control = m.a![c]!.rps;
    });
    const inbox = async (prefix: "inbox" | "big", address: string, inboxMessages: number) => {
      const data = (await inboxScenario(ctx, ours, direct, { address, inboxMessages, database, dataDir })).data as { matrix: Matrix; plans: Plans };
      const m = data.matrix;
      const db = m.db?.[c]?.rps.median ? m.db[c] : undefined;
      put(`${prefix}.rps`, m.ours![c]!.rps, m.b![c]!.rps, db ? `DB alone ${fmtNum(db.rps.median)}` : undefined);
      put(`${prefix}.p99`, m.ours![c]!.p99, m.b![c]!.p99, db ? `DB alone ${fmtNum(db.p99.median, 2)}` : undefined);
      stage.plans[address] = data.plans;
    };
    await attempt(stage, "inbox page", () => inbox("inbox", SEED.target, stage.counts.target));
    if (withBigInbox) await attempt(stage, "big inbox page", () => inbox("big", BIG_INBOX, stage.counts.big));
    const wait = async (prefix: "catchup" | "catchupBig", address: string) => {
      const m = await catchUp(ctx, ours, address);
      put(`${prefix}.rps`, m.ours![c]!.rps, m.db?.[c]?.rps ?? null);
      put(`${prefix}.p99`, m.ours![c]!.p99, m.db?.[c]?.p99 ?? null);
    };
    await attempt(stage, "wait catch-up", () => wait("catchup", SEED.target));
    if (withBigInbox) await attempt(stage, "big inbox wait catch-up", () => wait("catchupBig", BIG_INBOX));
    // The writes come last, so every read above saw the database at its nominal size.
    await attempt(stage, "compose + send", async () => {
      const runs: Record<"api" | "direct-file", Run[]> = { api: [], "direct-file": [] };
      for (let r = 0; r < ctx.settings.runs; r++) {
        for (const mode of ["direct-file", "api"] as const) {
          const res = await runOnce(ctx, mode, c, ours);
          runs[mode].push(res);
          log(`growth ${label}: compose ${mode} run ${r + 1}: ${res.perSecond.toFixed(0)} msg/s p99 ${res.p99Ms.toFixed(1)} ms${res.errors ? ` errors ${res.errors} (${res.firstError})` : ""}`);
        }
      }
      const errors = runs.api.reduce((a, x) => a + x.errors, 0) + runs["direct-file"].reduce((a, x) => a + x.errors, 0);
      const note = errors ? `${errors} errors` : undefined;
      put("compose.rate", spread(runs.api.map((x) => x.perSecond)), spread(runs["direct-file"].map((x) => x.perSecond)), note);
      put("compose.p99", spread(runs.api.map((x) => x.p99Ms)), spread(runs["direct-file"].map((x) => x.p99Ms)), note);
    });
  } finally {
    await direct.stop();
    await ours.stop();
  }

  await attempt(stage, "waiters", async () => {
    const server = await startServer(`ours-waiters-growth-${tag}`, ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir, { FMSG_API_METRICS: "true" }), "/readyz");
    const floor = await startServer(`baseline-wait-growth-${tag}`, ["bun", "bench/servers/bare-wait.ts"], { DATABASE_URL: ctx.dbUrl });
    const sql = connect(ctx.dbUrl, { max: 2 });
    const waves: Record<"ours" | "bare", WaveResult[]> = { ours: [], bare: [] };
    try {
      for (let r = 0; r < ctx.settings.runs; r++) {
        const o = await wave(ctx, server, () => openWaits(server), `g${tag}w${r}o`, sql);
        waves.ours.push(o);
        const b = await wave(ctx, floor, () => floorHolding(floor), `g${tag}w${r}b`, sql);
        waves.bare.push(b);
        log(`growth ${label}: waiters wave ${r + 1}: last answered ${o.latency.max.toFixed(1)} ms (${o.answered}/${o.n}), bare floor ${b.latency.max.toFixed(1)} ms`);
      }
    } finally {
      await sql.end({ timeout: 5 });
      await floor.stop();
      await server.stop();
    }
    const unanswered = waves.ours.reduce((a, w) => a + (w.n - (w.statusCounts["200"] ?? 0)), 0);
    const note = unanswered ? `${unanswered} NOT answered 200` : undefined;
    const of = (set: WaveResult[], f: (w: WaveResult) => number) => spread(set.map(f));
    put("wake.last", of(waves.ours, (w) => w.latency.max), of(waves.bare, (w) => w.latency.max), note);
    put("wake.p50", of(waves.ours, (w) => w.latency.p50), of(waves.bare, (w) => w.latency.p50), note);
  });
  stage.seconds = (performance.now() - t0) / 1000;
  log(`growth ${label}: measured in ${stage.seconds.toFixed(1)} s`);
  return stage;
}

export async function growthScenario(run: { settings: Settings; tmp: string; dbName: string }, opts: GrowthOptions): Promise<ScenarioResult> {
  const t0 = performance.now();
  const settings: Settings = {
    ...run.settings,
    conns: [32],
    runs: envNum("BENCH_GROWTH_RUNS", opts.quick ? 1 : 2),
    seconds: envNum("BENCH_GROWTH_SECONDS", opts.quick ? 1 : 3),
    warmup: 1,
  };
  const total = envNum("BENCH_GROWTH_MESSAGES", opts.quick ? 400_000 : 2_000_000);
  const bigInbox = envNum("BENCH_GROWTH_INBOX", opts.quick ? 20_000 : 100_000);
  const name = `${run.dbName}_growth`;
  const url = await createDatabase(name);
  try {
    await migrate(url);
    const seeded = await seed(url);
    const ctx = makeCtx(name, url, run.tmp, settings);
    const small = await measure(ctx, size(SEED.messages), false);
    log(`growth: growing to ${fmtNum(total)} messages (an inbox of ${fmtNum(bigInbox)} for ${BIG_INBOX})`);
    const grown = await growSeed(url, { total, bigInbox });
    const large = await measure(ctx, size(total), true);
    return growthReport({ settings, seeded, grown, small, large, seconds: (performance.now() - t0) / 1000, total, bigInbox });
  } finally {
    await dropDatabase(name).catch((err) => log(`could not drop ${name}: ${err}`));
  }
}
