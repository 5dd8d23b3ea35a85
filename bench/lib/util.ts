// Small helpers shared by the bench: wall-clock time, statistics, shell commands, line readers.
import { setPriority } from "node:os";

/**
 * Raises this process's scheduling priority (root only; otherwise left as is): the bench's clock
 * reads must not queue behind the loaded servers and load generators.
 */
export function raisePriority(): void {
  try {
    setPriority(-10);
  } catch {
    // not permitted
  }
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on this host. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The median of several runs with the spread, as every figure of the report shows it. */
export type Spread = { median: number; min: number; max: number; runs: number[] };

export function spread(runs: number[]): Spread {
  return { median: median(runs), min: Math.min(...runs), max: Math.max(...runs), runs };
}

export type Distribution = { count: number; min: number; p50: number; p90: number; p99: number; max: number; mean: number };

export function distribution(values: number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    count: s.length,
    min: s.length ? s[0]! : Number.NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s.length ? s[s.length - 1]! : Number.NaN,
    mean: s.length ? sum / s.length : Number.NaN,
  };
}

/** Runs a command, returning stdout (trimmed); throws with stderr on a non-zero exit. */
export async function run(cmd: string[], opts: { env?: Record<string, string | undefined>; allowFail?: boolean } = {}): Promise<string> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} exited ${code}: ${err.trim() || out.trim()}`);
  return out.trim();
}

/** Splits a byte stream into lines, calling `onLine` for each complete one. Resolves at end of stream. */
export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered.length > 0) onLine(buffered);
}

export function log(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${message}\n`);
}

export const round = (v: number, digits = 1) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v);

/** The hard limit of open files of this process (a spawned `bash -c "ulimit -n …"` may raise its soft limit to it). */
export async function hardFileLimit(): Promise<number> {
  const out = await run(["bash", "-c", "ulimit -Hn"]);
  return out === "unlimited" ? 1_048_576 : Number(out);
}

/** Two JSON texts hold the same value, whatever the order of object keys. */
export function sameJson(a: string, b: string): boolean {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v !== null && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([k, x]) => [k, canonical(x)]))
        : v;
  return JSON.stringify(canonical(JSON.parse(a))) === JSON.stringify(canonical(JSON.parse(b)));
}
