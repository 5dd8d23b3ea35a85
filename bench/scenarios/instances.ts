// Scenario 11 — several instances: GET /fmsg/:id on one instance, and on two instances of the same
// database and data directory sharing their rate limit in Redis, driven with client-side round
// robin (half the connections to each). On 2 cores no gain is expected; the point is that nothing
// gets slower than the one-instance figure beyond what the shared limit itself costs.
import { attach, createDraft, getText, send } from "../lib/api.ts";
import { fmtRatio, fmtSpread, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { wrkMatrix, type Target } from "../lib/matrix.ts";
import { startServer, type Server } from "../lib/procs.ts";
import { log } from "../lib/util.ts";
import { wrk, type WrkResult } from "../lib/wrk.ts";

/** The machine's Redis, a database number of its own; keys expire by themselves (token buckets). */
const REDIS = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/13";

/**
 * One wrk process whose two threads connect to one instance each (half the connections each), as a
 * client-side round robin: the same load generator, threads and statistics as the one-instance runs.
 */
function roundRobin(urls: [string, string], connections: number, seconds: number, token: string): Promise<WrkResult> {
  const spread = urls.map((u) => new URL(u).host);
  return wrk(urls[0], { connections: Math.max(2, connections), seconds, token, threads: 2, spread });
}

export async function instancesScenario(ctx: Ctx, dataDir: string): Promise<ScenarioResult> {
  const shared = { FMSG_API_RATE_STORE: REDIS };
  const servers: Server[] = [];
  try {
    const alone = await startServer("ours-alone", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir), "/readyz");
    servers.push(alone);
    const a = await startServer("ours-a", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir, shared), "/readyz");
    servers.push(a);
    const b = await startServer("ours-b", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir, shared), "/readyz");
    servers.push(b);
    // The second process alone, without the shared limit: what two instances cost on these cores.
    const second = await startServer("ours-second", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir), "/readyz");
    servers.push(second);

    const sender = "@instances.sender@bench.example";
    const reader = "@instances.reader@bench.example";
    const id = await createDraft(a.url, ctx.token(sender), { from: sender, to: [reader, "@instances.other@bench.example"], topic: "Two instances", data: "Read through either instance.\n" });
    await attach(a.url, ctx.token(sender), id, "notes.pdf", crypto.getRandomValues(new Uint8Array(4096)), "application/pdf");
    await send(a.url, ctx.token(sender), id);
    const token = ctx.token(reader);
    const path = `/fmsg/${id}`;
    const bodies = await Promise.all([alone, a, b, second].map((s) => getText(s.url, path, token)));
    if (new Set(bodies).size !== 1) throw new Error("the instances answer the same message differently");

    log(`scenario 11: GET ${path} — one instance; one instance with the Redis limit; two instances (Redis limit), round robin`);
    const targets: Target[] = [
      { name: "one", url: `${alone.url}${path}`, token },
      { name: "oneRedis", url: `${a.url}${path}`, token },
      { name: "twoLocal", run: (c, s) => roundRobin([`${alone.url}${path}`, `${second.url}${path}`], c, s, token) },
      { name: "two", run: (c, s) => roundRobin([`${a.url}${path}`, `${b.url}${path}`], c, s, token) },
    ];
    const m = await wrkMatrix("instances", targets, ctx.settings);

    const figures: Figure[] = [];
    const rows: string[][] = [];
    const names: Record<string, string> = {
      one: "one instance (in-process limit)",
      oneRedis: "one instance (limit in Redis)",
      twoLocal: "two instances (each its own in-process limit), half the connections each",
      two: "two instances (limit in Redis), half the connections each",
    };
    for (const c of ctx.settings.conns) {
      const one = m.one![c]!;
      const two = m.two![c]!;
      figures.push({
        scenario: "11 Several instances",
        figure: "read req/s, two instances (round robin) vs one",
        conns: String(c),
        ours: fmtSpread(two.rps),
        baseline: `one ${fmtSpread(one.rps)}; one, limit in Redis ${fmtSpread(m.oneRedis![c]!.rps)}; two, in-process limits ${fmtSpread(m.twoLocal![c]!.rps)}`,
        ratio: fmtRatio(two.rps.median / one.rps.median),
        goal: "—",
        result: "info",
      });
      for (const t of ["one", "oneRedis", "twoLocal", "two"]) {
        const cell = m[t]![c]!;
        rows.push([names[t]!, String(c), fmtSpread(cell.rps), fmtSpread(cell.p50, 2), fmtSpread(cell.p99, 2), String(cell.errors)]);
      }
    }
    const markdown = [
      `GET \`${path}\` as a recipient, on four servers of one database and data directory: two with the in-process rate limit, and two whose limit lives in Redis (\`FMSG_API_RATE_STORE=${REDIS}\`). A pair is loaded by one wrk whose two threads connect to one server each (client-side round robin, half the connections each). wrk, ${ctx.settings.runs} × ${ctx.settings.seconds} s per cell after a ${ctx.settings.warmup} s warm-up; median (min–max). On 2 cores two processes cannot add CPU: the figure shows what a second instance and the shared limit cost, not a gain.`,
      "",
      table(["Target", "Conns", "req/s", "p50 ms", "p99 ms", "errors"], rows),
    ].join("\n");
    return { id: "instances", title: "11. Several instances", figures, markdown, data: { messageId: id, matrix: m } };
  } finally {
    for (const s of servers.reverse()) await s.stop();
  }
}
