// Bounded HTTP calls for the fault rounds, the status tally they feed, and polling with a deadline.
import { mintToken } from "../../src/lib/jwt.ts";
import { TEST_KEY } from "../../tests/helpers/server.ts";

/** A request that outlives this hung on something (a dead connection, a lock): counted, never waited out. */
export const REQUEST_TIMEOUT_MS = 15_000;

export type Outcome = number | "timeout" | "no answer";
export type Answer = { status: Outcome; body: unknown };

/** How often each answer (status code, timeout, no answer) came back. */
export class Tally {
  readonly counts = new Map<string, number>();
  /** The first few requests that timed out, got no answer or a 5xx: which route, and what it said. */
  readonly examples: string[] = [];

  add(outcome: Outcome, request?: string, body?: unknown): void {
    const key = String(outcome);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const notable = typeof outcome !== "number" || (outcome >= 500 && outcome !== 503 && outcome !== 507);
    if (notable && request && this.examples.length < 5) this.examples.push(`${request}: ${key}${body ? ` ${JSON.stringify(body)}` : ""}`);
  }

  merge(other: Tally): void {
    for (const [k, v] of other.counts) this.counts.set(k, (this.counts.get(k) ?? 0) + v);
  }

  of(outcome: Outcome): number {
    return this.counts.get(String(outcome)) ?? 0;
  }

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** "201:40 200:12 503:3 no answer:2", codes in ascending order. */
  format(): string {
    const keys = [...this.counts.keys()].sort((a, b) => (Number(a) || 1e9) - (Number(b) || 1e9) || a.localeCompare(b));
    return keys.map((k) => `${k}:${this.counts.get(k)}`).join(" ") || "none";
  }
}

export const tokenFor = (address: string): string => mintToken(address, TEST_KEY, 3600);

export type CallOptions = { json?: unknown; form?: FormData; signal?: AbortSignal; timeoutMs?: number };

/** One request with a bounded wait for its whole answer; every outcome is tallied, nothing throws. */
export async function call(base: string, token: string, method: string, path: string, opts: CallOptions, tally: Tally): Promise<Answer> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  let body: string | FormData | undefined;
  if (opts.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    body = opts.form;
  }
  let answer: Answer;
  try {
    const res = await fetch(`${base}${path}`, { method, headers, body, signal });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    answer = { status: res.status, body: parsed };
  } catch {
    answer = { status: timeout.aborted ? "timeout" : "no answer", body: null };
  }
  // A call cut by the round's own abort is not an answer of the server.
  if (!opts.signal?.aborted || answer.status !== "no answer") tally.add(answer.status, `${method} ${path}`, answer.body);
  return answer;
}

/** Status of an unauthenticated GET (health, readiness), or null when nothing answered in time. */
export async function probe(url: string, timeoutMs = 3000): Promise<number | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return null;
  }
}

/** Polls `cond` until it holds (true) or `ms` pass or `signal` aborts (false). */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, signal?: AbortSignal, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (signal?.aborted) return false;
    if (await Promise.resolve().then(cond).catch(() => false)) return true;
    if (Date.now() >= deadline) return false;
    await Bun.sleep(everyMs);
  }
}

export const TIMED_OUT = Symbol("timed out");

/** `p`, or TIMED_OUT once `ms` pass first (p keeps running; callers abort it through their own signal). */
export async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
export const randomInt = (min: number, max: number): number => min + Math.floor(Math.random() * (max - min + 1));
