// A/B: this checkout's server against another checkout's (a git worktree of an older commit, with
// node_modules linked), alternating on one fresh database: waves of 10,000 waits (`waiters`), or
// compose + send runs of 5 s at 32 and 128 workers (`compose`). Noise on this 2-core host moves a
// single wave or run by ±20 %; many alternations and their medians show a 10 % change that the
// three runs of a full bench cannot. `read`: wrk on GET /fmsg/:id (3 recipients), 5 s at 32 and 128
// connections per round.
//   git worktree add /tmp/old <commit> && ln -s "$PWD/node_modules" /tmp/old/node_modules
//   bun bench/ab.ts waiters|compose|read /tmp/old [rounds, default 6]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCtx } from "./lib/context.ts";
import { connect, createDatabase, dropDatabase, migrate } from "./lib/db.ts";
import { killAllChildren, startServer } from "./lib/procs.ts";
import { median, raisePriority } from "./lib/util.ts";
import { createDraft, send } from "./lib/api.ts";
import { ensureWrk, wrk } from "./lib/wrk.ts";
import { runOnce } from "./scenarios/compose.ts";
import { openWaits, wave } from "./scenarios/waiters.ts";

raisePriority();
const [what, oldDir, roundsArg] = process.argv.slice(2);
const WHAT = ["waiters", "compose", "read"];
if (!WHAT.includes(what ?? "") || !oldDir) throw new Error("usage: bun bench/ab.ts waiters|compose|read <other checkout> [rounds]");
const rounds = Number(roundsArg ?? 6);
const dbName = `fmsg_bench_ab_${process.pid}`;
const dbUrl = await createDatabase(dbName);
await migrate(dbUrl);
const tmp = mkdtempSync(join(tmpdir(), "fmsg-ab-"));
const ctx = makeCtx(dbName, dbUrl, tmp, { seconds: 5, warmup: 2, runs: 3, conns: [32], poolSize: 8, waiters: 10_000, waiterProcesses: 2, wakeSends: 0, webSockets: 0, webSocketProcesses: 1, attachMiB: 1, contrastCap: 10 });
const env = (d: string) => ctx.serverEnv(join(tmp, d), { FMSG_API_METRICS: "true" });
const neu = await startServer("new", ["bun", "src/main.ts", "serve"], env("new"), "/readyz");
const old = await startServer("old", ["bun", `${oldDir}/src/main.ts`, "serve"], env("old"), "/readyz");
const sql = connect(dbUrl, { max: 2 });
/** Per target and figure, one value per round. */
const res: Record<"old" | "new", Record<string, number[]>> = { new: {}, old: {} };
const record = (name: "old" | "new", figures: Record<string, number>) => {
  for (const [k, v] of Object.entries(figures)) (res[name][k] ??= []).push(v);
  console.log(`${name}: ${Object.entries(figures).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`);
};
/** The read mode's message: sent by one identity to three, read by the second recipient. */
const readPath = async () => {
  await ensureWrk();
  const sender = "@ab.sender@bench.example";
  const id = await createDraft(neu.url, ctx.token(sender), { from: sender, to: ["@ab.one@bench.example", "@ab.two@bench.example", "@ab.three@bench.example"], topic: "A/B", data: "Hello.\n" });
  await send(neu.url, ctx.token(sender), id);
  return { path: `/fmsg/${id}`, token: ctx.token("@ab.two@bench.example") };
};
try {
  const read = what === "read" ? await readPath() : null;
  for (let r = 0; r < rounds; r++) {
    for (const [name, s] of [["old", old], ["new", neu]] as const) {
      if (what === "waiters") {
        const w = await wave(ctx, s, () => openWaits(s), `ab${r}${name}`, sql);
        record(name, { "server CPU after COMMIT ms": w.serverCpuMs, "last answer ms": w.latency.max });
      } else if (read) {
        for (const connections of [32, 128]) {
          const w = await wrk(`${s.url}${read.path}`, { connections, seconds: 5, token: read.token });
          if (w.errors > 0) throw new Error(`${name}: ${w.errors} wrk errors`);
          record(name, { [`req/s at ${connections}`]: w.rps, [`p99 ms at ${connections}`]: w.p99Ms });
        }
      } else {
        for (const workers of [32, 128]) {
          const run = await runOnce(ctx, "api", workers, s);
          record(name, { [`msg/s at ${workers}`]: run.perSecond, [`p99 ms at ${workers}`]: run.p99Ms });
        }
      }
    }
  }
} finally {
  await old.stop();
  await neu.stop();
  await sql.end();
  await dropDatabase(dbName).catch(() => {});
  killAllChildren();
  // The servers' data directories: a compose A/B leaves hundreds of MiB of message folders.
  rmSync(tmp, { recursive: true, force: true });
}
for (const figure of Object.keys(res.new)) {
  const o = median(res.old[figure]!);
  const n = median(res.new[figure]!);
  console.log(`${figure}: old ${o.toFixed(1)}, new ${n.toFixed(1)} (new ÷ old ${(n / o).toFixed(2)}); new ahead in ${res.new[figure]!.filter((v, i) => (/msg\/s|req\/s/.test(figure) ? v > res.old[figure]![i]! : v < res.old[figure]![i]!)).length} of ${rounds}`);
}
process.exit(0);
