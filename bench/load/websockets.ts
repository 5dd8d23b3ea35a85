// WebSocket scenario load generator: many sockets on GET /fmsg/ws (Bun's WebSocket client), for
// identities @<prefix><i % identities>@<domain>, stamping the wall-clock arrival of each socket's
// first frame. Prints "READY <n>" once every socket is open, then "RESULT {json}" when each has
// had a frame (or at the deadline); the sockets close when the process exits.
import { mintToken } from "../../src/lib/jwt.ts";
import { wallMs } from "../lib/util.ts";

type Options = {
  url: string;
  secret: string;
  prefix: string;
  domain: string;
  identities: number;
  first: number;
  count: number;
  /** Sockets opened concurrently (keeps the accept queue short). */
  batch: number;
  /** After READY, how long to wait for every frame (ms). */
  deadlineMs: number;
};

const o = JSON.parse(process.argv[2] ?? "{}") as Options;
const key = new TextEncoder().encode(o.secret);
const arrivals = new Float64Array(o.count);
const sockets: WebSocket[] = [];
let framed = 0;
let frameBytes = 0;
let wrongFrames = 0;
let openErrors = 0;
let closedEarly = 0;
let firstError: string | null = null;
let finish: () => void = () => {};
const allFramed = new Promise<void>((resolve) => (finish = resolve));

function open(i: number): Promise<void> {
  const address = `@${o.prefix}${(o.first + i) % o.identities}@${o.domain}`;
  const headers = { Authorization: `Bearer ${mintToken(address, key, 3600)}` };
  return new Promise((resolve) => {
    // Bun's client takes headers in the second argument (not in the DOM's type).
    const ws = new WebSocket(o.url, { headers } as unknown as string[]);
    sockets.push(ws);
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", (e) => {
      openErrors++;
      firstError ??= String((e as ErrorEvent).message ?? "websocket error");
      resolve();
    });
    ws.addEventListener("close", () => {
      if (arrivals[i] === 0) closedEarly++;
    });
    ws.addEventListener("message", (e) => {
      if (arrivals[i] !== 0) return;
      arrivals[i] = wallMs();
      frameBytes ||= String(e.data).length;
      if (!String(e.data).startsWith('{"type":"new_msg"')) wrongFrames++;
      if (++framed === o.count) finish();
    });
  });
}

for (let start = 0; start < o.count; start += o.batch) {
  const batch: Promise<void>[] = [];
  for (let i = start; i < Math.min(o.count, start + o.batch); i++) batch.push(open(i));
  await Promise.all(batch);
}
process.stdout.write(`READY ${o.count - openErrors}\n`);

await Promise.race([allFramed, Bun.sleep(o.deadlineMs)]);
const times: number[] = [];
for (let i = 0; i < o.count; i++) if (arrivals[i] !== 0) times.push(Math.round(arrivals[i]! * 100) / 100);
process.stdout.write(`RESULT ${JSON.stringify({ first: o.first, count: o.count, framed, frameBytes, wrongFrames, openErrors, closedEarly, firstError, arrivals: times })}\n`);
for (const ws of sockets) ws.close();
process.exit(0);
