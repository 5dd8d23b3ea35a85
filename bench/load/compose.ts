// Scenario 3 load generator: N workers, each composing and sending messages in a loop for a fixed time.
//   mode "api":         POST /fmsg then POST /fmsg/:id/send against our server (fetch, keep-alive).
//   mode "direct":      the same pair of statements run directly with postgres.js (baseline):
//                       insert msg + msg_to rows in one transaction, then update time_sent.
//   mode "direct-file": as "direct", plus the durable 1 KiB body file our server writes
//                       (temp file, fsync, rename inside the transaction, fsync of the folder).
// Argument: one JSON object (see Options). Prints one line: RESULT {json}.
import { join } from "node:path";
import postgres from "postgres";
import { insertBaselineDraft, sendBaselineDraft } from "../lib/baseline-draft.ts";

type Options = {
  mode: "api" | "direct" | "direct-file";
  workers: number;
  warmupSeconds: number;
  seconds: number;
  /** api */
  url?: string;
  token?: string;
  /** direct */
  databaseUrl?: string;
  poolSize?: number;
  dataDir?: string;
  from: string;
  to: string[];
  bodyBytes: number;
};

const opts = JSON.parse(process.argv[2] ?? "{}") as Options;
const data = "x".repeat(opts.bodyBytes);
const now = () => performance.now();

let sendPair: () => Promise<void>;
let close = async () => {};

if (opts.mode === "api") {
  const auth = { Authorization: `Bearer ${opts.token}` };
  const jsonHeaders = { ...auth, "Content-Type": "application/json" };
  const body = JSON.stringify({ version: 1, from: opts.from, to: opts.to, type: "text/plain", topic: "bench", data });
  sendPair = async () => {
    const created = await fetch(`${opts.url}/fmsg`, { method: "POST", headers: jsonHeaders, body });
    if (created.status !== 201) throw new Error(`POST /fmsg: ${created.status} ${await created.text()}`);
    const { id } = (await created.json()) as { id: number };
    const sent = await fetch(`${opts.url}/fmsg/${id}/send`, { method: "POST", headers: auth });
    const text = await sent.text();
    if (sent.status !== 200) throw new Error(`POST /fmsg/${id}/send: ${sent.status} ${text}`);
  };
} else {
  const sql = postgres(opts.databaseUrl!, {
    max: opts.poolSize ?? 8,
    onnotice: () => {},
    types: { int8: { to: 20, from: [20], serialize: (v: number | bigint | string) => String(v), parse: (v: string) => Number(v) } },
    connection: { application_name: "fmsg-bench-baseline", jit: "off" },
  });
  close = () => sql.end({ timeout: 5 });
  const draft = { from: opts.from, to: opts.to, topic: "bench", type: "text/plain", bytes: Buffer.from(data) };
  let n = 0;
  sendPair = async () => {
    const dir = opts.mode === "direct-file" ? join(opts.dataDir!, `direct-${process.pid}`, String(n++)) : null;
    const id = await insertBaselineDraft(sql, draft, dir);
    if (!(await sendBaselineDraft(sql, id))) throw new Error("send lost its draft");
  };
}

const started = now();
const measureFrom = started + opts.warmupSeconds * 1000;
const measureTo = measureFrom + opts.seconds * 1000;
const latencies: number[] = [];
let errors = 0;
let firstError: string | null = null;

async function worker(): Promise<void> {
  while (now() < measureTo) {
    const t0 = now();
    try {
      await sendPair();
    } catch (err) {
      errors++;
      firstError ??= String(err);
      continue;
    }
    const t1 = now();
    if (t1 >= measureFrom && t1 <= measureTo) latencies.push(t1 - t0);
  }
}

await Promise.all(Array.from({ length: opts.workers }, () => worker()));
await close();
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? Number.NaN;
process.stdout.write(
  `RESULT ${JSON.stringify({
    mode: opts.mode,
    workers: opts.workers,
    pairs: latencies.length,
    perSecond: latencies.length / opts.seconds,
    p50Ms: pct(50),
    p99Ms: pct(99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    errors,
    firstError,
  })}\n`,
);
process.exit(0);
