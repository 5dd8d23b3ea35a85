// Scenario 6 — footprint on a small VPS: peak RSS, time to ready and idle RSS of a server start, for the
// embedded default (source and compiled binary, first start in an empty directory and restart) and the
// configured mode (PostgreSQL). The goal is the embedded first start's: ≤ 256 MiB peak and ≤ 2 s.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fmtNum, fmtSpread, mib, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { freePort, memoryOf } from "../lib/procs.ts";
import { log, readLines, run, sleep, spread, type Spread } from "../lib/util.ts";

export const FOOTPRINT_PEAK_GOAL_BYTES = 256 * 1024 * 1024;
export const FOOTPRINT_READY_GOAL_MS = 2000;
const READY_POLL_MS = 20;
const READY_TIMEOUT_MS = 60_000;

export type FootprintOptions = { runs: number; idleSeconds: number };

type Start = { readyMs: number; peak: number; idleRss: number };
type Target = { name: string; mode: "embedded" | "configured"; command: string[]; env: (dataDir: string) => Record<string, string> };

const root = join(import.meta.dir, "..", "..");

/** `npm run build`'s own command with the output redirected into the bench's temp folder. */
async function buildBinary(outfile: string): Promise<void> {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const build = pkg.scripts.build;
  if (!build || !/--outfile\s+\S+/.test(build)) throw new Error(`package.json's build script has no --outfile: ${build}`);
  await run(["bash", "-c", `cd ${JSON.stringify(root)} && ${build.replace(/--outfile\s+\S+/, `--outfile ${JSON.stringify(outfile)}`)}`]);
}

/**
 * Starts `target` in `cwd` with exactly the environment given (nothing inherited: an embedded start
 * must see no configuration), polls /readyz, then idles. VmHWM is read at the end, so the peak covers
 * the whole start; the server is stopped with SIGTERM (SIGKILL if it hangs).
 */
async function measureStart(target: Target, cwd: string, dataDir: string, idleSeconds: number): Promise<Start> {
  const port = freePort();
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, FMSG_API_PORT: String(port), ...target.env(dataDir) };
  const t0 = performance.now();
  const proc = Bun.spawn(target.command, { cwd, env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const tail: string[] = [];
  const drained = readLines(proc.stderr, (line) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  });
  try {
    let readyMs = Number.NaN;
    while (performance.now() - t0 < READY_TIMEOUT_MS) {
      if (proc.exitCode !== null) {
        await drained;
        throw new Error(`${target.name} exited ${proc.exitCode}:\n${tail.join("\n")}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) {
          readyMs = performance.now() - t0;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(READY_POLL_MS);
    }
    if (!Number.isFinite(readyMs)) throw new Error(`${target.name} not ready after ${READY_TIMEOUT_MS} ms:\n${tail.join("\n")}`);
    await sleep(idleSeconds * 1000);
    const m = memoryOf(proc.pid);
    return { readyMs, peak: m.hwm, idleRss: m.rss };
  } finally {
    proc.kill("SIGTERM");
    const stopped = await Promise.race([proc.exited.then(() => true), sleep(15_000).then(() => false)]);
    if (!stopped) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await drained;
  }
}

type Row = { target: string; start: "first" | "restart"; readyMs: Spread; peak: Spread; idleRss: Spread };

export async function footprintScenario(ctx: Ctx, opts: FootprintOptions): Promise<ScenarioResult> {
  const binary = join(ctx.tmp, "footprint-bin", "fmsg-webapi");
  log("scenario 6: building the binary as npm run build does");
  await buildBinary(binary);
  const source = ["bun", join(root, "src", "main.ts"), "serve"];
  const configuredEnv = (dataDir: string) => ctx.serverEnv(dataDir);
  const targets: Target[] = [
    { name: "embedded, source", mode: "embedded", command: source, env: () => ({}) },
    { name: "embedded, binary", mode: "embedded", command: [binary, "serve"], env: () => ({}) },
    { name: "configured, source", mode: "configured", command: source, env: configuredEnv },
    { name: "configured, binary", mode: "configured", command: [binary, "serve"], env: configuredEnv },
  ];
  const rows: Row[] = [];
  for (const target of targets) {
    const first: Start[] = [];
    const restart: Start[] = [];
    for (let i = 0; i < opts.runs; i++) {
      // A new empty working directory each run: the embedded default puts ./fmsg-data there.
      const cwd = join(ctx.tmp, `footprint-${target.name.replace(/\W+/g, "-")}-${i}`);
      const dataDir = join(cwd, "data");
      mkdirSync(dataDir, { recursive: true });
      first.push(await measureStart(target, cwd, dataDir, opts.idleSeconds));
      restart.push(await measureStart(target, cwd, dataDir, opts.idleSeconds));
      log(`scenario 6: ${target.name} run ${i + 1}: first ${Math.round(first.at(-1)!.readyMs)} ms / ${fmtNum(mib(first.at(-1)!.peak))} MiB peak, restart ${Math.round(restart.at(-1)!.readyMs)} ms / ${fmtNum(mib(restart.at(-1)!.peak))} MiB peak`);
    }
    for (const [start, runs] of [["first", first], ["restart", restart]] as const) {
      rows.push({
        target: target.name,
        start,
        readyMs: spread(runs.map((r) => r.readyMs)),
        peak: spread(runs.map((r) => mib(r.peak))),
        idleRss: spread(runs.map((r) => mib(r.idleRss))),
      });
    }
  }

  const figures: Figure[] = [];
  const goalMiB = mib(FOOTPRINT_PEAK_GOAL_BYTES);
  for (const r of rows) {
    // Only the embedded first start has a goal (a new user's first run on a small VPS); the rest is shown.
    const goal = r.target.startsWith("embedded") && r.start === "first";
    const worstPeak = r.peak.max;
    const peakPass = worstPeak <= goalMiB;
    figures.push({
      scenario: "6 Footprint",
      figure: `peak RSS MiB, ${r.target}, ${r.start === "first" ? "first start" : "restart"}`,
      conns: "-",
      ours: fmtSpread(r.peak),
      baseline: "-",
      ratio: "-",
      goal: goal ? `≤ ${goalMiB} MiB (every run)` : "-",
      result: goal ? (peakPass ? "PASS" : "MISS") : "info",
      shortfall: goal && !peakPass ? `${r.target} first start peaked at ${fmtNum(worstPeak)} MiB, goal ≤ ${goalMiB} MiB` : undefined,
    });
    const readyPass = r.readyMs.median <= FOOTPRINT_READY_GOAL_MS;
    figures.push({
      scenario: "6 Footprint",
      figure: `start to ready ms, ${r.target}, ${r.start === "first" ? "first start" : "restart"}`,
      conns: "-",
      ours: fmtSpread(r.readyMs),
      baseline: "-",
      ratio: "-",
      goal: goal ? `≤ ${FOOTPRINT_READY_GOAL_MS} ms (median)` : "-",
      result: goal ? (readyPass ? "PASS" : "MISS") : "info",
      shortfall: goal && !readyPass ? `${r.target} first start ready after ${fmtNum(r.readyMs.median)} ms (median), goal ≤ ${FOOTPRINT_READY_GOAL_MS} ms` : undefined,
    });
    figures.push({
      scenario: "6 Footprint",
      figure: `RSS MiB after ${opts.idleSeconds} s idle, ${r.target}, ${r.start === "first" ? "first start" : "restart"}`,
      conns: "-",
      ours: fmtSpread(r.idleRss),
      baseline: "-",
      ratio: "-",
      goal: "-",
      result: "info",
    });
  }

  const markdown = [
    "### 6 Footprint",
    "",
    `Each start is a separate process with only \`FMSG_API_PORT\` set (embedded) or the bench's configuration (configured, against the seeded bench database), started in a new empty working directory; “first” starts there, “restart” starts again on what the first left. Time to ready: from spawn until \`GET /readyz\` answers 200 (polled every ${READY_POLL_MS} ms). Peak: VmHWM at the end of the run; idle: VmRSS after ${opts.idleSeconds} s without requests. The binary is built with \`npm run build\`'s command. Median of ${opts.runs} run(s), (min–max).`,
    "",
    table(
      ["target", "start", "ready ms", "peak RSS MiB", `RSS after ${opts.idleSeconds} s idle MiB`],
      rows.map((r) => [r.target, r.start, fmtSpread(r.readyMs), fmtSpread(r.peak), fmtSpread(r.idleRss)]),
    ),
  ].join("\n");
  return { id: "footprint", title: "Footprint", figures, markdown, data: { opts, rows } };
}
