// Outage round: ~300 open waits and ~20 writers while the private cluster crashes, shuts down or loses its backends; then fmsgd's mail must wake every wait.
import type postgres from "postgres";
import type { PrivatePostgres } from "../../tests/helpers/private-postgres.ts";
import { call, probe, randomInt, Tally, tokenFor, until, withDeadline, TIMED_OUT } from "./faults-http.ts";
import { countAnswers, type RoundResult } from "./faults-report.ts";
import { launchServer, type FaultServer } from "./faults-server.ts";
import { openWait, type OpenWait, type WaitAnswer } from "./faults-waiters.ts";
import { deliverFromAfar } from "../../tests/helpers/fmsgd.ts";

const WAITERS = 300;
const WRITERS = 20;
const WAIT_SECONDS = 60;
/** A wait not answered this long after its mail committed has lost its wake-up. */
const WAKE_DEADLINE_MS = 45_000;
/** Successful writes before the fault, so it lands on transactions in flight. */
const WRITES_BEFORE_FAULT = 20;
const RECOVERY_DEADLINE_MS = 30_000;

/** Kept between rounds: one private cluster, one database, one data directory, and the server of the moment. */
export type OutageState = { pg: PrivatePostgres; databaseUrl: string; dataDir: string; sql: postgres.Sql; server: FaultServer | null };

type Fault = { name: string; inject: (pg: PrivatePostgres) => Promise<string> };
const FAULTS: Fault[] = [
  { name: "restart(immediate)", inject: (pg) => pg.restart("immediate").then(() => "") },
  { name: "restart(fast)", inject: (pg) => pg.restart("fast").then(() => "") },
  { name: "terminateBackends", inject: async (pg) => ` (${await pg.terminateBackends("fmsg-webapi")} backends)` },
];

const waiterAddress = (i: number) => `@w${i}@example.com`;

async function openWaits(server: FaultServer): Promise<number> {
  const text = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text());
  return Number(/^fmsg_api_open_waits (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

/** Retries a query of ours across the outage (our own connection dies with the cluster too). */
async function retrying<T>(what: string, fn: () => Promise<T>, signal: AbortSignal, ms = RECOVERY_DEADLINE_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline || signal.aborted) throw new Error(`${what}: ${String(err)}`);
      await Bun.sleep(100);
    }
  }
}

/** Creates and sends (sometimes with a small attachment) until stopped; every answer is tallied. */
async function writer(base: string, from: string, tally: Tally, stopped: () => boolean, signal: AbortSignal, progress: () => void): Promise<void> {
  const token = tokenFor(from);
  while (!stopped() && !signal.aborted) {
    const json = { version: 1, from, to: ["@bob@example.com"], type: "text/plain", topic: "outage round", data: "x".repeat(randomInt(0, 4000)) };
    const created = await call(base, token, "POST", "/fmsg", { signal, json }, tally);
    const id = (created.body as { id?: unknown } | null)?.id;
    if (created.status === "no answer") await Bun.sleep(50); // no hot loop against a closed port
    if (created.status !== 201 || typeof id !== "number") continue;
    if (Math.random() < 0.3) {
      const form = new FormData();
      form.append("file", new Blob(["y".repeat(randomInt(0, 20_000))]), "note.txt");
      await call(base, token, "POST", `/fmsg/${id}/attach`, { signal, form }, tally);
    }
    const sent = await call(base, token, "POST", `/fmsg/${id}/send`, { signal }, tally);
    if (sent.status === 200) progress();
  }
}

async function ensureCluster(state: OutageState, signal: AbortSignal): Promise<void> {
  const up = async () => (await state.sql`select 1`, true);
  if (await until(up, 5000, signal, 200)) return;
  await state.pg.start().catch(() => {}); // a stuck round may have left it stopped
  await retrying("the cluster does not answer", up, signal);
}

/** One outage round (the fault cycles with `round`); returns the details of its progress line. */
export async function outageRound(state: OutageState, round: number, r: RoundResult, signal: AbortSignal): Promise<string> {
  await ensureCluster(state, signal);
  if (!state.server?.alive()) {
    await state.server?.kill(); // one that crashed may still be draining
    try {
      state.server = await launchServer({ databaseUrl: state.databaseUrl, dataDir: state.dataDir, env: { FMSG_API_METRICS: "true" } });
    } catch (err) {
      state.server = null;
      r.add("failed_recoveries", 1, `server did not start: ${String(err).slice(0, 2000)}`);
      return "no server";
    }
  }
  const server = state.server;
  const fault = FAULTS[(round - 1) % FAULTS.length]!;
  await until(async () => (await openWaits(server)) === 0, 10_000, signal); // the last round's waits are gone
  const sinceId = await retrying("max id", async () => Number((await state.sql<{ id: string }[]>`select coalesce(max(id), 0)::text as id from msg`)[0]!.id), signal);

  // Each wait re-arms as a client would after a 503 or a timeout that came before its mail.
  let committedAt: number | null = null;
  const open = new Set<OpenWait>();
  const waits = new Tally();
  const waitOnce = async (i: number): Promise<WaitAnswer> => {
    const token = tokenFor(waiterAddress(i));
    for (;;) {
      const w = openWait(server.port, token, sinceId, WAIT_SECONDS);
      open.add(w);
      const a = await w.answer;
      open.delete(w);
      waits.add(a.status ?? "no answer");
      const early204 = a.status === 204 && (committedAt === null || a.at < committedAt);
      if ((a.status === 503 || early204) && !signal.aborted && server.alive()) {
        await Bun.sleep(100);
        continue;
      }
      return a;
    }
  };
  const closeAll = () => {
    for (const w of open) w.close();
  };
  signal.addEventListener("abort", closeAll, { once: true });
  const answers = Array.from({ length: WAITERS }, (_, i) => waitOnce(i));
  const registered = await until(async () => (await openWaits(server)) >= WAITERS, 15_000, signal);

  let stopped = false;
  let sent = 0;
  const writers = Array.from({ length: WRITERS }, (_, i) =>
    writer(server.url, `@ow${i}@example.com`, r.tally, () => stopped || !server.alive(), signal, () => sent++),
  );
  await until(() => sent >= WRITES_BEFORE_FAULT || !server.alive(), 10_000, signal);

  const faultStart = Date.now();
  const injected = await withDeadline(fault.inject(state.pg), 90_000);
  if (injected === TIMED_OUT) throw new Error(`${fault.name} did not finish within 90 s`);
  const faultMs = Date.now() - faultStart;

  // As soon as the database takes connections again, fmsgd commits mail for every waiting address.
  const ids = await retrying("delivering the mail", () => deliverFromAfar(state.sql, Array.from({ length: WAITERS }, (_, i) => waiterAddress(i)), "after the outage"), signal);
  committedAt = Date.now();
  const all = Promise.all(answers);
  await withDeadline(all, WAKE_DEADLINE_MS);
  closeAll();
  const results = await all;

  // A crash answers every wait at once and ends the rest; those waits are the crash's, counted as one.
  const crashed = server.crashed();
  let lost = 0;
  const wakeMs: number[] = [];
  if (!crashed) {
    results.forEach((a, i) => {
      if (a.status === 200 && a.latestId !== null && a.latestId >= ids[i]!) {
        wakeMs.push(a.at - committedAt!);
        return;
      }
      lost++;
      const what = a.status === null ? `no answer (${a.error})` : `${a.status} latest_id=${a.latestId}`;
      if (lost <= 5) r.evidence.push(`${waiterAddress(i)} mail ${ids[i]}: ${what} ${a.at - committedAt!} ms after the commit`);
    });
  }
  if (lost > 0) r.add("lost_wakeups", lost, ...server.events(10));

  stopped = true;
  if ((await withDeadline(Promise.all(writers), 20_000)) === TIMED_OUT) r.add("unanswered_requests", 1, "writers still busy 20 s after being stopped");

  let recovery = "";
  if (crashed || server.crashed()) {
    r.add("crashes", 1, `${server.ending()} on its own:`, ...server.events());
    await server.kill(); // the next round starts a fresh one, as a supervisor would
  } else {
    // After recovery writes land again.
    const ready = await until(async () => (await probe(`${server.url}/readyz`)) === 200, RECOVERY_DEADLINE_MS, signal, 100);
    const token = tokenFor("@owcheck@example.com");
    const json = { version: 1, from: "@owcheck@example.com", to: ["@bob@example.com"], type: "text/plain", topic: "after", data: "back\n" };
    const created = await call(server.url, token, "POST", "/fmsg", { signal, json }, r.tally);
    const id = (created.body as { id?: unknown } | null)?.id;
    const sentAfter = typeof id === "number" ? await call(server.url, token, "POST", `/fmsg/${id}/send`, { signal }, r.tally) : null;
    if (!ready || created.status !== 201 || sentAfter?.status !== 200) {
      r.add("failed_recoveries", 1, `after ${fault.name}: readyz ${ready ? 200 : "never 200"}, create ${created.status}, send ${sentAfter?.status ?? "-"}`, ...server.events(5));
    }
    recovery = ready ? "" : " not-ready";
  }
  countAnswers(r, r.tally, [server], { noAnswerIsBug: !server.crashed() });
  countAnswers(r, waits, [server], { noAnswerIsBug: false }); // an unanswered wait is a lost wake-up, counted above
  const wake = crashed ? " waits not judged (crash)" : wakeMs.length ? ` wake max=${Math.max(...wakeMs)}ms` : "";
  return `${fault.name}${injected} ${faultMs}ms waits=${registered ? WAITERS : "not all registered"} [${waits.format()}]${wake} writes=[${r.tally.format()}]${recovery}`;
}
