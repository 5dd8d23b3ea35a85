// Scenario 4 load generator: many concurrent GET /fmsg/wait long polls, one raw TCP socket each,
// for distinct identities (@<prefix><i>@<domain>, i in [first, first+count)), stamping the wall-clock
// arrival of each response. Raw sockets keep the client cheap: no fetch pool limits, one tiny
// request each, the status line parsed from the first bytes.
// Prints "READY <n>" once every request is written, then "RESULT {json}" when all are answered
// (or at the deadline).
import { mintToken } from "../../src/lib/jwt.ts";
import { wallMs } from "../lib/util.ts";

type Options = {
  port: number;
  secret: string;
  prefix: string;
  domain: string;
  first: number;
  count: number;
  timeout: number;
  sinceId: number;
  /** Sockets opened concurrently while connecting (keeps the accept queue short). */
  batch: number;
  /** After READY, how long to wait for every answer (ms). */
  deadlineMs: number;
  /**
   * Keep-alive (the default, as browsers and HTTP clients do): the socket stays open after its
   * answer until the generator exits, so closing 10,000 sockets is not part of the measured
   * wake-up. false sends `Connection: close`.
   */
  keepAlive?: boolean;
};

const o = JSON.parse(process.argv[2] ?? "{}") as Options;
const key = new TextEncoder().encode(o.secret);
const arrivals = new Float64Array(o.count);
const statuses = new Int16Array(o.count);
let answered = 0;
let connectErrors = 0;
let socketErrors = 0;
let closedEarly = 0;
let firstError: string | null = null;
let finish: () => void = () => {};
const allAnswered = new Promise<void>((resolve) => (finish = resolve));

function request(i: number): string {
  const token = mintToken(`@${o.prefix}${o.first + i}@${o.domain}`, key, 3600);
  return (
    `GET /fmsg/wait?since_id=${o.sinceId}&timeout=${o.timeout} HTTP/1.1\r\n` +
    `Host: 127.0.0.1:${o.port}\r\nAuthorization: Bearer ${token}\r\n${o.keepAlive === false ? "Connection: close\r\n" : ""}\r\n`
  );
}

function markAnswer(i: number, chunk: Uint8Array): void {
  if (arrivals[i] !== 0) return;
  arrivals[i] = wallMs();
  // "HTTP/1.1 200 OK"
  const status = Number(new TextDecoder().decode(chunk.subarray(9, 12)));
  statuses[i] = Number.isFinite(status) ? status : -1;
  answered++;
  if (answered === o.count) finish();
}

async function open(i: number): Promise<void> {
  try {
    await Bun.connect<{ i: number }>({
      hostname: "127.0.0.1",
      port: o.port,
      data: { i },
      socket: {
        open(s) {
          s.write(request(s.data.i));
        },
        data(s, chunk) {
          markAnswer(s.data.i, chunk);
        },
        close(s) {
          if (arrivals[s.data.i] === 0) closedEarly++;
        },
        error(_s, err) {
          socketErrors++;
          firstError ??= String(err);
        },
      },
    });
  } catch (err) {
    connectErrors++;
    firstError ??= String(err);
  }
}

for (let start = 0; start < o.count; start += o.batch) {
  const batch: Promise<void>[] = [];
  for (let i = start; i < Math.min(o.count, start + o.batch); i++) batch.push(open(i));
  await Promise.all(batch);
}
process.stdout.write(`READY ${o.count - connectErrors}\n`);

await Promise.race([allAnswered, Bun.sleep(o.deadlineMs)]);
const statusCounts: Record<string, number> = {};
const times: number[] = [];
for (let i = 0; i < o.count; i++) {
  if (arrivals[i] === 0) continue;
  statusCounts[statuses[i]!] = (statusCounts[statuses[i]!] ?? 0) + 1;
  times.push(Math.round(arrivals[i]! * 100) / 100);
}
process.stdout.write(
  `RESULT ${JSON.stringify({ first: o.first, count: o.count, answered, connectErrors, socketErrors, closedEarly, firstError, statusCounts, arrivals: times })}\n`,
);
process.exit(0);
