// Baseline (a): a bare Bun.serve answering a fixed JSON body — the HTTP ceiling of this runtime here.
// The body is the exact JSON our server returns for the benchmarked message (BENCH_STATIC_BODY file),
// so both send the same bytes.
import { readFileSync } from "node:fs";

const body = process.env.BENCH_STATIC_BODY ? readFileSync(process.env.BENCH_STATIC_BODY) : Buffer.from('{"ok":true}');
const headers = { "Content-Type": "application/json" };

Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT),
  development: false,
  fetch: () => new Response(body, { headers }),
});
