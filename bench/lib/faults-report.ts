// What the fault rounds count, how rounds add up per kind, and the table and summary line printed at the end.
import { REQUEST_TIMEOUT_MS, Tally } from "./faults-http.ts";
import type { FaultServer } from "./faults-server.ts";

/** Every count but `rounds` must be zero for the run to pass. */
export const COUNT_NAMES = [
  "crashes",
  "lost_wakeups",
  "inconsistent_rows",
  "orphan_files",
  "server_errors_500",
  "unanswered_requests",
  "failed_recoveries",
  "stuck_rounds",
] as const;
export type CountName = (typeof COUNT_NAMES)[number];
export type Counts = Record<CountName, number>;

export const noCounts = (): Counts => Object.fromEntries(COUNT_NAMES.map((n) => [n, 0])) as Counts;

/** One round's findings: counts, every answer the clients got, and lines that explain a non-zero count. */
export class RoundResult {
  readonly counts = noCounts();
  readonly tally = new Tally();
  /** Examples and server output worth reading when a count is not zero (kept short). */
  readonly evidence: string[] = [];

  add(name: CountName, n = 1, ...evidence: string[]): void {
    this.counts[name] += n;
    for (const e of evidence) if (this.evidence.length < 40) this.evidence.push(e);
  }

  /** "ok", or the non-zero counts. */
  verdict(): string {
    const bad = COUNT_NAMES.filter((n) => this.counts[n] > 0).map((n) => `${n}=${this.counts[n]}`);
    return bad.length === 0 ? "ok" : bad.join(" ");
  }
}

export class KindTotals {
  rounds = 0;
  readonly counts = noCounts();
  readonly tally = new Tally();
  readonly evidence: string[] = [];

  constructor(readonly kind: string) {}

  add(r: RoundResult, round: number): void {
    this.rounds++;
    for (const n of COUNT_NAMES) this.counts[n] += r.counts[n];
    this.tally.merge(r.tally);
    for (const e of r.evidence) if (this.evidence.length < 60) this.evidence.push(`round ${round}: ${e}`);
  }
}

export function table(kinds: KindTotals[]): string {
  const header = ["kind", "rounds", ...COUNT_NAMES];
  const rows = kinds.map((k) => [k.kind, String(k.rounds), ...COUNT_NAMES.map((n) => String(k.counts[n]))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  const out = [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)];
  for (const k of kinds) out.push(`${k.kind} answers: ${k.tally.format()}`);
  return out.join("\n");
}

export function summaryLine(kinds: KindTotals[]): { line: string; clean: boolean } {
  const total = noCounts();
  for (const k of kinds) for (const n of COUNT_NAMES) total[n] += k.counts[n];
  const rounds = kinds.reduce((a, k) => a + k.rounds, 0);
  return {
    line: `faults: rounds=${rounds} ${COUNT_NAMES.map((n) => `${n}=${total[n]}`).join(" ")}`,
    clean: COUNT_NAMES.every((n) => total[n] === 0),
  };
}

/**
 * Adds the answers that are bugs whatever the fault: a 5xx other than 503 (database unavailable) and
 * 507 (disk full), requests that outlived their timeout and, while the server was up, requests whose
 * connection ended without an answer. The servers' error lines explain them.
 */
export function countAnswers(r: RoundResult, tally: Tally, servers: (FaultServer | null)[], opts: { noAnswerIsBug: boolean }): void {
  let errors = 0;
  for (const [k, v] of tally.counts) if (Number(k) >= 500 && k !== "503" && k !== "507") errors += v;
  const lines = () => servers.flatMap((s) => s?.events(60).filter((l) => l.includes('"level":"error"')).slice(-5) ?? []);
  // Which requests: the server's own request log lines with that status (method and path).
  const failed = () =>
    servers.flatMap((s) => s?.child.lines.filter((l) => l.includes('"msg":"request"') && /"status":5(?!0[37])\d\d/.test(l)).slice(-3) ?? []);
  const examples = (...keep: string[]) => tally.examples.filter((e) => keep.some((k) => e.includes(`: ${k}`)));
  if (errors > 0) r.add("server_errors_500", errors, ...examples("5"), ...failed(), ...lines());
  const unanswered = tally.of("timeout") + (opts.noAnswerIsBug ? tally.of("no answer") : 0);
  if (unanswered > 0) {
    // The server logs a request when it finally answers: did the slow ones end, and how?
    const slow = () =>
      servers.flatMap((s) => s?.child.lines.filter((l) => l.includes('"msg":"request"') && Number(/"ms":([\d.]+)/.exec(l)?.[1] ?? 0) >= REQUEST_TIMEOUT_MS).slice(-3) ?? []);
    const which = examples("timeout", ...(opts.noAnswerIsBug ? ["no answer"] : []));
    r.add("unanswered_requests", unanswered, ...which, ...slow(), ...(errors > 0 ? [] : lines()));
  }
}
