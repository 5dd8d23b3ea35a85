// The real server as a child process (`bun src/main.ts serve`): for tests that kill it, crash it or
// need to see that it survives what would take a process down.
import { join } from "node:path";
import { readLines } from "../../bench/lib/util.ts";
import { unwatchServer, watchServer } from "./contract-check.ts";
import { TEST_SECRET } from "./server.ts";

const ROOT = join(import.meta.dir, "..", "..");

export type ChildServer = {
  url: string;
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  /** Every line the server printed so far (JSON log lines and anything else). */
  lines: string[];
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number>;
  alive(): boolean;
  kill(signal?: NodeJS.Signals): Promise<number>;
};

export type ChildServerOptions = {
  databaseUrl: string;
  dataDir: string;
  env?: Record<string, string>;
  /** How long to wait for the "listening" line (ms). */
  startTimeoutMs?: number;
};

/** The environment of a configured-mode server on a free port, logging JSON lines to stdout. */
export function childEnv(opts: ChildServerOptions): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    DATABASE_URL: opts.databaseUrl,
    FMSG_DATA_DIR: opts.dataDir,
    FMSG_API_JWT_SECRET: TEST_SECRET,
    FMSG_ID_URL: "builtin",
    FMSG_API_HOST: "127.0.0.1",
    FMSG_API_PORT: "0",
    FMSG_API_RATE_LIMIT: "1000000",
    FMSG_API_RATE_BURST: "1000000",
    FMSG_API_LOG: "info",
    ...opts.env,
  };
}

/** Starts the server and resolves once it prints its URL; rejects (with its output) if it exits first. */
export async function startChildServer(opts: ChildServerOptions): Promise<ChildServer> {
  const proc = Bun.spawn([process.execPath, join(ROOT, "src", "main.ts"), "serve"], {
    cwd: opts.dataDir,
    env: childEnv(opts),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  let wake = () => {};
  const collect = (line: string) => {
    lines.push(line);
    wake();
  };
  void readLines(proc.stdout, collect).finally(() => wake());
  void readLines(proc.stderr, collect).finally(() => wake());
  let exitCode: number | null = null;
  const exited = proc.exited.then((code) => {
    exitCode = code;
    wake();
    return code;
  });
  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  let url: string | null = null;
  while (url === null) {
    for (const line of lines) {
      if (!line.includes('"listening"')) continue;
      const parsed = JSON.parse(line) as { urls?: string[] };
      url = parsed.urls?.[0]?.replace(/\/$/, "") ?? null;
    }
    if (url !== null) break;
    if (exitCode !== null) throw new Error(`server exited with ${exitCode} before listening:\n${lines.join("\n")}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`server did not start in time:\n${lines.join("\n")}`);
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 50);
    });
  }
  // The child serves the document it answers by; checking starts once it is read.
  const documentOf = async (profile: string) => (await fetch(`${url}/openapi.json?profile=${profile}`)).json();
  watchServer(url, { seed: await documentOf("seed"), "fmsg-003": await documentOf("fmsg-003") });
  void exited.then(() => unwatchServer(url!)); // its port may serve something else later
  return {
    url,
    proc,
    lines,
    exited,
    alive: () => exitCode === null,
    async kill(signal = "SIGKILL") {
      if (exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}
