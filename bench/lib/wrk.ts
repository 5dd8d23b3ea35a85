// wrk as the load generator for plain GETs: installed from Debian when missing, one JSON line per run.
import { join } from "node:path";
import { log, run } from "./util.ts";

const SCRIPT = join(import.meta.dir, "..", "wrk", "report.lua");

export type WrkResult = {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
  statusErrors: number;
};

async function which(cmd: string): Promise<string | null> {
  const out = await run(["bash", "-c", `command -v ${cmd} || true`]);
  return out || null;
}

/** Makes sure wrk is installed (apt-get install -y wrk) and returns its version line. */
export async function ensureWrk(): Promise<string> {
  if (!(await which("wrk"))) {
    log("wrk is missing: installing it with apt-get");
    const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
    await run([...sudo, "apt-get", "install", "-y", "wrk"], { env: { DEBIAN_FRONTEND: "noninteractive" }, allowFail: true });
    if (!(await which("wrk"))) {
      await run([...sudo, "apt-get", "update"], { allowFail: true });
      await run([...sudo, "apt-get", "install", "-y", "wrk"], { env: { DEBIAN_FRONTEND: "noninteractive" } });
    }
  }
  const version = await run(["bash", "-c", "wrk -v 2>&1 | head -1 || true"], { allowFail: true });
  return version.replace(/\s*Copyright.*$/, "").trim();
}

/**
 * One wrk run; `threads` 2 on this 2-core host; the Lua script adds the token and reports JSON.
 * `spread` ("host:port" each): thread i connects to the i-th of them in turn instead of the URL's
 * host (same path), so the connections divide evenly over several instances.
 */
export async function wrk(url: string, opts: { connections: number; seconds: number; token?: string; threads?: number; spread?: string[] }): Promise<WrkResult> {
  const threads = Math.min(opts.threads ?? 2, opts.connections);
  const out = await run(
    ["wrk", `-t${threads}`, `-c${opts.connections}`, `-d${opts.seconds}s`, "--timeout", "10s", "-s", SCRIPT, url],
    { env: { BENCH_TOKEN: opts.token ?? "", BENCH_SPREAD: (opts.spread ?? []).join(",") } },
  );
  const line = out.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (!line) throw new Error(`wrk printed no result:\n${out}`);
  const r = JSON.parse(line.slice("WRKJSON ".length)) as Record<string, number>;
  const n = (k: string) => r[k] ?? 0;
  const errors = n("connect_errors") + n("read_errors") + n("write_errors") + n("status_errors") + n("timeouts");
  return {
    rps: n("requests") / (n("duration_us") / 1e6),
    p50Ms: n("p50_us") / 1000,
    p90Ms: n("p90_us") / 1000,
    p99Ms: n("p99_us") / 1000,
    maxMs: n("max_us") / 1000,
    requests: n("requests"),
    errors,
    statusErrors: n("status_errors"),
  };
}
