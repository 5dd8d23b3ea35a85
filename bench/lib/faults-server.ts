// The server under fault: a child process that knows whether it died by our kill or on its own, and is never left behind.
import { startChildServer, type ChildServer } from "../../tests/helpers/child-server.ts";
import { withDeadline } from "./faults-http.ts";

export type FaultServer = {
  url: string;
  port: number;
  child: ChildServer;
  /**
   * The process ended, or decided to (it logged "shutting down": an uncaught error drains for up to
   * 15 s before exiting), and not because we killed it. We only ever SIGKILL, so any shutdown is its own.
   */
  crashed(): boolean;
  /** Running and not shutting down: usable for the next request. */
  alive(): boolean;
  /** "shutting down" or "exited with <code or signal>", for a crash report. */
  ending(): string;
  /** SIGKILL, and wait (bounded) for the exit. */
  kill(): Promise<void>;
  /**
   * Its last lines other than per-request logs and the expected 503 warnings (errors, listener state,
   * stack traces), without timestamps, repeats folded.
   */
  events(n?: number): string[];
};

const running = new Set<FaultServer>();

const isRequestLine = (line: string) => line.includes('"msg":"request"');

export async function launchServer(opts: { databaseUrl: string; dataDir: string; env?: Record<string, string> }): Promise<FaultServer> {
  const child = await startChildServer({ ...opts, startTimeoutMs: 20_000 });
  let killedByUs = false;
  let scanned = 0;
  let shuttingDown = false;
  const sawShutdown = () => {
    for (; scanned < child.lines.length; scanned++) if (child.lines[scanned]!.includes('"msg":"shutting down"')) shuttingDown = true;
    return shuttingDown;
  };
  const server: FaultServer = {
    url: child.url,
    port: Number(new URL(child.url).port),
    child,
    crashed: () => !killedByUs && (!child.alive() || sawShutdown()),
    alive: () => child.alive() && !sawShutdown(),
    ending: () => (child.alive() ? "shutting down" : `exited with ${child.proc.exitCode ?? child.proc.signalCode}`),
    async kill() {
      if (child.alive() && !sawShutdown()) killedByUs = true;
      child.proc.kill("SIGKILL");
      await withDeadline(child.exited, 10_000);
      running.delete(server);
    },
    events(n = 12) {
      const out: string[] = [];
      let last = "";
      let repeats = 0;
      for (const line of child.lines) {
        if (line.trim() === "" || isRequestLine(line) || line.includes('"msg":"request failed on a fault"')) continue;
        const text = line.replace(/"time":"[^"]*",/, "");
        if (text === last) {
          repeats++;
          continue;
        }
        if (repeats > 0) out.push(`  (the line above ${repeats} more time(s))`);
        out.push(text);
        last = text;
        repeats = 0;
      }
      if (repeats > 0) out.push(`  (the line above ${repeats} more time(s))`);
      return out.slice(-n);
    },
  };
  running.add(server);
  void child.exited.then(() => running.delete(server));
  return server;
}

/** Every server still running, killed by its own pid (the end of a stuck round, or of the script). */
export async function killAllServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.kill()));
}

/** For process exit, where nothing async runs any more. */
export function killAllServersNow(): void {
  for (const s of running) {
    try {
      process.kill(s.child.proc.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
