// Scenario 7 — WebSocket fan-out (issue #15): 10,000 sockets on GET /fmsg/ws from several client
// processes, one received message to all of them, commit → last frame, the database connections used
// while holding them, beside a bare Bun.serve WebSocket floor in the same run.
import { fmtNum, fmtRatio, fmtSpread, mib, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { connect } from "../lib/db.ts";
import { spawnGenerators } from "../lib/generators.ts";
import { memoryOf, startServer, type Server } from "../lib/procs.ts";
import { distribution, log, sleep, spread, wallMs, type Distribution } from "../lib/util.ts";
import { activity, floorHolding, type Activity } from "./waiters.ts";

const DOMAIN = "bench.example";
/** A message holds at most 255 `to` recipients: the sockets are spread over this many identities. */
const IDENTITIES = 250;

type GeneratorResult = { framed: number; frameBytes: number; wrongFrames: number; openErrors: number; closedEarly: number; firstError: string | null; arrivals: number[] };

async function openSockets(server: Server): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^fmsg_api_open_websockets (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
}

type Wave = { n: number; generators: number; framed: number; frameBytes: number; wrong: number; errors: number; firstError: string | null; holdSeconds: number; idleRss: number; heldRss: number; holding: Activity | null; latency: Distribution };

/**
 * One wave: `n` sockets over IDENTITIES fresh identities from the generator processes; once
 * `openCount()` reports them all open, one transaction commits one received message to every
 * identity (as fmsgd stores a delivery); each socket's first frame is timed from COMMIT's return.
 */
async function wave(ctx: Ctx, server: Server, openCount: () => Promise<number>, prefix: string, sql: ReturnType<typeof connect>, ours: boolean): Promise<Wave> {
  const n = ctx.settings.webSockets;
  const k = ctx.settings.webSocketProcesses;
  const idleRss = memoryOf(server.pid).rss;
  const gens = await spawnGenerators<GeneratorResult>("websocket", "bench/load/websockets.ts", n, k, (first, count) => ({ url: `${server.url.replace(/^http/, "ws")}/fmsg/ws`, secret: ctx.secret, prefix, domain: DOMAIN, identities: IDENTITIES, first, count, batch: 250, deadlineMs: 30_000 }));
  try {
    const t0 = Date.now();
    await gens.ready;
    let open = 0;
    while ((open = await openCount()) < n) {
      if (Date.now() - t0 > 90_000) throw new Error(`only ${open} of ${n} sockets open after 90 s`);
      await sleep(100);
    }
    const holdSeconds = (Date.now() - t0) / 1000;
    const holding = ours ? await activity(sql, ctx.dbName) : null;
    const heldRss = memoryOf(server.pid).rss;
    await sql.begin(async (tx) => {
      await tx.unsafe(`
        with m as (
          insert into msg (version, time_sent, from_addr, topic, type, size, filepath)
          values (1, extract(epoch from now()), '@sender@remote.example', 'fan-out', 'text/plain', 0, '/bench-ws/none')
          returning id)
        insert into msg_to (msg_id, addr, time_delivered)
        select m.id, '@${prefix}' || g || '@${DOMAIN}', extract(epoch from now()) from m, generate_series(0, ${IDENTITIES - 1}) g`);
    });
    const tAck = wallMs();
    const all = await gens.results;
    const arrivals = all.flatMap((r) => r.arrivals);
    return {
      n,
      generators: k,
      framed: all.reduce((a, r) => a + r.framed, 0),
      frameBytes: Math.max(...all.map((r) => r.frameBytes)),
      wrong: all.reduce((a, r) => a + r.wrongFrames, 0),
      errors: all.reduce((a, r) => a + r.openErrors + r.closedEarly, 0),
      firstError: all.find((r) => r.firstError)?.firstError ?? null,
      holdSeconds,
      idleRss,
      heldRss,
      holding,
      latency: distribution(arrivals.map((t) => t - tAck)),
    };
  } finally {
    await gens.stop();
    // The next wave starts from no open socket.
    const deadline = Date.now() + 30_000;
    while ((await openCount().catch(() => 0)) > 0 && Date.now() < deadline) await sleep(100);
  }
}

export async function webSocketsScenario(ctx: Ctx, dataDir: string): Promise<ScenarioResult> {
  const server = await startServer("ours-websockets", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir, { FMSG_API_METRICS: "true" }), "/readyz");
  const floor = await startServer("baseline-ws", ["bun", "bench/servers/bare-ws.ts"], { DATABASE_URL: ctx.dbUrl });
  const sql = connect(ctx.dbUrl, { max: 2 });
  const ours: Wave[] = [];
  const bare: Wave[] = [];
  try {
    log(`scenario 7: ${ctx.settings.webSockets} WebSockets from ${ctx.settings.webSocketProcesses} processes over ${IDENTITIES} identities, ${ctx.settings.runs} waves each for ours and the bare floor`);
    for (let r = 0; r < ctx.settings.runs; r++) {
      const o = await wave(ctx, server, () => openSockets(server), `ws${r}o`, sql, true);
      ours.push(o);
      log(`websockets ours wave ${r + 1}: ${o.framed}/${o.n} framed (${o.wrong} wrong), first ${o.latency.min.toFixed(1)} p50 ${o.latency.p50.toFixed(1)} p99 ${o.latency.p99.toFixed(1)} last ${o.latency.max.toFixed(1)} ms after commit; RSS ${mib(o.heldRss).toFixed(1)} MiB; ${o.holding?.total} connections (${o.holding?.listening} LISTEN)`);
      const b = await wave(ctx, floor, () => floorHolding(floor), `ws${r}b`, sql, false);
      bare.push(b);
      log(`websockets floor wave ${r + 1}: ${b.framed}/${b.n} framed, first ${b.latency.min.toFixed(1)} p50 ${b.latency.p50.toFixed(1)} p99 ${b.latency.p99.toFixed(1)} last ${b.latency.max.toFixed(1)} ms after commit`);
    }
  } finally {
    await floor.stop();
    await server.stop();
    await sql.end({ timeout: 5 });
  }

  const n = ctx.settings.webSockets;
  const pool = ctx.settings.poolSize;
  const maxConns = Math.max(...ours.map((w) => w.holding?.total ?? 0));
  const listeners = [...new Set(ours.map((w) => w.holding?.listening ?? 0))];
  const connsOk = listeners.length === 1 && listeners[0] === 1 && maxConns <= 1 + pool;
  const lastOurs = spread(ours.map((w) => w.latency.max));
  const lastBare = spread(bare.map((w) => w.latency.max));
  const allFramed = ours.every((w) => w.framed === n && w.wrong === 0 && w.errors === 0);
  const first = ours[0]!;
  const figures: Figure[] = [
    {
      scenario: "7 WebSockets",
      figure: "DB connections while holding",
      conns: `${n} sockets`,
      ours: `${maxConns} (${listeners.join("/")} LISTEN + pool)`,
      baseline: "bare floor: 1 (LISTEN only)",
      ratio: fmtNum(maxConns / n, 4),
      goal: `1 listener, ≤ 1 + pool (${1 + pool})`,
      result: connsOk ? "PASS" : "MISS",
      shortfall: connsOk ? undefined : `websockets: ${maxConns} connections, ${listeners.join("/")} listening (goal: one listener plus at most the pool)`,
    },
    {
      scenario: "7 WebSockets",
      figure: "commit → last frame, ms",
      conns: `${n} sockets`,
      ours: `${fmtSpread(lastOurs, 1)}${allFramed ? "" : " (NOT all framed)"}`,
      baseline: `bare floor ${fmtSpread(lastBare, 1)}`,
      ratio: fmtRatio(lastOurs.median / lastBare.median),
      // No latency goal was set for this scenario; every socket must get its frame.
      goal: `all ${n} framed`,
      result: allFramed ? "PASS" : "MISS",
      shortfall: allFramed ? undefined : `websockets: NOT every socket got its frame (${first.framed}/${n}, ${first.wrong} wrong, ${first.errors} errors${first.firstError ? `: ${first.firstError}` : ""})`,
    },
    {
      scenario: "7 WebSockets",
      figure: "server RSS holding",
      conns: `${n} sockets`,
      ours: `${mib(first.heldRss).toFixed(1)} MiB`,
      baseline: `bare floor ${mib(bare[0]!.heldRss).toFixed(1)} MiB`,
      ratio: fmtRatio(first.heldRss / bare[0]!.heldRss),
      goal: "—",
      result: "info",
    },
  ];
  const d = (x: Distribution) => [x.min, x.p50, x.p90, x.p99, x.max].map((v) => v.toFixed(1)).join(" / ");
  const rows = [
    ...ours.map((w, i) => [`ours ${i + 1}`, d(w.latency), `${w.framed}${w.wrong ? ` (${w.wrong} wrong)` : ""}${w.errors ? `, ${w.errors} errors` : ""}`, `${mib(w.idleRss).toFixed(0)} → ${mib(w.heldRss).toFixed(0)}`, `${w.holding?.total} (${w.holding?.listening} LISTEN)`]),
    ...bare.map((w, i) => [`bare floor ${i + 1}`, d(w.latency), `${w.framed}`, `${mib(w.idleRss).toFixed(0)} → ${mib(w.heldRss).toFixed(0)}`, "1 (LISTEN)"]),
  ];
  const markdown = [
    `${n} WebSockets on \`GET /fmsg/ws\` (Bun's WebSocket client, token in the Authorization header) from ${first.generators} load-generator processes, spread over ${IDENTITIES} identities (${n / IDENTITIES} sockets each: a message holds at most 255 \`to\` recipients), against one server process (\`FMSG_API_DB_POOL_SIZE=${pool}\`). Once all are open, one transaction inserts one received message addressed to all ${IDENTITIES} identities, as fmsgd stores a delivery; its \`new_msg\` NOTIFYs reach the server's one LISTEN connection, and every socket gets the message object as a frame. Latency per socket is counted from the moment COMMIT returned to its first frame's arrival (wall clock, same host). Our frame is the whole message object with its ${IDENTITIES} recipients and their delivery states (${fmtNum(first.frameBytes)} bytes); the floor's is ${fmtNum(bare[0]!.frameBytes)} bytes. The **bare floor** (bench/servers/bare-ws.ts) is a plain \`Bun.serve\` WebSocket server that sends one fixed frame to every open socket on the first \`new_msg\` notification of its own LISTEN connection: no framework, no token check, no routing by address, no query, no message object.`,
    "",
    table(["Wave", "commit → frame ms: first / p50 / p90 / p99 / last", "framed", "RSS MiB idle → holding", "connections holding"], rows),
  ].join("\n");
  return { id: "websockets", title: "7. WebSocket fan-out (/fmsg/ws)", figures, markdown, data: { ours, bare } };
}
