// pgbench as the "database alone" baseline: the same statement, prepared, at the same concurrency,
// with per-transaction latencies (-l) for p50/p99. Skipped when pgbench is not installed.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { percentile, run } from "./util.ts";

export type PgbenchResult = { tps: number; p50Ms: number; p99Ms: number; transactions: number };

let found: string | null | undefined;

export async function findPgbench(): Promise<string | null> {
  if (found !== undefined) return found;
  const out = await run(["bash", "-c", "command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -1 || true"], { allowFail: true });
  found = out.split("\n").find((l) => l.trim()) ?? null;
  return found;
}

export async function pgbenchVersion(): Promise<string | null> {
  const bin = await findPgbench();
  return bin ? (await run([bin, "--version"], { allowFail: true })).trim() : null;
}

/**
 * The server's statement as a pgbench script: $1…$n become pgbench variables (:p1…:pn, given with
 * -D), which `-M prepared` sends as parameters again — a prepared statement with the same plan
 * choices (custom, then generic) as the server's, not a statement with literals planned afresh.
 */
export function asPgbenchScript(query: string, params: unknown[]): { script: string; defines: string[] } {
  return {
    script: query.replace(/\$([0-9]+)/g, (_, n: string) => `:p${n}`),
    defines: params.flatMap((v, i) => ["-D", `p${i + 1}=${String(v)}`]),
  };
}

/**
 * One pgbench run of `warmup + seconds`; only transactions that complete after the warm-up count
 * (each pgbench run opens fresh connections: cold backend caches and the first custom plans of
 * the prepared statement stay out of the figures).
 */
export async function pgbench(dbUrl: string, statement: { script: string; defines: string[] }, opts: { clients: number; seconds: number; warmup: number; tmp: string }): Promise<PgbenchResult> {
  const bin = await findPgbench();
  if (!bin) throw new Error("pgbench not installed");
  const u = new URL(dbUrl);
  const dir = mkdtempSync(join(opts.tmp, "pgbench-"));
  try {
    const script = join(dir, "statement.sql");
    writeFileSync(script, `${statement.script.replace(/\s+/g, " ").trim().replace(/;?$/, ";")}\n`);
    const out = await run(
      [bin, "-h", u.hostname, "-p", u.port || "5432", "-U", decodeURIComponent(u.username || "postgres"), "-n", "-M", "prepared", ...statement.defines, "-f", script,
        "-c", String(opts.clients), "-j", String(Math.min(2, opts.clients)), "-T", String(opts.warmup + opts.seconds), "-l", `--log-prefix=${join(dir, "log")}`, u.pathname.slice(1)],
      { env: { PGOPTIONS: "-c jit=off", PGPASSWORD: decodeURIComponent(u.password) || undefined, PGAPPNAME: "fmsg-bench-pgbench" } },
    );
    void out;
    // Log lines: client_id transaction_no latency_us script_no epoch_s epoch_us (at completion).
    const done: { at: number; ms: number }[] = [];
    for (const f of readdirSync(dir).filter((n) => n.startsWith("log"))) {
      for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
        const [, , us, , sec, usec] = line.split(" ").map(Number);
        if (line && Number.isFinite(us) && Number.isFinite(sec) && Number.isFinite(usec)) done.push({ at: sec! + usec! / 1e6, ms: us! / 1000 });
      }
    }
    const start = Math.min(...done.map((d) => d.at - d.ms / 1000));
    const from = start + opts.warmup;
    const to = from + opts.seconds;
    const counted = done.filter((d) => d.at >= from && d.at <= to).map((d) => d.ms).sort((a, b) => a - b);
    return { tps: counted.length / opts.seconds, p50Ms: percentile(counted, 50), p99Ms: percentile(counted, 99), transactions: counted.length };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
