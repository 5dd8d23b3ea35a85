// A private redis-server for one test file (its own port, nothing saved): tests may stop and restart it without touching anyone else's keys.
import { RedisClient } from "bun";
import { freePort } from "./ports.ts";

export type PrivateRedis = {
  url: string;
  port: number;
  /** Kills the server (SIGKILL: as a crash, the clients' connections drop) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty, and resolves once it answers PING. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered (a hung Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
};

const READY_DEADLINE_MS = 10_000;

async function answersPing(url: string): Promise<boolean> {
  const client = new RedisClient(url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: 500 });
  try {
    await client.connect();
    return (await client.send("PING", [])) === "PONG";
  } catch {
    return false;
  } finally {
    client.close();
  }
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: Bun.Subprocess<"ignore", "pipe", "pipe"> | null = null;

  const start = async () => {
    const p = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    proc = p;
    let exited = false;
    void p.exited.then(() => (exited = true));
    const deadline = Date.now() + READY_DEADLINE_MS;
    while (!(await answersPing(url))) {
      if (exited || Date.now() > deadline) {
        p.kill("SIGKILL");
        const output = `${await new Response(p.stdout).text()}${await new Response(p.stderr).text()}`;
        throw new Error(`redis-server on port ${port} did not start:\n${output}`);
      }
      await Bun.sleep(20);
    }
  };

  const stop = async () => {
    const p = proc;
    proc = null;
    if (!p) return;
    p.kill("SIGKILL");
    await p.exited;
  };

  await start();
  return { url, port, start, stop, pause: () => proc?.kill("SIGSTOP"), resume: () => proc?.kill("SIGCONT") };
}
