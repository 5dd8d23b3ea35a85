// Scenario 4 — waiters (issue #4): 10,000 concurrent GET /fmsg/wait?timeout=60 for 10,000 identities
// on one server process (database connections, RSS, commit → all answered), single-waiter wake
// latency over 1,000 sends, and the contrast: how many connections the original design could hold.
import postgres from "postgres";
import { fmtNum, fmtRatio, fmtSpread, mib, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { connect, urlFor } from "../lib/db.ts";
import { spawnGenerators } from "../lib/generators.ts";
import { cpuMsOf, memoryOf, postgresCpu, postgresCpuSince, startServer, type Server } from "../lib/procs.ts";
import { distribution, log, median, sleep, spread, wallMs, type Distribution } from "../lib/util.ts";

export const WAIT_RSS_GOAL_BYTES = 300 * 1000 * 1000; // 300 MB
export const WAIT_ALL_GOAL_MS = 250;
export const WAKE_P99_GOAL_MS = 20;
const DOMAIN = "bench.example";
const PREFIX = "waiter";

/** Requests a floor server (bench/servers/bare-wait*.ts, bare-ws.ts) holds now. */
export async function floorHolding(floor: Server): Promise<number> {
  return ((await (await fetch(`${floor.url}/open`)).json()) as { open: number }).open;
}

export async function openWaits(server: Server): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^fmsg_api_open_waits (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
}

export type Activity = { total: number; listening: number; active: number; rows: { pid: number; state: string; query: string }[] };

export async function activity(sql: ReturnType<typeof connect>, db: string): Promise<Activity> {
  const rows = await sql<{ pid: number; state: string; query: string }[]>`
    select pid, coalesce(state, '') as state, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) as query
    from pg_stat_activity where datname = ${db} and application_name = 'fmsg-webapi' order by pid`;
  return {
    total: rows.length,
    listening: rows.filter((r) => /^\s*listen/i.test(r.query)).length,
    active: rows.filter((r) => r.state === "active").length,
    rows,
  };
}

type GeneratorResult = { answered: number; connectErrors: number; socketErrors: number; closedEarly: number; firstError: string | null; statusCounts: Record<string, number>; arrivals: number[] };

export type WaveResult = Awaited<ReturnType<typeof wave>>;

/**
 * One wave: `n` long polls for fresh identities (@<prefix><i>@…) from the load-generator processes;
 * once `openCount()` reports them all held, one transaction commits one received message per
 * identity; every response's arrival is timed from the moment COMMIT returned.
 */
export async function wave(ctx: Ctx, server: Server, openCount: () => Promise<number>, prefix: string, sql: ReturnType<typeof connect>) {
  const n = ctx.settings.waiters;
  const k = ctx.settings.waiterProcesses;
  const idle = memoryOf(server.pid);
  const gens = await spawnGenerators<GeneratorResult>("waiter", "bench/load/waiters.ts", n, k, (first, count) => ({ port: server.port, secret: ctx.secret, prefix, domain: DOMAIN, first, count, timeout: 60, sinceId: 0, batch: 250, deadlineMs: 30_000, keepAlive: true }));
  try {
    const t0 = Date.now();
    await gens.ready;
    let open = 0;
    while ((open = await openCount()) < n) {
      if (Date.now() - t0 > 90_000) throw new Error(`only ${open} of ${n} waits registered after 90 s`);
      await sleep(100);
    }
    const holdSeconds = (Date.now() - t0) / 1000;
    await sleep(1000); // the registration catch-up queries finish
    const holding = await activity(sql, ctx.dbName);
    const held = memoryOf(server.pid);

    let tIssue = 0;
    await sql.begin(async (tx) => {
      await tx.unsafe(`
        with m as (
          insert into msg (version, time_sent, from_addr, topic, type, size, filepath)
          select 1, extract(epoch from now()), '@sender@remote.example', 'w' || g, 'text/plain', 0, '/bench-wake/none'
          from generate_series(0, ${n - 1}) g
          returning id, topic)
        insert into msg_to (msg_id, addr, time_delivered)
        select id, '@${prefix}' || substr(topic, 2) || '@${DOMAIN}', extract(epoch from now()) from m`);
      tIssue = wallMs();
    });
    const tAck = wallMs();
    // CPU from COMMIT on: the server's own, and PostgreSQL's (notifications sent, confirmations run).
    const serverCpu0 = cpuMsOf(server.pid);
    const pgCpu0 = postgresCpu();
    const all = await gens.results;
    const serverCpuMs = cpuMsOf(server.pid) - serverCpu0;
    const postgresCpuMs = postgresCpuSince(pgCpu0, postgresCpu());
    const after = memoryOf(server.pid);
    const afterActivity = await activity(sql, ctx.dbName);
    const arrivals = all.flatMap((r) => r.arrivals);
    const answered = all.reduce((a, r) => a + r.answered, 0);
    const statusCounts: Record<string, number> = {};
    for (const r of all) for (const [st, c] of Object.entries(r.statusCounts)) statusCounts[st] = (statusCounts[st] ?? 0) + c;
    return {
      n,
      generators: k,
      answered,
      statusCounts,
      errors: all.reduce((a, r) => a + r.connectErrors + r.socketErrors + r.closedEarly, 0),
      firstError: all.find((r) => r.firstError)?.firstError ?? null,
      holdSeconds,
      idle,
      held,
      after,
      holding,
      afterActivity,
      commitMs: tAck - tIssue,
      serverCpuMs,
      postgresCpuMs,
      latency: distribution(arrivals.map((t) => t - tAck)),
      fromIssue: distribution(arrivals.map((t) => t - tIssue)),
    };
  } finally {
    await gens.stop();
  }
}

async function singleWaiter(ctx: Ctx, server: Server, sql: ReturnType<typeof connect>) {
  const address = "@single.waiter@bench.example";
  const headers = { Authorization: `Bearer ${ctx.token(address)}` };
  const warm = 20;
  const fromAck: number[] = [];
  const fromIssue: number[] = [];
  let since = 0;
  for (let i = 0; i < ctx.settings.wakeSends + warm; i++) {
    const response = fetch(`${server.url}/fmsg/wait?since_id=${since}&timeout=60`, { headers }).then((res) => ({ res, at: wallMs() }));
    const deadline = Date.now() + 10_000;
    while ((await openWaits(server)) < 1) {
      if (Date.now() > deadline) throw new Error("the single waiter never registered");
    }
    const t0 = wallMs();
    const [row] = await sql<{ msg_id: number }[]>`
      with m as (
        insert into msg (version, time_sent, from_addr, topic, type, size, filepath)
        values (1, extract(epoch from now()), '@sender@remote.example', 'wake', 'text/plain', 0, '/bench-wake/none')
        returning id)
      insert into msg_to (msg_id, addr, time_delivered) select id, ${address}, extract(epoch from now()) from m
      returning msg_id`;
    const tAck = wallMs();
    const { res, at } = await response;
    const body = (await res.json()) as { has_new: boolean; latest_id: number };
    if (res.status !== 200 || body.latest_id !== row!.msg_id) throw new Error(`wake ${i}: ${res.status} ${JSON.stringify(body)}, expected ${row!.msg_id}`);
    since = body.latest_id;
    if (i >= warm) {
      fromAck.push(at - tAck);
      fromIssue.push(at - t0);
    }
  }
  return { sends: fromAck.length, latency: distribution(fromAck), fromIssue: distribution(fromIssue) };
}

/**
 * The original design: one database connection per waiting request. Opens dedicated connections
 * (each runs LISTEN, as a per-waiter listener would) until PostgreSQL refuses one, capped. Uses a
 * throw-away ordinary role, so the superuser-reserved slots stay free for everyone else on this
 * host, and releases everything at once.
 */
async function contrast(ctx: Ctx, admin: ReturnType<typeof connect>) {
  const [settings] = await admin<{ max_connections: number; reserved: number; others: number }[]>`
    select current_setting('max_connections')::int as max_connections,
           current_setting('superuser_reserved_connections')::int as reserved,
           (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as others`;
  const role = `${ctx.dbName}_contrast`;
  await admin.unsafe(`create role ${role} login`);
  const url = new URL(urlFor(ctx.dbName));
  url.username = role;
  const conns: postgres.Sql[] = [];
  let refusal: string | null = null;
  try {
    while (conns.length < ctx.settings.contrastCap && refusal === null) {
      const batch = Array.from({ length: Math.min(10, ctx.settings.contrastCap - conns.length) }, () =>
        postgres(url.toString(), { max: 1, connect_timeout: 5, onnotice: () => {}, connection: { application_name: "fmsg-bench-contrast" } }),
      );
      const outcomes = await Promise.allSettled(batch.map((c) => c.unsafe("listen fmsg_bench_contrast")));
      outcomes.forEach((o, i) => {
        if (o.status === "fulfilled") conns.push(batch[i]!);
        else {
          refusal ??= String((o.reason as Error)?.message ?? o.reason);
          void batch[i]!.end({ timeout: 1 });
        }
      });
    }
  } finally {
    await Promise.allSettled(conns.map((c) => c.end({ timeout: 2 })));
    await sleep(200);
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
    await admin.unsafe(`drop role if exists ${role}`);
  }
  return { maxConnections: settings!.max_connections, superuserReserved: settings!.reserved, otherClients: settings!.others, held: conns.length, cap: ctx.settings.contrastCap, refusal };
}

/** A wave's answers and their latency after COMMIT, as the progress log prints them. */
const answeredText = (w: WaveResult) =>
  `${w.answered}/${w.n} answered, first ${w.latency.min.toFixed(1)} p50 ${w.latency.p50.toFixed(1)} p99 ${w.latency.p99.toFixed(1)} max ${w.latency.max.toFixed(1)} ms after commit`;
/** The server's and PostgreSQL's CPU from COMMIT to the last answer, as the progress log prints them. */
const cpuText = (w: WaveResult) => `CPU after commit: server ${w.serverCpuMs.toFixed(0)} ms, PostgreSQL ${w.postgresCpuMs.toFixed(0)} ms`;

export async function waitersScenario(ctx: Ctx, dataDir: string): Promise<ScenarioResult> {
  const server = await startServer("ours-waiters", ["bun", "src/main.ts", "serve"], ctx.serverEnv(dataDir, { FMSG_API_METRICS: "true" }), "/readyz");
  const floor = await startServer("baseline-wait", ["bun", "bench/servers/bare-wait.ts"], { DATABASE_URL: ctx.dbUrl });
  const checkedFloor = await startServer("baseline-wait-confirmed", ["bun", "bench/servers/bare-wait-confirmed.ts"], { DATABASE_URL: ctx.dbUrl, FMSG_API_DB_POOL_SIZE: String(ctx.settings.poolSize) });
  const sql = connect(ctx.dbUrl, { max: 2 });
  const ours: WaveResult[] = [];
  const bare: WaveResult[] = [];
  const checked: WaveResult[] = [];
  let single;
  try {
    log(`scenario 4: ${ctx.settings.waiters} concurrent waiters from ${ctx.settings.waiterProcesses} processes, ${ctx.settings.runs} waves each for ours, the bare floor and the floor + confirmation`);
    for (let r = 0; r < ctx.settings.runs; r++) {
      const o = await wave(ctx, server, () => openWaits(server), `w${r}o`, sql);
      ours.push(o);
      log(`waiters ours wave ${r + 1}: ${answeredText(o)} (${o.commitMs.toFixed(0)} ms commit); ${cpuText(o)}; RSS ${mib(o.held.rss).toFixed(1)} MiB; ${o.holding.total} connections (${o.holding.listening} LISTEN)`);
      const b = await wave(ctx, floor, () => floorHolding(floor), `w${r}b`, sql);
      bare.push(b);
      log(`waiters floor wave ${r + 1}: ${answeredText(b)}; ${cpuText(b)}`);
      const k = await wave(ctx, checkedFloor, () => floorHolding(checkedFloor), `w${r}c`, sql);
      checked.push(k);
      log(`waiters floor + confirmation wave ${r + 1}: ${answeredText(k)}; ${cpuText(k)}`);
    }
    log(`scenario 4: single waiter, ${ctx.settings.wakeSends} sends`);
    single = await singleWaiter(ctx, server, sql);
    log(`scenario 4: wake latency p50 ${single.latency.p50.toFixed(2)} ms p99 ${single.latency.p99.toFixed(2)} ms`);
  } finally {
    await checkedFloor.stop();
    await floor.stop();
    await server.stop();
  }
  log("scenario 4: contrast — one connection per waiter");
  let versus;
  try {
    versus = await contrast(ctx, sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
  log(`scenario 4: the original design could hold ${versus.held} waiters (max_connections ${versus.maxConnections})`);

  const n = ctx.settings.waiters;
  const pool = ctx.settings.poolSize;
  const first = ours[0]!;
  const maxConns = Math.max(...ours.flatMap((w) => [w.holding.total, w.afterActivity.total]));
  const listeners = [...new Set(ours.flatMap((w) => [w.holding.listening, w.afterActivity.listening]))];
  const listenerOk = listeners.length === 1 && listeners[0] === 1 && maxConns <= 1 + pool;
  const rssHeld = Math.max(...ours.map((w) => w.held.rss));
  const rssOk = rssHeld < WAIT_RSS_GOAL_BYTES;
  const firstRssOk = first.held.rss < WAIT_RSS_GOAL_BYTES;
  const lastOurs = spread(ours.map((w) => w.latency.max));
  const lastBare = spread(bare.map((w) => w.latency.max));
  const lastChecked = spread(checked.map((w) => w.latency.max));
  const allAnswered = ours.every((w) => w.answered === n && (w.statusCounts["200"] ?? 0) === n);
  const allOk = allAnswered && lastOurs.median <= WAIT_ALL_GOAL_MS;
  const wakeOk = single.latency.p99 < WAKE_P99_GOAL_MS;
  const perWaiterKiB = (first.held.rss - first.idle.rss) / n / 1024;
  const sp = (f: (w: WaveResult) => number, set: WaveResult[] = ours) => fmtSpread(spread(set.map(f)), 1);
  const figures: Figure[] = [
    {
      scenario: "4 Waiters",
      figure: "DB connections while holding",
      conns: `${n} waits`,
      ours: `${maxConns} (${listeners.join("/")} LISTEN + pool)`,
      baseline: `original: ${n} (one per waiter); PostgreSQL holds ${versus.held}`,
      ratio: `${fmtNum(maxConns / n, 4)}`,
      goal: `1 listener, ≤ 1 + pool (${1 + pool})`,
      result: listenerOk ? "PASS" : "MISS",
      shortfall: listenerOk ? undefined : `waiters: ${maxConns} connections, ${listeners.join("/")} listening (goal: one listener plus at most the pool)`,
    },
    {
      scenario: "4 Waiters",
      figure: "server RSS holding, fresh process",
      conns: `${n} waits`,
      ours: `${mib(first.held.rss).toFixed(1)} MiB`,
      baseline: `idle ${mib(first.idle.rss).toFixed(1)} MiB (+${perWaiterKiB.toFixed(1)} KiB/waiter)`,
      ratio: fmtNum(first.held.rss / first.idle.rss, 2),
      goal: "< 300 MB (286.1 MiB)",
      result: firstRssOk ? "PASS" : "MISS",
      shortfall: firstRssOk ? undefined : `waiters RSS ${mib(first.held.rss).toFixed(1)} MiB holding ${n} waits in a fresh process, goal < 300 MB`,
    },
    {
      scenario: "4 Waiters",
      figure: `server RSS holding, max of ${ours.length} back-to-back waves`,
      conns: `${n} waits`,
      ours: `${mib(rssHeld).toFixed(1)} MiB`,
      baseline: `bare floor ${mib(Math.max(...bare.map((w) => w.held.rss))).toFixed(1)} MiB`,
      ratio: fmtNum(rssHeld / Math.max(...bare.map((w) => w.held.rss)), 2),
      goal: "< 300 MB (286.1 MiB)",
      result: rssOk ? "PASS" : "MISS",
      shortfall: rssOk ? undefined : `waiters RSS ${mib(rssHeld).toFixed(1)} MiB holding ${n} waits after ${ours.length - 1} earlier waves (garbage of the earlier waves not yet collected), goal < 300 MB`,
    },
    {
      scenario: "4 Waiters",
      figure: "commit → last of all answered, ms",
      conns: `${n} waits`,
      ours: `${fmtSpread(lastOurs, 1)}${allAnswered ? "" : " (NOT all answered)"}`,
      baseline: `bare floor ${fmtSpread(lastBare, 1)}`,
      ratio: fmtRatio(lastOurs.median / lastBare.median),
      goal: `all ${n} answered ≤ ${WAIT_ALL_GOAL_MS} ms`,
      result: allOk ? "PASS" : "MISS",
      shortfall: allOk
        ? undefined
        : `waiters: ${allAnswered ? "all answered" : "NOT all answered"}, the last ${lastOurs.median.toFixed(1)} ms after commit (median of ${ours.length} waves), goal ≤ ${WAIT_ALL_GOAL_MS} ms; the bare Bun.serve floor in the same run: ${lastBare.median.toFixed(1)} ms`,
    },
    {
      scenario: "4 Waiters",
      figure: "commit → last answered, against the floor that confirms (API §8)",
      conns: `${n} waits`,
      ours: fmtSpread(lastOurs, 1),
      baseline: `floor + confirmation ${fmtSpread(lastChecked, 1)} (${fmtRatio(lastChecked.median / lastBare.median)} × the bare floor)`,
      ratio: fmtRatio(lastOurs.median / lastChecked.median),
      goal: "—",
      result: "info",
    },
    {
      scenario: "4 Waiters",
      figure: "server CPU from COMMIT to the last answer, ms",
      conns: `${n} waits`,
      ours: sp((w) => w.serverCpuMs),
      baseline: `bare floor ${sp((w) => w.serverCpuMs, bare)}; floor + confirmation ${sp((w) => w.serverCpuMs, checked)}`,
      ratio: `${fmtRatio(median(ours.map((w) => w.serverCpuMs)) / median(bare.map((w) => w.serverCpuMs)))}; ${fmtRatio(median(ours.map((w) => w.serverCpuMs)) / median(checked.map((w) => w.serverCpuMs)))}`,
      goal: "—",
      result: "info",
    },
    {
      scenario: "4 Waiters",
      figure: "commit → answer p50 / p99, ms",
      conns: `${n} waits`,
      ours: `${sp((w) => w.latency.p50)} / ${sp((w) => w.latency.p99)}`,
      baseline: `bare floor ${sp((w) => w.latency.p50, bare)} / ${sp((w) => w.latency.p99, bare)}`,
      ratio: `${fmtRatio(median(ours.map((w) => w.latency.p50)) / median(bare.map((w) => w.latency.p50)))} / ${fmtRatio(median(ours.map((w) => w.latency.p99)) / median(bare.map((w) => w.latency.p99)))}`,
      goal: "—",
      result: "info",
    },
    {
      scenario: "4 Waiters",
      figure: "single-waiter wake ms (p50 / p99)",
      conns: `1 × ${single.sends}`,
      ours: `${single.latency.p50.toFixed(2)} / ${single.latency.p99.toFixed(2)}`,
      baseline: "—",
      ratio: "—",
      goal: `p99 < ${WAKE_P99_GOAL_MS} ms`,
      result: wakeOk ? "PASS" : "MISS",
      shortfall: wakeOk ? undefined : `single-waiter wake p99 ${single.latency.p99.toFixed(2)} ms, goal < ${WAKE_P99_GOAL_MS} ms`,
    },
  ];
  const d = (x: Distribution) => [x.min, x.p50, x.p90, x.p99, x.max].map((v) => v.toFixed(1)).join(" / ");
  const cpu = (w: WaveResult) => `${w.serverCpuMs.toFixed(0)} / ${w.postgresCpuMs.toFixed(0)}`;
  /** One row of the wave table; `connections` only for ours (the floors hold no pool). */
  const row = (name: string, w: WaveResult, connections = "—") => [
    name,
    d(w.latency),
    w.commitMs.toFixed(0),
    cpu(w),
    `${w.answered} ${JSON.stringify(w.statusCounts)}`,
    `${mib(w.idle.rss).toFixed(0)} → ${mib(w.held.rss).toFixed(0)} → ${mib(w.after.rss).toFixed(0)}`,
    connections,
  ];
  const waveRows = [
    ...ours.map((w, i) => row(`ours ${i + 1}`, w, `${w.holding.total} (${w.holding.listening} LISTEN) / ${w.afterActivity.total}`)),
    ...bare.map((w, i) => row(`bare floor ${i + 1}`, w)),
    ...checked.map((w, i) => row(`floor + confirmation ${i + 1}`, w)),
  ];
  const markdown = [
    `${n} raw-socket long polls (\`GET /fmsg/wait?timeout=60\`, one fresh identity each, keep-alive as real clients re-arm on the same connection; the sockets are closed after the measurement) from ${first.generators} load-generator processes against one server process (\`FMSG_API_DB_POOL_SIZE=${pool}\`, \`FMSG_API_METRICS=true\` to see the open waits, open-files limit raised in every process). Once all are held, one transaction inserts ${n} received messages (one \`msg_to\` row each, one per identity). Latency is counted from the moment COMMIT returned, per response arrival (wall clock, same host). ${ours.length} waves on the same server process, each alternating with a wave against the **bare floor**: a plain \`Bun.serve\` that holds the same ${n} requests and answers all of them with a fixed body on the first \`new_msg\` notification of its own \`LISTEN\` connection (bench/servers/bare-wait.ts) — no framework, no token check, no routing by address, no query. A third wave each time goes to the **floor + confirmation** (bench/servers/bare-wait-confirmed.ts): the same plain \`Bun.serve\`, but it answers each request from the notifications naming its address once one query per read of its \`LISTEN\` connection has confirmed them (message sent, address among its recipients), as API §8 requires of us — still no framework, no token check, no catch-up query. The bare floor answers before any query could; the second floor shows what the contract's confirmation costs by itself. CPU after COMMIT is read from \`/proc\` (user + system, 10 ms ticks) when COMMIT returns and when the last answer has arrived: the server process's own, and all PostgreSQL processes' together (the notifications sent to every listener on the host, and the confirmation queries).`,
    "",
    table(["Wave", "commit → answer ms: first / p50 / p90 / p99 / last", "COMMIT ms", "CPU ms after COMMIT: server / PostgreSQL", "answered", "RSS MiB idle → holding → after", "connections holding / after"], waveRows),
    "",
    `Single waiter (one identity, re-arming after each answer, mail inserted by SQL in the bench process, ${single.sends} sends after 20 warm-up): commit → answer ms min / p50 / p90 / p99 / max = ${d(single.latency)}; from sending the INSERT: ${d(single.fromIssue)}.`,
    "",
    "Connections of the server while holding the first wave (`pg_stat_activity`, application_name `fmsg-webapi`):",
    "",
    table(["pid", "state", "last query"], first.holding.rows.map((r) => [String(r.pid), r.state, `\`${r.query}\``])),
    "",
    `**Contrast — the original design (one pooled connection per waiter).** PostgreSQL here has \`max_connections = ${versus.maxConnections}\` (\`superuser_reserved_connections = ${versus.superuserReserved}\`; ${versus.otherClients} client connections were already open on the host). Opening dedicated connections that each run \`LISTEN\`, as an ordinary role, until refusal (cap ${versus.cap}): **${versus.held} held**, then refused${versus.refusal ? ` with "${versus.refusal}"` : ""}. So that design holds at most ${versus.held} of the ${n} waiters — and only by starving every other request of connections — where ours holds all ${n} on ${maxConns}.`,
  ].join("\n");
  return { id: "waiters", title: "4. Waiters (/fmsg/wait)", figures, markdown, data: { ours, bare, checked, single, contrast: versus } };
}
