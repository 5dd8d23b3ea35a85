// Interleaved wrk runs: for each concurrency, warm every target up, then run target after target,
// round after round, so slow drifts of this noisy host hit every target alike.
import type { Settings } from "./context.ts";
import { spread, type Spread, log } from "./util.ts";
import { wrk, type WrkResult } from "./wrk.ts";

/** A wrk target (url, token), or any other load (`run`, e.g. pgbench) reporting the same figures. */
export type Target = {
  name: string;
  url?: string;
  token?: string;
  run?: (connections: number, seconds: number) => Promise<WrkResult>;
  /** Only these concurrency levels (default: all). */
  conns?: number[];
  /** `run` warms up inside each run itself: no separate warm-up run. */
  selfWarming?: boolean;
};
const at = (t: Target, c: number) => !t.conns || t.conns.includes(c);

const runTarget = (t: Target, connections: number, seconds: number) =>
  t.run ? t.run(connections, seconds) : wrk(t.url!, { connections, seconds, token: t.token });

export type Cell = { runs: WrkResult[]; rps: Spread; p50: Spread; p99: Spread; errors: number };

/** results[target][conns] */
export type Matrix = Record<string, Record<number, Cell>>;

export async function wrkMatrix(label: string, targets: Target[], s: Settings): Promise<Matrix> {
  const raw: Record<string, Record<number, WrkResult[]>> = {};
  for (const t of targets) raw[t.name] = {};
  for (const c of s.conns) {
    for (const t of targets.filter((x) => at(x, c))) {
      if (!t.selfWarming) await runTarget(t, c, s.warmup);
      raw[t.name]![c] = [];
    }
    for (let r = 0; r < s.runs; r++) {
      for (const t of targets.filter((x) => at(x, c))) {
        const res = await runTarget(t, c, s.seconds);
        raw[t.name]![c]!.push(res);
        log(`${label} ${t.name} c=${c} run ${r + 1}: ${Math.round(res.rps)} req/s p50 ${res.p50Ms.toFixed(2)} ms p99 ${res.p99Ms.toFixed(2)} ms${res.errors ? ` errors ${res.errors}` : ""}`);
      }
    }
  }
  const out: Matrix = {};
  for (const t of targets) {
    out[t.name] = {};
    for (const c of s.conns) {
      const runs = raw[t.name]![c];
      if (!runs) continue;
      out[t.name]![c] = {
        runs,
        rps: spread(runs.map((r) => r.rps)),
        p50: spread(runs.map((r) => r.p50Ms)),
        p99: spread(runs.map((r) => r.p99Ms)),
        errors: runs.reduce((a, r) => a + r.errors, 0),
      };
    }
  }
  return out;
}
