// Scenario 8 — the event journal's cost: compose + send (scenario 3's load) with the fmsg_api_ event
// triggers (sql/003_events.sql) enabled and disabled, interleaved in the same run on the bench's own
// database, through our server and through the bare SQL pair.
import { fmtRatio, fmtSpread, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { connect, type Sql } from "../lib/db.ts";
import type { Server } from "../lib/procs.ts";
import { log, spread, type Spread } from "../lib/util.ts";
import { runOnce, type Run } from "./compose.ts";

type Mode = "api" | "direct";
type State = "on" | "off";
const TARGETS: { mode: Mode; state: State }[] = [
  { mode: "api", state: "on" },
  { mode: "api", state: "off" },
  { mode: "direct", state: "on" },
  { mode: "direct", state: "off" },
];
const NAMES: Record<Mode, string> = { api: "ours: POST /fmsg + send", direct: "the SQL pair via postgres.js" };

/**
 * The journal's triggers: ours (fmsg_api_ prefix) and writing the journal — named for events, or
 * running a function that records them. fmsgd's own triggers are never touched.
 */
async function journalTriggers(sql: Sql): Promise<{ table: string; name: string }[]> {
  return sql<{ table: string; name: string }[]>`
    select t.tgrelid::regclass::text as table, t.tgname as name
    from pg_trigger t join pg_proc p on p.oid = t.tgfoid
    where not t.tgisinternal and t.tgname like 'fmsg\\_api\\_%'
      and (t.tgname like '%event%' or p.prosrc like '%fmsg_api_event%' or p.prosrc like '%fmsg_api_record_events%')
    order by 1, 2`;
}

async function setTriggers(sql: Sql, triggers: { table: string; name: string }[], state: State): Promise<void> {
  const verb = state === "on" ? "enable" : "disable";
  await sql.begin(async (tx) => {
    // regclass::text is already quoted where needed; the trigger name is quoted here.
    for (const t of triggers) await tx.unsafe(`alter table ${t.table} ${verb} trigger "${t.name.replaceAll('"', '""')}"`);
  });
}

function skipped(note: string): ScenarioResult {
  log(`journal skipped: ${note}`);
  return {
    id: "journal",
    title: "8. Event journal: cost on compose and send",
    figures: [{ scenario: "8 Journal cost", figure: "messages/s with ÷ without triggers", conns: "—", ours: "skipped", baseline: "—", ratio: "—", goal: "—", result: "info" }],
    markdown: `Skipped: ${note}`,
    data: { skipped: note },
  };
}

export async function journalScenario(ctx: Ctx, ours: Server): Promise<ScenarioResult> {
  const admin = connect(ctx.dbUrl, { max: 1 });
  try {
    const triggers = await journalTriggers(admin);
    if (triggers.length === 0) return skipped("no fmsg_api_ event-journal triggers exist in this schema (sql/003_events.sql not applied).");
    log(`journal triggers: ${triggers.map((t) => `${t.table}.${t.name}`).join(", ")}`);
    const raw: Record<string, Run[]> = {};
    const key = (mode: Mode, state: State, c: number) => `${mode}/${state}/${c}`;
    try {
      for (const c of ctx.settings.conns) {
        // Runs interleave the four targets, so the drift of a noisy host hits all of them alike.
        for (let r = 0; r < ctx.settings.runs; r++) {
          for (const { mode, state } of TARGETS) {
            await setTriggers(admin, triggers, state);
            const res = await runOnce(ctx, mode, c, ours);
            (raw[key(mode, state, c)] ??= []).push(res);
            log(`journal ${mode} triggers ${state} workers=${c} run ${r + 1}: ${res.perSecond.toFixed(0)} msg/s p99 ${Number(res.p99Ms).toFixed(1)} ms${res.errors ? ` errors ${res.errors} (${res.firstError})` : ""}`);
          }
        }
      }
    } finally {
      await setTriggers(admin, triggers, "on");
    }
    const cell = (mode: Mode, state: State, c: number): { rate: Spread; p99: Spread; errors: number } => {
      const runs = raw[key(mode, state, c)]!;
      return { rate: spread(runs.map((x) => x.perSecond)), p99: spread(runs.map((x) => x.p99Ms)), errors: runs.reduce((a, x) => a + x.errors, 0) };
    };
    const figures: Figure[] = [];
    const rows: string[][] = [];
    for (const c of ctx.settings.conns) {
      for (const mode of ["api", "direct"] as Mode[]) {
        const on = cell(mode, "on", c);
        const off = cell(mode, "off", c);
        figures.push({
          scenario: "8 Journal cost",
          figure: `messages/s, ${mode === "api" ? "ours" : "SQL pair"}: journal on (off)`,
          conns: `${c} workers`,
          ours: fmtSpread(on.rate),
          baseline: `triggers off ${fmtSpread(off.rate)}`,
          ratio: fmtRatio(on.rate.median / off.rate.median),
          goal: "—",
          result: "info",
        });
        for (const [state, x] of [["on", on], ["off", off]] as const) {
          rows.push([NAMES[mode], state, String(c), fmtSpread(x.rate), fmtSpread(x.p99, 1), String(x.errors)]);
        }
      }
    }
    const markdown = [
      `Scenario 3's load (each worker: create a draft to 2 recipients with a 1 KiB body, then send it), once with the event journal's triggers enabled and once with them disabled (\`ALTER TABLE … DISABLE TRIGGER\` on ${triggers.map((t) => `\`${t.table}.${t.name}\``).join(", ")}; enabled again afterwards), the four targets interleaved run by run; ${ctx.settings.runs} runs × ${ctx.settings.seconds} s each; median (min–max). Ratio: with ÷ without the journal (1.00: it costs nothing). The SQL pair shows the database's share alone: each send records one \`new_msg\` event per recipient, in a deferred trigger that takes the journal's commit-order lock.`,
      "",
      table(["Target", "Journal triggers", "Workers", "messages/s", "p99 ms (pair)", "errors"], rows),
    ].join("\n");
    return { id: "journal", title: "8. Event journal: cost on compose and send", figures, markdown, data: { triggers, raw } };
  } finally {
    await admin.end({ timeout: 5 });
  }
}
