// A/B for the wake-up wave: this checkout's server against another checkout's (a git worktree of an
// older commit, with node_modules linked), waves of 10,000 waits alternating between the two on one
// fresh database. Noise on this 2-core host moves a single wave by ±20 %; alternating many waves and
// comparing medians shows a 10 % change that three waves of the full run cannot.
//   git worktree add /tmp/old <commit> && ln -s "$PWD/node_modules" /tmp/old/node_modules
//   bun bench/ab-waiters.ts /tmp/old [rounds, default 6]
import { mkdtempSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { makeCtx } from "./lib/context.ts";
import { connect, createDatabase, dropDatabase, migrate } from "./lib/db.ts";
import { killAllChildren, startServer } from "./lib/procs.ts";
import { openWaits, wave } from "./scenarios/waiters.ts";

// As in run.ts: the bench process's clock reads must not queue behind the loaded servers.
try {
  setPriority(-10);
} catch {
  // not permitted
}
const oldDir = process.argv[2];
if (!oldDir) throw new Error("usage: bun bench/ab-waiters.ts <other checkout> [rounds]");
const rounds = Number(process.argv[3] ?? 6);
const dbName = `fmsg_bench_ab_${process.pid}`;
const dbUrl = await createDatabase(dbName);
await migrate(dbUrl);
const tmp = mkdtempSync(join(tmpdir(), "fmsg-ab-"));
const ctx = makeCtx(dbName, dbUrl, tmp, { seconds: 5, warmup: 2, runs: 3, conns: [32], poolSize: 8, waiters: 10_000, waiterProcesses: 2, wakeSends: 0, webSockets: 0, webSocketProcesses: 1, attachMiB: 1, contrastCap: 10 });
const env = (d: string) => ctx.serverEnv(join(tmp, d), { FMSG_API_METRICS: "true" });
const neu = await startServer("new", ["bun", "src/main.ts", "serve"], env("new"), "/readyz");
const old = await startServer("old", ["bun", `${oldDir}/src/main.ts`, "serve"], env("old"), "/readyz");
const sql = connect(dbUrl, { max: 2 });
const res: Record<"old" | "new", { cpu: number; last: number }[]> = { new: [], old: [] };
try {
  for (let r = 0; r < rounds; r++) {
    for (const [name, s] of [["old", old], ["new", neu]] as const) {
      const w = await wave(ctx, s, () => openWaits(s), `ab${r}${name}`, sql);
      res[name].push({ cpu: w.serverCpuMs, last: w.latency.max });
      console.log(`${name} round ${r + 1}: server CPU after COMMIT ${w.serverCpuMs} ms, last answer ${w.latency.max.toFixed(1)} ms, ${w.answered} answered`);
    }
  }
} finally {
  await old.stop();
  await neu.stop();
  await sql.end();
  await dropDatabase(dbName).catch(() => {});
  killAllChildren();
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
for (const k of ["old", "new"] as const) {
  const cpus = res[k].map((x) => x.cpu);
  console.log(`${k}: server CPU after COMMIT median ${med(cpus)} ms (${cpus.join(" ")}), last answer median ${med(res[k].map((x) => x.last)).toFixed(1)} ms`);
}
process.exit(0);
