// Scenario 1 — read one message: GET /fmsg/:id (3 recipients, 2 attachments) on our server, against
// (a) bare Bun.serve with a fixed body and (b) bare Bun.serve + postgres.js doing the same work.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { attach, createDraft, getText, send } from "../lib/api.ts";
import { checkedStatement } from "../lib/capture.ts";
import { fmtRatio, fmtSpread, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { wrkMatrix, type Matrix } from "../lib/matrix.ts";
import { startServer, type Server } from "../lib/procs.ts";
import { log, sameJson } from "../lib/util.ts";

export const READ_GOAL = 0.8;

export async function readScenario(ctx: Ctx, ours: Server, direct: Server): Promise<ScenarioResult> {
  const sender = "@read.sender@bench.example";
  const to = ["@read.one@bench.example", "@Read.Two@bench.example", "@read.three@bench.example"];
  const reader = "@read.two@bench.example"; // a recipient, spelled differently from the stored address
  const senderToken = ctx.token(sender);
  const id = await createDraft(ours.url, senderToken, { from: sender, to, topic: "Quarterly figures", data: "Hello, here are the figures.\n" });
  await attach(ours.url, senderToken, id, "figures.pdf", crypto.getRandomValues(new Uint8Array(4096)), "application/pdf");
  await attach(ours.url, senderToken, id, "photo 1.jpg", crypto.getRandomValues(new Uint8Array(8192)), "image/jpeg");
  await send(ours.url, senderToken, id);
  const token = ctx.token(reader);
  const path = `/fmsg/${id}`;
  await checkedStatement(ctx.dbUrl, "findMessage", { id, address: reader }); // baseline (b) runs today's SQL of findMessage
  const oursBody = await getText(ours.url, path, token);
  const directBody = await getText(direct.url, path, token);
  const parsed = JSON.parse(oursBody) as { to: string[]; attachments: unknown[] };
  if (parsed.to.length !== 3 || parsed.attachments.length !== 2) throw new Error(`unexpected message: ${oursBody}`);
  // The baseline must do the same work: the same JSON, every key (the FMSG-003 fields included).
  if (!sameJson(oursBody, directBody)) throw new Error(`baseline (b) answers differently:\nours   ${oursBody}\ndirect ${directBody}`);

  const bodyFile = join(ctx.tmp, "static-body.json");
  writeFileSync(bodyFile, oursBody);
  const bare = await startServer("baseline-a", ["bun", "bench/servers/static.ts"], { BENCH_STATIC_BODY: bodyFile });
  let m: Matrix;
  try {
    log(`scenario 1: GET ${path} (${oursBody.length} bytes) — targets: bare Bun.serve, Bun.serve+postgres.js, ours`);
    m = await wrkMatrix("read", [
      { name: "a", url: `${bare.url}${path}`, token },
      { name: "b", url: `${direct.url}${path}`, token },
      { name: "ours", url: `${ours.url}${path}`, token },
    ], ctx.settings);
  } finally {
    await bare.stop();
  }

  const figures: Figure[] = [];
  const rows: string[][] = [];
  const names: Record<string, string> = { a: "(a) bare Bun.serve, fixed body", b: "(b) Bun.serve + postgres.js, same work", ours: "ours (Hono app, full middleware)" };
  const ratios: Record<number, { b: number; a: number }> = {};
  for (const c of ctx.settings.conns) {
    const o = m.ours![c]!;
    const b = m.b![c]!;
    const a = m.a![c]!;
    const ratio = o.rps.median / b.rps.median;
    ratios[c] = { b: ratio, a: o.rps.median / a.rps.median };
    const pass = ratio >= READ_GOAL;
    figures.push({
      scenario: "1 Read one message",
      figure: "req/s",
      conns: String(c),
      ours: fmtSpread(o.rps),
      baseline: `(b) ${fmtSpread(b.rps)}`,
      ratio: ratio.toFixed(3),
      goal: `≥ ${READ_GOAL.toFixed(2)} × (b)`,
      result: pass ? "PASS" : "MISS",
      shortfall: pass ? undefined : `read one message at ${c} connections: ours ÷ (b) = ${ratio.toFixed(3)}, goal ≥ ${READ_GOAL.toFixed(2)}`,
    });
    figures.push({
      scenario: "1 Read one message",
      figure: "p99 ms",
      conns: String(c),
      ours: fmtSpread(o.p99, 2),
      baseline: `(b) ${fmtSpread(b.p99, 2)}`,
      ratio: fmtRatio(o.p99.median / b.p99.median),
      goal: "—",
      result: "info",
    });
    figures.push({
      scenario: "1 Read one message",
      figure: "req/s vs HTTP ceiling",
      conns: String(c),
      ours: fmtSpread(o.rps),
      baseline: `(a) ${fmtSpread(a.rps)}`,
      ratio: fmtRatio(ratios[c]!.a),
      goal: "—",
      result: "info",
    });
    for (const t of ["a", "b", "ours"]) {
      const cell = m[t]![c]!;
      rows.push([names[t]!, String(c), fmtSpread(cell.rps), fmtSpread(cell.p50, 2), fmtSpread(cell.p99, 2), String(cell.errors)]);
    }
  }
  const markdown = [
    `GET \`/fmsg/${id}\` as a recipient (3 \`to\` addresses, 2 attachments, a text body; response ${oursBody.length} bytes, identical JSON — FMSG-003 fields and short_text included — from ours and (b)). wrk, ${ctx.settings.runs} × ${ctx.settings.seconds} s per cell after a ${ctx.settings.warmup} s warm-up; median (min–max).`,
    "",
    table(["Target", "Conns", "req/s", "p50 ms", "p99 ms", "errors"], rows),
  ].join("\n");
  return { id: "read", title: "1. Read one message", figures, markdown, data: { messageId: id, bodyBytes: oursBody.length, matrix: m, ratios } };
}
