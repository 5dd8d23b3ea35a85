// Scenario 9 — feed catch-up: one client reads a backlog of 100,000 events through
// GET /fmsg/events?since=… (long-poll pages, each request sent as soon as the last one answered),
// from a journal filled directly in fmsg_api_event (sql/003_events.sql) as its triggers would.
import { fmtNum, fmtSpread, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { connect, type Sql } from "../lib/db.ts";
import type { Server } from "../lib/procs.ts";
import { log, spread } from "../lib/util.ts";

export const FEED_BACKLOG = 100_000;
const READER = "@feed.reader@bench.example";
/** The journal's commit-order lock (sql/003_events.sql): a backlog written without it could interleave with a live writer. */
const JOURNAL_LOCK = 1718449009;

type Run = { events: number; requests: number; seconds: number; perSecond: number };
type FeedPage = { events: { seq: number }[]; next: number };

function skipped(note: string): ScenarioResult {
  log(`feed skipped: ${note}`);
  return {
    id: "feed",
    title: "9. Feed catch-up",
    figures: [{ scenario: "9 Feed catch-up", figure: "events/s, one client", conns: "1 client", ours: "skipped", baseline: "—", ratio: "—", goal: "—", result: "info" }],
    markdown: `Skipped: ${note}`,
    data: { skipped: note },
  };
}

/** The backlog: one event per seeded message for READER, in one transaction under the journal's lock. */
async function fillBacklog(sql: Sql): Promise<{ first: number; last: number }> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${JOURNAL_LOCK})`;
    const [row] = await tx<{ first: number; last: number; n: number }[]>`
      with added as (
        insert into fmsg_api_event (seq, addr, kind, msg_id, time)
        select nextval('fmsg_api_event_seq'), ${READER}, (array['new_msg', 'delivered', 'read', 'recipients_added'])[1 + (m.n % 4)],
          m.id, extract(epoch from now())
        from (select id, row_number() over (order by id) as n from msg order by id limit ${FEED_BACKLOG}) m
        returning seq)
      select min(seq)::int8 as first, max(seq)::int8 as last, count(*)::int as n from added`;
    if (row!.n !== FEED_BACKLOG) throw new Error(`backlog: ${row!.n} events written, ${FEED_BACKLOG} wanted (too few seeded messages)`);
    return { first: row!.first, last: row!.last };
  });
}

/** Reads from `since` until `total` events have come, one request at a time; throws on a gap or an early empty page. */
async function catchUp(url: string, token: string, since: number, total: number): Promise<Run> {
  const headers = { Authorization: `Bearer ${token}` };
  let cursor = since;
  let events = 0;
  let requests = 0;
  const t0 = performance.now();
  while (events < total) {
    const res = await fetch(`${url}/fmsg/events?since=${cursor}&timeout=1`, { headers });
    requests++;
    if (res.status !== 200) throw new Error(`GET /fmsg/events?since=${cursor}: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as FeedPage;
    if (page.events.length === 0) throw new Error(`GET /fmsg/events?since=${cursor}: no events after ${events} of ${total}`);
    events += page.events.length;
    cursor = page.next;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { events, requests, seconds, perSecond: events / seconds };
}

export async function feedScenario(ctx: Ctx, ours: Server): Promise<ScenarioResult> {
  const admin = connect(ctx.dbUrl, { max: 1 });
  try {
    const [t] = await admin<{ exists: boolean }[]>`select to_regclass('fmsg_api_event') is not null as exists`;
    if (!t!.exists) return skipped("the event journal table fmsg_api_event does not exist (sql/003_events.sql not applied).");
    const token = ctx.token(READER);
    const probe = await fetch(`${ours.url}/fmsg/events?since=0&timeout=1`, { headers: { Authorization: `Bearer ${token}` } });
    await probe.body?.cancel();
    if (probe.status === 404) return skipped("the server has no GET /fmsg/events route yet (404).");
    if (probe.status !== 200) throw new Error(`GET /fmsg/events probe: ${probe.status}`);
    const fill0 = performance.now();
    const { first } = await fillBacklog(admin);
    const fillSeconds = (performance.now() - fill0) / 1000;
    await admin`analyze fmsg_api_event`;
    log(`feed backlog: ${FEED_BACKLOG} events in ${fillSeconds.toFixed(1)} s`);
    // Warm-up (not counted): one short catch-up from the start.
    await catchUp(ours.url, token, first - 1, Math.min(FEED_BACKLOG, 5000));
    const runs: Run[] = [];
    for (let r = 0; r < ctx.settings.runs; r++) {
      const run = await catchUp(ours.url, token, first - 1, FEED_BACKLOG);
      runs.push(run);
      log(`feed catch-up run ${r + 1}: ${run.events} events in ${run.seconds.toFixed(2)} s, ${run.requests} requests (${run.perSecond.toFixed(0)} events/s)`);
    }
    const rate = spread(runs.map((x) => x.perSecond));
    const perRequest = runs[0]!.events / runs[0]!.requests;
    const figures: Figure[] = [
      { scenario: "9 Feed catch-up", figure: `events/s, backlog of ${fmtNum(FEED_BACKLOG)}`, conns: "1 client", ours: fmtSpread(rate), baseline: "—", ratio: "—", goal: "—", result: "info" },
    ];
    const markdown = [
      `One client reads a backlog of ${fmtNum(FEED_BACKLOG)} events for one identity (written straight into \`fmsg_api_event\` in one transaction, one per seeded message, the four kinds in turn) with \`GET /fmsg/events?since=<next>\`, one request after the other, from the start of the backlog to its end; ${ctx.settings.runs} runs after a 5,000-event warm-up; median (min–max). Each page held ${fmtNum(perRequest, 1)} events.`,
      "",
      table(
        ["Run", "events", "requests", "seconds", "events/s"],
        runs.map((x, i) => [String(i + 1), fmtNum(x.events), fmtNum(x.requests), fmtNum(x.seconds, 2), fmtNum(x.perSecond)]),
      ),
    ].join("\n");
    return { id: "feed", title: "9. Feed catch-up", figures, markdown, data: { runs, fillSeconds } };
  } finally {
    await admin.end({ timeout: 5 });
  }
}
