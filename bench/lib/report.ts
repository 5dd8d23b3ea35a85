// The Markdown report: machine and versions, the summary table (ours, baseline, ratio, goal side by
// side), each scenario's details, and the analysis notes kept in bench/ANALYSIS.md.
import { existsSync, readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { table, type Figure, type ScenarioResult, type Settings } from "./context.ts";

export type Machine = { cores: number; cpu: string; ramGiB: number; kernel: string };
export type Versions = { bun: string; postgres: string; wrk: string; pgbench: string | null; hono: string; postgresJs: string };
export type GitState = { commit: string; dirty: string[] };

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  return { cores: cpus().length, cpu, ramGiB: totalmem() / 1024 ** 3, kernel: release() };
}

export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join("node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

export type Report = {
  started: Date;
  seconds: number;
  machine: Machine;
  versions: Versions;
  git: GitState;
  /** 1-minute load average at the start and the end: how busy the shared host was. */
  load: { start: number; end: number };
  settings: Settings;
  seed: { seconds: number; counts: Record<string, number> } | null;
  scenarios: ScenarioResult[];
  failures: { scenario: string; error: string }[];
  full: boolean;
};

export function summaryTable(figures: Figure[]): string {
  return table(
    ["Scenario", "Figure", "Load", "Ours", "Baseline", "Ratio", "Goal", "Result"],
    figures.map((f) => [f.scenario, f.figure, f.conns, f.ours, f.baseline, f.ratio, f.goal, f.result === "info" ? "—" : `**${f.result}**`]),
  );
}

export function shortfalls(r: Report): string[] {
  const out = r.scenarios.flatMap((s) => s.figures.filter((f) => f.result === "MISS").map((f) => f.shortfall ?? `${f.scenario}: ${f.figure}`));
  for (const f of r.failures) out.push(`${f.scenario} did not complete: ${f.error.split("\n")[0]}`);
  return out;
}

const duration = (s: number) => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

export function markdown(r: Report, opts: { analysisFile?: string } = {}): string {
  const figures = r.scenarios.flatMap((s) => s.figures);
  const missed = shortfalls(r);
  const m = r.machine;
  const v = r.versions;
  const s = r.settings;
  const lines = [
    "# Benchmarks",
    "",
    "Written by `bun run bench` (see [bench/README.md](bench/README.md)); every figure is measured against a baseline in the same run on the same machine.",
    "",
    `- **Run**: ${r.started.toISOString().replace("T", " ").slice(0, 19)} UTC, total ${duration(r.seconds)}${r.full ? "" : " (partial run)"}; ${missed.length === 0 ? "every goal met" : `${missed.length} goal(s) missed`}.`,
    `- **Machine**: ${m.cores} cores, ${m.cpu}, ${m.ramGiB.toFixed(1)} GiB RAM, Linux ${m.kernel} — shared and noisy (1-minute load average ${r.load.start.toFixed(2)} at the start, ${r.load.end.toFixed(2)} at the end); server, PostgreSQL and load generators share the cores.`,
    `- **Versions**: Bun ${v.bun}, PostgreSQL ${v.postgres}, ${v.wrk}${v.pgbench ? `, ${v.pgbench}` : ""}; Hono ${v.hono}, postgres.js ${v.postgresJs}.`,
    `- **Code measured**: commit \`${r.git.commit}\`${r.git.dirty.length ? ` plus uncommitted changes to ${r.git.dirty.map((f) => `\`${f}\``).join(", ")}` : " (clean src/ and sql/)"}.`,
    `- **Method**: fixed concurrency ${s.conns.join(" and ")}; ${s.warmup} s warm-up per target and level (not counted); each figure the median of ${s.runs} runs of ${s.seconds} s, (min–max) beside it; targets interleaved run by run. Servers are separate processes (\`bun src/main.ts serve\`, pool ${s.poolSize}, rate limit 1,000,000/s, logging off, \`FMSG_ID_URL=builtin\`); load generators are separate processes (wrk for plain GETs, Bun scripts for multi-step scenarios).`,
    r.seed
      ? `- **Data**: own database (created, migrated with \`bun src/main.ts migrate\`, dropped afterwards) seeded in ${r.seed.seconds.toFixed(1)} s: ${Object.entries(r.seed.counts).map(([k, n]) => `${n.toLocaleString("en-US")} ${k === "target" ? "inbox messages of the benchmarked identity" : `${k} rows`}`).join(", ")}.`
      : "",
    "",
    "## Summary",
    "",
    "Ratio = ours ÷ baseline (for req/s and messages/s higher is better; for latencies and memory lower is better).",
    "",
    summaryTable(figures),
    "",
  ];
  if (missed.length > 0) {
    lines.push("**Missed goals in this run:**", "", ...missed.map((x) => `- ${x}`), "");
  }
  for (const sc of r.scenarios) lines.push(`## ${sc.title}`, "", sc.markdown, "");
  for (const f of r.failures) lines.push(`## ${f.scenario} — did not complete`, "", "```", f.error, "```", "");
  if (opts.analysisFile && existsSync(opts.analysisFile)) {
    lines.push(readFileSync(opts.analysisFile, "utf8").trim(), "");
  }
  return lines.join("\n");
}
