// The growth scenario's report: one row per (figure, size) with ours, its baseline, the ratio, and
// the growth of each from the smaller size to the larger; ours worsening clearly more than its
// baseline is listed as a finding.
import { fmtNum, table, type Figure, type ScenarioResult, type Settings } from "./context.ts";
import { SEED } from "./db.ts";
import { BIG_INBOX, type Growth } from "./seed-bulk.ts";
import { log, type Spread } from "./util.ts";

/** Ours worsening this much more than its baseline at the larger size is reported as a finding. */
export const FINDING_MARGIN = 1.2;

export type Key =
  | "read.rps" | "read.p99"
  | "inbox.rps" | "inbox.p99"
  | "big.rps" | "big.p99"
  | "catchup.rps" | "catchup.p99"
  | "catchupBig.rps" | "catchupBig.p99"
  | "compose.rate" | "compose.p99"
  | "wake.last" | "wake.p50";

export type Row = {
  key: Key;
  figure: string;
  load: string;
  baseline: string;
  digits: number;
  higherIsBetter: boolean;
  /** Only measured at the larger size: its growth is taken against this figure there (same data, smaller inbox). */
  versus?: Key;
};

export function rows(s: Settings): Row[] {
  const c = String(s.conns[0]);
  const w = `${fmtNum(s.waiters)} waits`;
  return [
    { key: "read.rps", figure: "Read one message, req/s", load: c, baseline: "(b)", digits: 0, higherIsBetter: true },
    { key: "read.p99", figure: "Read one message, p99 ms", load: c, baseline: "(b)", digits: 2, higherIsBetter: false },
    { key: "inbox.rps", figure: "Inbox page (20 of 10,000), req/s", load: c, baseline: "(b)", digits: 0, higherIsBetter: true },
    { key: "inbox.p99", figure: "Inbox page (20 of 10,000), p99 ms", load: c, baseline: "(b)", digits: 2, higherIsBetter: false },
    { key: "big.rps", figure: "Inbox page (20 of the big inbox), req/s", load: c, baseline: "(b)", digits: 0, higherIsBetter: true, versus: "inbox.rps" },
    { key: "big.p99", figure: "Inbox page (20 of the big inbox), p99 ms", load: c, baseline: "(b)", digits: 2, higherIsBetter: false, versus: "inbox.p99" },
    { key: "catchup.rps", figure: "Wait catch-up (10,000-inbox), req/s", load: c, baseline: "DB alone", digits: 0, higherIsBetter: true },
    { key: "catchup.p99", figure: "Wait catch-up (10,000-inbox), p99 ms", load: c, baseline: "DB alone", digits: 2, higherIsBetter: false },
    { key: "catchupBig.rps", figure: "Wait catch-up (big inbox), req/s", load: c, baseline: "DB alone", digits: 0, higherIsBetter: true, versus: "catchup.rps" },
    { key: "catchupBig.p99", figure: "Wait catch-up (big inbox), p99 ms", load: c, baseline: "DB alone", digits: 2, higherIsBetter: false, versus: "catchup.p99" },
    { key: "compose.rate", figure: "Compose + send, messages/s", load: `${c} workers`, baseline: "SQL pair + file", digits: 0, higherIsBetter: true },
    { key: "compose.p99", figure: "Compose + send, p99 ms", load: `${c} workers`, baseline: "SQL pair + file", digits: 1, higherIsBetter: false },
    { key: "wake.last", figure: "Waiters: commit → last answered, ms", load: w, baseline: "bare floor", digits: 1, higherIsBetter: false },
    { key: "wake.p50", figure: "Waiters: commit → answer p50, ms", load: w, baseline: "bare floor", digits: 1, higherIsBetter: false },
  ];
}

export type Value = { ours: Spread; base: Spread | null; note?: string };

/** What the report reads of an inbox scenario's query plans. */
export type PlanSummary = { custom: string; autoChoice: string; checks: Record<string, { custom: boolean; generic: boolean }> };

export type Stage = {
  label: string;
  counts: Growth["counts"];
  values: Partial<Record<Key, Value>>;
  /** (a), the bare fixed-body server: it does not touch the data, so its drift between stages is the host's. */
  control: Spread | null;
  plans: Record<string, PlanSummary>;
  errors: string[];
  seconds: number;
};

/** "2M", "200k", "1.5M". */
export const size = (n: number) => (n >= 1e6 ? `${+(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${+(n / 1e3).toFixed(1)}k` : String(n));

/** ours and baseline at the larger size ÷ at the smaller (or ÷ the `versus` figure at the same size). */
function growthOf(row: Row, small: Stage, large: Stage): { ours: number; base: number; worse: number } | null {
  const now = large.values[row.key];
  const before = row.versus ? large.values[row.versus] : small.values[row.key];
  if (!now || !before) return null;
  const ours = now.ours.median / before.ours.median;
  const base = now.base && before.base ? now.base.median / before.base.median : Number.NaN;
  // How much more ours worsened than its baseline: throughput falling, or latency rising.
  const worse = row.higherIsBetter ? base / ours : ours / base;
  return { ours, base, worse };
}

/** What the growth scenario measured and seeded, for the report. */
export type GrowthRun = { settings: Settings; seeded: { seconds: number }; grown: Growth; small: Stage; large: Stage; seconds: number; total: number; bigInbox: number };

/** The table (also logged), the summary figures, the notes (seeding, counts, noise control, plans, findings). */
export function growthReport(run: GrowthRun): ScenarioResult {
  const { settings: s, seeded, grown, small, large, seconds, total, bigInbox } = run;
  const defs = rows(s);
  const sizeOf = (st: Stage) => size(st.counts.msg);
  const gHead = `${size(total)} ÷ ${size(SEED.messages)}`;
  const cell = (v: Spread | null | undefined, digits: number) => (v ? `${fmtNum(v.median, digits)} (${fmtNum(v.min, digits)}–${fmtNum(v.max, digits)})` : "—");
  const body: string[][] = [];
  const figures: Figure[] = [];
  const findings: string[] = [];
  for (const row of defs) {
    for (const st of [small, large]) {
      const v = st.values[row.key];
      if (!v) continue;
      const g = st === large ? growthOf(row, small, large) : null;
      const gNote = row.versus ? " (vs 10,000-inbox)" : "";
      const finding = g && Number.isFinite(g.worse) && g.worse > FINDING_MARGIN;
      body.push([
        row.figure,
        `${sizeOf(st)}${row.key.startsWith("big") || row.key.startsWith("catchupBig") ? `, inbox ${size(st.counts.big)}` : ""}`,
        cell(v.ours, row.digits) + (v.note && !v.note.startsWith("DB") ? ` — ${v.note}` : ""),
        `${row.baseline} ${cell(v.base, row.digits)}${v.note?.startsWith("DB") ? `; ${v.note}` : ""}`,
        v.base ? (v.ours.median / v.base.median).toFixed(2) : "—",
        g ? `${g.ours.toFixed(2)}${gNote}` : "",
        g && Number.isFinite(g.base) ? `${g.base.toFixed(2)}${gNote}` : "",
        g && Number.isFinite(g.worse) ? `${g.worse.toFixed(2)}${finding ? " **finding**" : ""}` : "",
      ]);
      if (g && st === large) {
        const before = row.versus ? large.values[row.versus]! : small.values[row.key]!;
        figures.push({
          scenario: "10 Growth",
          figure: `${row.figure}: ${row.versus ? "big inbox ÷ 10,000-inbox" : gHead}`,
          conns: row.load,
          ours: `×${g.ours.toFixed(2)} (${fmtNum(before.ours.median, row.digits)} → ${fmtNum(v.ours.median, row.digits)})`,
          baseline: before.base && v.base ? `${row.baseline} ×${g.base.toFixed(2)} (${fmtNum(before.base.median, row.digits)} → ${fmtNum(v.base.median, row.digits)})` : "—",
          ratio: Number.isFinite(g.worse) ? g.worse.toFixed(2) : "n/a",
          goal: `ours worsens ≤ ${FINDING_MARGIN} × its baseline`,
          result: "info",
        });
        if (finding) {
          findings.push(`${row.figure} (${row.load}): ours ×${g.ours.toFixed(2)}, ${row.baseline} ×${g.base.toFixed(2)}${row.versus ? " (big inbox ÷ 10,000-inbox, same database)" : ` (${gHead})`} — ours worsens ${g.worse.toFixed(2)} × as much.`);
        }
      }
    }
  }
  const errors = [...small.errors.map((e) => `${small.label}: ${e}`), ...large.errors.map((e) => `${large.label}: ${e}`)];
  for (const e of errors) {
    figures.push({ scenario: "10 Growth", figure: "measurement", conns: "—", ours: "failed", baseline: "—", ratio: "—", goal: "every figure measured", result: "MISS", shortfall: `growth: ${e}` });
  }
  const growthTable = table(
    ["Figure", "Messages", "Ours", "Baseline", "Ratio", `Ours ${gHead}`, `Baseline ${gHead}`, "Ours ÷ baseline growth"],
    body,
  );
  const planLine = (st: Stage) =>
    Object.entries(st.plans)
      .map(([address, p]) => {
        const ix = "fmsg_api_msg_to_lower_addr_msg_id_idx";
        const uses = (mode: "custom" | "generic") => (p.checks[ix]?.[mode] ? "yes" : "**no**");
        return `\`${address}\` at ${sizeOf(st)}: \`${ix}\` in the custom plan ${uses("custom")}, in the generic plan ${uses("generic")}; auto picks ${p.autoChoice}`;
      })
      .map((l) => `- ${l}`);
  const ctl = small.control && large.control ? large.control.median / small.control.median : Number.NaN;
  const countLine = (st: Stage) =>
    `${sizeOf(st)}: ${fmtNum(st.counts.msg)} messages, ${fmtNum(st.counts.msg_to)} msg_to rows, ${fmtNum(st.counts.msg_add_to)} msg_add_to rows; \`${SEED.target}\` ${fmtNum(st.counts.target)} messages, \`${BIG_INBOX}\` ${fmtNum(st.counts.big)} (measured in ${st.seconds.toFixed(0)} s)`;
  const customPlans = Object.entries(large.plans).flatMap(([address, p]) => [
    `<details><summary>Inbox plan at ${sizeOf(large)}, ${address} (custom)</summary>`,
    "",
    "```",
    p.custom,
    "```",
    "</details>",
    "",
  ]);
  log(`growth table:\n${growthTable}`);
  const markdown = [
    `The same figures at two sizes of one database (its own, \`*_growth\`): first seeded exactly like the main one (${fmtNum(SEED.messages)} messages), then grown in place to ${fmtNum(total)} by appending messages of the same shape (5 recipients each, one add-to batch of 2 per 80 messages, all sent; none to \`${SEED.target}\`, so its ${fmtNum(small.counts.target)}-message inbox stays the same while the tables grow ${+(total / SEED.messages).toFixed(1)}×; ${fmtNum(bigInbox)} of the new ones, evenly spread, to \`${BIG_INBOX}\`, the big inbox). Fresh server processes at each size. Each figure as in its own scenario (read 1, inbox 2, compose 3, waiters 4), at ${s.conns[0]} connections only: ${s.runs} run(s) × ${s.seconds} s after a ${s.warmup} s warm-up per target, targets interleaved; waiters ${s.runs} wave(s) of ${fmtNum(s.waiters)} for ours and for the bare floor. The wait catch-up is \`GET /fmsg/wait?since_id=0\` (answers at once after one \`latestInboxIds\` check) under wrk, beside the database alone running that captured statement with pgbench (\`-M prepared\`, same clients). Median (min–max). Growth = the figure at ${size(total)} ÷ at ${size(SEED.messages)} (big-inbox rows: ÷ the 10,000-inbox figure at ${size(total)}); the last column is how much more ours worsened than its baseline (throughput: baseline growth ÷ ours; latency: ours ÷ baseline), **finding** above ${FINDING_MARGIN}.`,
    "",
    growthTable,
    "",
    `Seeding: ${fmtNum(SEED.messages)} messages in ${seeded.seconds.toFixed(1)} s; grown by ${fmtNum(grown.added)} messages (${fmtNum(grown.counts.msg_to - small.counts.msg_to)} msg_to rows) in ${grown.seconds.toFixed(1)} s — inserts ${grown.load.toFixed(1)} s on parallel connections, index and unique-constraint rebuilds ${grown.indexes.toFixed(1)} s, \`migrate\` + \`VACUUM ANALYZE\` ${grown.vacuum.toFixed(1)} s. Scenario total ${seconds.toFixed(0)} s.`,
    "",
    `Counts at the start of each measurement: ${countLine(small)}; ${countLine(large)}. (Between the two, the bench's own writes — compose, waiter waves — are counted in and topped up to ${fmtNum(total)}.)`,
    "",
    `Host noise control: (a), the bare fixed-body server, touches no data; it went from ${small.control ? fmtNum(small.control.median) : "?"} to ${large.control ? fmtNum(large.control.median) : "?"} req/s (×${Number.isFinite(ctl) ? ctl.toFixed(2) : "?"}) between the two sizes.`,
    "",
    "Inbox plans (`EXPLAIN (ANALYZE, BUFFERS)` of the captured statement):",
    "",
    ...planLine(small),
    ...planLine(large),
    "",
    findings.length ? `**Findings** (ours worsens more than ${FINDING_MARGIN} × its baseline):\n\n${findings.map((f) => `- ${f}`).join("\n")}` : `No finding: no figure of ours worsened more than ${FINDING_MARGIN} × its baseline.`,
    ...(errors.length ? ["", "**Not measured:**", "", ...errors.map((e) => `- ${e}`)] : []),
    "",
    ...customPlans,
  ].join("\n");
  return {
    id: "growth",
    title: "10. Growth: 200,000 → 2,000,000 messages",
    figures,
    markdown,
    data: { total, bigInbox, seeded, grown, stages: [small, large], findings, errors },
  };
}
