// Scenario 3 — compose and send: POST /fmsg then POST /fmsg/:id/send (2 recipients, 1 KiB body) from
// N concurrent workers, against the same pair of statements run directly with postgres.js, the
// same plus the durable body file our server writes, and that work behind the same two requests in
// baseline (b), a bare Bun.serve (the HTTP floor).
import { fmtNum, fmtRatio, fmtSpread, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { connect, SEED } from "../lib/db.ts";
import { spawnChild, type Server } from "../lib/procs.ts";
import { log, spread, type Spread } from "../lib/util.ts";

type Mode = "api" | "direct" | "direct-file" | "bare-http";
const SEED_MESSAGES = `${(SEED.messages / 1000).toFixed(0)},000+`;
export type Run = { perSecond: number; p50Ms: number; p99Ms: number; pairs: number; errors: number; firstError: string | null };

const NAMES: Record<Mode, string> = {
  api: "ours: POST /fmsg + POST /fmsg/:id/send",
  direct: "baseline: the SQL pair via postgres.js",
  "direct-file": "baseline′: SQL pair + durable 1 KiB file",
  "bare-http": "(b) bare HTTP: Bun.serve + SQL pair + file",
};
const MODES: Mode[] = ["direct", "direct-file", "bare-http", "api"];

/**
 * One measured run of the compose load generator in `mode` (also used by the journal and growth
 * scenarios); "api" and "bare-http" both drive `server` over HTTP, the caller picks which one.
 */
export async function runOnce(ctx: Ctx, mode: Mode, workers: number, server: Server): Promise<Run> {
  const from = "@compose.sender@bench.example";
  const opts = {
    mode: mode === "bare-http" ? "api" : mode,
    workers,
    warmupSeconds: ctx.settings.warmup > 0 ? 1 : 0,
    seconds: ctx.settings.seconds,
    url: server.url,
    token: ctx.token(from),
    databaseUrl: ctx.dbUrl,
    poolSize: ctx.settings.poolSize,
    dataDir: `${ctx.tmp}/compose-direct`,
    from,
    to: ["@compose.one@bench.example", "@compose.two@bench.example"],
    bodyBytes: 1024,
  };
  let result: Run | null = null;
  const child = await spawnChild(`compose-${mode}`, ["bun", "bench/load/compose.ts", JSON.stringify(opts)], { BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, {
    onStdoutLine: (line) => {
      if (line.startsWith("RESULT ")) result = JSON.parse(line.slice(7)) as Run;
    },
  });
  const code = await child.finished;
  await child.stop();
  if (code !== 0 || !result) throw new Error(`compose load generator (${mode}) failed (${code}):\n${child.output()}`);
  return result;
}

/** `bare` is baseline (b), bench/servers/direct.ts, started with BENCH_DIRECT_DATA_DIR. */
export async function composeScenario(ctx: Ctx, ours: Server, bare: Server): Promise<ScenarioResult> {
  const serverFor = (mode: Mode) => (mode === "bare-http" ? bare : ours);
  const raw: Record<Mode, Record<number, Run[]>> = { api: {}, direct: {}, "direct-file": {}, "bare-http": {} };
  for (const c of ctx.settings.conns) {
    for (const mode of MODES) raw[mode][c] = [];
    for (let r = 0; r < ctx.settings.runs; r++) {
      for (const mode of MODES) {
        const res = await runOnce(ctx, mode, c, serverFor(mode));
        raw[mode][c]!.push(res);
        log(`compose ${mode} workers=${c} run ${r + 1}: ${res.perSecond.toFixed(0)} msg/s p99 ${Number(res.p99Ms ?? Number.NaN).toFixed(1)} ms${res.errors ? ` errors ${res.errors} (${res.firstError})` : ""}`);
      }
    }
  }
  const cells: Record<Mode, Record<number, { rate: Spread; p50: Spread; p99: Spread; errors: number }>> = { api: {}, direct: {}, "direct-file": {}, "bare-http": {} };
  for (const mode of MODES) {
    for (const c of ctx.settings.conns) {
      const runs = raw[mode][c]!;
      cells[mode][c] = {
        rate: spread(runs.map((x) => x.perSecond)),
        p50: spread(runs.map((x) => x.p50Ms)),
        p99: spread(runs.map((x) => x.p99Ms)),
        errors: runs.reduce((a, x) => a + x.errors, 0),
      };
    }
  }
  // What-if: fmsgd's trigger trg_msg_prevent_unreferenceable_parent looks for replies with
  // `select 1 from msg r where r.pid = new.id` on every send, and msg.pid has no index, so every
  // send scans the whole msg table. The same load once more with a temporary index on msg (pid)
  // shows what that costs (the index is dropped again; the schema is not changed).
  const whatIfConns = ctx.settings.conns[0]!;
  const whatIf: Partial<Record<Mode, Run>> = {};
  const admin = connect(ctx.dbUrl, { max: 1 });
  try {
    await admin.unsafe("create index fmsg_bench_whatif_msg_pid_idx on msg (pid)");
    for (const mode of MODES) {
      whatIf[mode] = await runOnce(ctx, mode, whatIfConns, serverFor(mode));
      log(`compose what-if (index on msg.pid) ${mode} workers=${whatIfConns}: ${whatIf[mode]!.perSecond.toFixed(0)} msg/s p99 ${Number(whatIf[mode]!.p99Ms ?? Number.NaN).toFixed(1)} ms`);
    }
  } finally {
    await admin.unsafe("drop index if exists fmsg_bench_whatif_msg_pid_idx").catch(() => {});
    await admin.end({ timeout: 5 });
  }

  const figures: Figure[] = [];
  const rows: string[][] = [];
  const ratios: string[][] = [];
  for (const c of ctx.settings.conns) {
    const o = cells.api[c]!;
    const d = cells.direct[c]!;
    const f = cells["direct-file"][c]!;
    const b = cells["bare-http"][c]!;
    figures.push({
      scenario: "3 Compose and send",
      figure: "messages/s",
      conns: `${c} workers`,
      ours: fmtSpread(o.rate),
      baseline: `SQL pair ${fmtSpread(d.rate)}; +file ${fmtSpread(f.rate)}`,
      ratio: `${fmtRatio(o.rate.median / d.rate.median)}; ${fmtRatio(o.rate.median / f.rate.median)}`,
      goal: "—",
      result: "info",
    });
    figures.push({
      scenario: "3 Compose and send",
      figure: "p99 ms (pair)",
      conns: `${c} workers`,
      ours: fmtSpread(o.p99, 1),
      baseline: `SQL pair ${fmtSpread(d.p99, 1)}; +file ${fmtSpread(f.p99, 1)}`,
      ratio: `${fmtRatio(o.p99.median / d.p99.median)}; ${fmtRatio(o.p99.median / f.p99.median)}`,
      goal: "—",
      result: "info",
    });
    figures.push({
      scenario: "3 Compose and send",
      figure: "messages/s vs (b) bare HTTP",
      conns: `${c} workers`,
      ours: fmtSpread(o.rate),
      baseline: `(b) ${fmtSpread(b.rate)}`,
      ratio: `${fmtRatio(o.rate.median / b.rate.median)}; (b) ÷ +file ${fmtRatio(b.rate.median / f.rate.median)}`,
      goal: "—",
      result: "info",
    });
    figures.push({
      scenario: "3 Compose and send",
      figure: "p99 ms (pair) vs (b) bare HTTP",
      conns: `${c} workers`,
      ours: fmtSpread(o.p99, 1),
      baseline: `(b) ${fmtSpread(b.p99, 1)}`,
      ratio: fmtRatio(o.p99.median / b.p99.median),
      goal: "—",
      result: "info",
    });
    for (const mode of MODES) {
      const cell = cells[mode][c]!;
      rows.push([NAMES[mode], String(c), fmtSpread(cell.rate), fmtSpread(cell.p50, 1), fmtSpread(cell.p99, 1), String(cell.errors)]);
    }
    const rate = (x: { rate: Spread }, y: { rate: Spread }) => fmtRatio(x.rate.median / y.rate.median);
    ratios.push([String(c), rate(o, d), rate(o, f), rate(o, b), rate(b, f)]);
  }
  const wi = (m: Mode) => whatIf[m]!;
  figures.push({
    scenario: "3 Compose and send",
    figure: "messages/s if msg(pid) had an index (what-if, 1 run)",
    conns: `${whatIfConns} workers`,
    ours: fmtNum(wi("api").perSecond),
    baseline: `SQL pair ${fmtNum(wi("direct").perSecond)}; +file ${fmtNum(wi("direct-file").perSecond)}`,
    ratio: `${fmtRatio(wi("api").perSecond / wi("direct").perSecond)}; ${fmtRatio(wi("api").perSecond / wi("direct-file").perSecond)}`,
    goal: "—",
    result: "info",
  });
  for (const mode of MODES) {
    const r = wi(mode);
    rows.push([`${NAMES[mode]} — what-if: index on msg (pid)`, String(whatIfConns), fmtNum(r.perSecond), fmtNum(r.p50Ms, 1), fmtNum(r.p99Ms, 1), String(r.errors)]);
  }
  const markdown = [
    `Each worker loops: create a draft (2 recipients, 1 KiB text body), then send it; one figure per pair. Bun load generator (a separate process, fetch keep-alive), ${ctx.settings.runs} runs × ${ctx.settings.seconds} s each after a 1 s warm-up; median (min–max). The baseline runs \`begin; insert msg … returning id; insert msg_to … unnest; commit\` then \`update msg set time_sent … where time_sent is null\` with a postgres.js pool of the server's size; baseline′ adds the body file exactly as the server writes it (temp file, fsync, rename inside the transaction, fsync of the folder). (b) bare HTTP does baseline′'s work (same SQL, same file) behind the same two requests, driven by the same load generator as ours: a bare \`Bun.serve\` (bench/servers/direct.ts) that verifies the token with Web Crypto and reads the JSON body, no framework — what HTTP alone costs on this machine. Ratios of messages/s (medians): ours ÷ SQL pair; ours ÷ SQL pair + file; in the (b) figures ours ÷ (b) and (b) ÷ SQL pair + file, the HTTP floor's share of baseline′.`,
    "",
    table(["Target", "Workers", "messages/s", "p50 ms", "p99 ms", "errors"], rows),
    "",
    table(["Workers", "ours ÷ SQL pair", "ours ÷ SQL pair + file", "ours ÷ (b) bare HTTP", "(b) bare HTTP ÷ SQL pair + file"], ratios),
    "",
    `The what-if rows (one run each) repeat the ${whatIfConns}-worker load with a temporary \`create index on msg (pid)\`, dropped right after: fmsgd's trigger \`trg_msg_prevent_unreferenceable_parent\` (sql/001_fmsgd.sql) runs \`select 1 from msg r where r.pid = new.id\` on every send, and without that index it is a sequential scan of the whole \`msg\` table (${SEED_MESSAGES} rows here).`,
  ].join("\n");
  return { id: "compose", title: "3. Compose and send", figures, markdown, data: { raw, cells, whatIf } };
}
