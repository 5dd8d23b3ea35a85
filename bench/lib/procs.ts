// Child processes of the bench: servers (ours and the baselines) and load generators, with cleanup.
import type { Subprocess } from "bun";
import { readdirSync, readFileSync } from "node:fs";
import { hardFileLimit, log, readLines, sleep } from "./util.ts";

const children = new Set<Subprocess>();

/** Kills every child still running (by its own pid), e.g. when the bench fails half-way. */
export function killAllChildren(): void {
  for (const p of children) {
    if (p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** The resident set size of a process, in bytes (VmRSS), and its peak so far (VmHWM). */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system, ms) a process has used so far; NaN once it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (ms) used so far by every PostgreSQL server process on this machine, by pid. */
export function postgresCpu(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "postgres") continue;
    } catch {
      continue;
    }
    const ms = cpuMsOf(Number(entry));
    if (!Number.isNaN(ms)) out.set(Number(entry), ms);
  }
  return out;
}

/** CPU (ms) PostgreSQL used between two postgresCpu() readings; a process started meanwhile counts from 0. */
export function postgresCpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, now] of after) ms += now - (before.get(pid) ?? 0);
  return ms;
}

let fileLimit: number | null = null;

/** The soft open-files limit children get: the hard limit, at most 65536. */
export async function childFileLimit(): Promise<number> {
  fileLimit ??= Math.min(65536, await hardFileLimit());
  return fileLimit;
}

export type Child = {
  name: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  pid: number;
  /** Resolves with the exit code once the process has exited and its output is fully read. */
  finished: Promise<number>;
  /** The last lines of its stderr and stdout, for error messages. */
  output(): string;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
};

/**
 * Spawns `cmd` through `bash -c "ulimit -n N; exec …"`, so the child (same pid after exec) may
 * hold many sockets. Its output is drained into a small ring buffer.
 */
export async function spawnChild(name: string, cmd: string[], env: Record<string, string>, opts: { onStdoutLine?: (line: string) => void } = {}): Promise<Child> {
  const limit = await childFileLimit();
  const proc = Bun.spawn(["bash", "-c", `ulimit -n ${limit} && exec "$@"`, "bash", ...cmd], {
    cwd: process.cwd(),
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  children.add(proc);
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  };
  const streams = Promise.all([readLines(proc.stdout, opts.onStdoutLine ?? keep), readLines(proc.stderr, keep)]).then(() => {});
  return {
    name,
    proc,
    pid: proc.pid,
    finished: proc.exited.then(async (code) => {
      await streams;
      return code;
    }),
    output: () => tail.join("\n"),
    async stop(signal = "SIGTERM", timeoutMs = 15_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        children.delete(proc);
        return proc.exitCode;
      }
      try {
        process.kill(proc.pid, signal);
      } catch {
        // already gone
      }
      const done = await Promise.race([proc.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!done) {
        log(`${name} did not stop within ${timeoutMs} ms: killing it`);
        try {
          process.kill(proc.pid, "SIGKILL");
        } catch {
          // already gone
        }
        await proc.exited;
      }
      children.delete(proc);
      return proc.exitCode;
    },
  };
}

/** Resolves when `url` answers 200, or throws after `timeoutMs` (with the child's output). */
export async function waitReady(child: Child, url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited ${child.proc.exitCode}:\n${child.output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`${child.name} not ready at ${url} after ${timeoutMs} ms:\n${child.output()}`);
}

export type Server = Child & { port: number; url: string };

/**
 * BENCH_CPU_PROF=<dir> profiles our server processes (`bun --cpu-prof --cpu-prof-md`): the profile is
 * written to <dir> when the server exits (SIGTERM at the end of its scenario).
 */
function profiled(name: string, cmd: string[]): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir || cmd[0] !== "bun" || cmd[1] !== "src/main.ts") return cmd;
  return ["bun", "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}`, ...cmd.slice(1)];
}

export async function startServer(name: string, command: string[], env: Record<string, string>, readyPath = "/healthz"): Promise<Server> {
  const cmd = profiled(name, command);
  const port = freePort();
  const child = await spawnChild(name, cmd, { ...env, PORT: String(port), FMSG_API_PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(child, `${url}${readyPath}`);
  return { ...child, port, url };
}
