// A private PostgreSQL cluster for one test file: tests may stop, restart or cut it without touching anyone else's.
import { existsSync, readdirSync, rmSync } from "node:fs";
import { chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { migrate } from "../../src/db/schema.ts";
import { freePort } from "./ports.ts";

export type PrivatePostgres = {
  /** Connection URL of a database of this cluster (default: the postgres database). */
  url(db?: string): string;
  port: number;
  /** Stops the cluster; "immediate" is a crash (no checkpoint, clients cut), "fast" a clean shutdown. Default "fast". */
  stop(mode?: "immediate" | "fast"): Promise<void>;
  /** Starts the cluster and resolves once it accepts connections. */
  start(): Promise<void>;
  restart(mode?: "immediate" | "fast"): Promise<void>;
  /** pg_terminate_backend on every backend with this application_name; how many were terminated. */
  terminateBackends(applicationName: string): Promise<number>;
  /** Creates a database, applies the API schema (migrate) to it and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the cluster and removes its files. */
  destroy(): Promise<void>;
};

/**
 * PostgreSQL's server programs: FMSG_TEST_PG_BIN, else the newest of Debian's
 * /usr/lib/postgresql/<version>/bin, else the folder of an initdb on PATH.
 */
const BIN = process.env.FMSG_TEST_PG_BIN ?? debianBin() ?? dirname(Bun.which("initdb") ?? "/nonexistent/initdb");

function debianBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest === undefined ? undefined : join(root, newest, "bin");
}
const READY_DEADLINE_MS = 30_000;

/** initdb and postgres refuse to run as root, so as root every cluster command runs as the postgres user. */
const AS_ROOT = process.getuid?.() === 0;

/** What startPrivatePostgres runs (for toolsPresent). */
export const PRIVATE_POSTGRES_TOOLS = [join(BIN, "initdb"), join(BIN, "pg_ctl"), join(BIN, "postgres"), ...(AS_ROOT ? ["runuser"] : [])];

function asClusterOwner(argv: string[]): string[] {
  return AS_ROOT ? ["runuser", "-u", "postgres", "--", ...argv] : argv;
}

async function run(argv: string[], cwd: string): Promise<void> {
  const proc = Bun.spawn(asClusterOwner(argv), { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${(err || out).trim()}`);
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => {
    const proc = Bun.spawn(["id", flag, "postgres"], { stdout: "pipe", stderr: "ignore" });
    const text = await new Response(proc.stdout).text();
    if ((await proc.exited) !== 0) throw new Error("running as root needs a postgres system user (the Debian packages create it)");
    return Number(text.trim());
  };
  return { uid: await id("-u"), gid: await id("-g") };
}

async function withConnection<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5, connection: { application_name: "private-postgres" } });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const root = await mkdtemp(join(tmpdir(), "fmsg-private-pg-"));
  if (AS_ROOT) {
    const { uid, gid } = await postgresUser();
    await chown(root, uid, gid);
  }
  const dataDir = join(root, "data");
  const logFile = join(root, "server.log");
  await run([join(BIN, "initdb"), "-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"], root);

  const port = freePort();
  // No Unix socket: TCP on loopback only, so the cluster collides with nothing but its port.
  const settings = [
    `port = ${port}`,
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = ''",
    "fsync = off",
    "shared_buffers = 16MB",
    "max_connections = 100",
  ];
  // postgresql.auto.conf is read last, so these win over initdb's defaults; written by root, so hand it back.
  const autoConf = join(dataDir, "postgresql.auto.conf");
  await writeFile(autoConf, `${settings.join("\n")}\n`);
  if (AS_ROOT) {
    const { uid, gid } = await postgresUser();
    await chown(autoConf, uid, gid);
  }

  const url = (db = "postgres") => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let running = false;

  async function acceptsConnections(): Promise<boolean> {
    try {
      await withConnection(url(), (sql) => sql`select 1`);
      return true;
    } catch {
      return false;
    }
  }

  async function start(): Promise<void> {
    await run([join(BIN, "pg_ctl"), "start", "-D", dataDir, "-l", logFile, "-w", "-t", String(READY_DEADLINE_MS / 1000)], root);
    running = true;
    // pg_ctl -w waits for the postmaster's "ready" state; a real connection is what callers care about.
    const deadline = Date.now() + READY_DEADLINE_MS;
    while (!(await acceptsConnections())) {
      if (Date.now() > deadline) throw new Error(`private PostgreSQL on port ${port} did not accept connections (log: ${logFile})`);
      await Bun.sleep(50);
    }
  }

  async function stop(mode: "immediate" | "fast" = "fast"): Promise<void> {
    await run([join(BIN, "pg_ctl"), "stop", "-D", dataDir, "-m", mode, "-w", "-t", String(READY_DEADLINE_MS / 1000)], root);
    running = false;
  }

  // If the test process dies without destroy(), do not leave a postmaster (or its files) behind.
  const killOnExit = () => {
    if (running) Bun.spawnSync(asClusterOwner([join(BIN, "pg_ctl"), "stop", "-D", dataDir, "-m", "immediate", "-w"]), { cwd: root });
    rmSync(root, { recursive: true, force: true });
  };
  process.on("exit", killOnExit);

  try {
    await start();
  } catch (err) {
    killOnExit();
    process.off("exit", killOnExit);
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    port,
    start,
    stop,
    async restart(mode = "fast") {
      await stop(mode);
      await start();
    },
    terminateBackends(applicationName) {
      return withConnection(url(), async (sql) => {
        // Materialised first: in a single WHERE the planner may call pg_terminate_backend before the other tests.
        const [row] = await sql<{ n: number }[]>`
          with targets as materialized (
            select pid from pg_stat_activity where application_name = ${applicationName} and pid <> pg_backend_pid()
          )
          select (count(*) filter (where pg_terminate_backend(pid)))::int as n from targets
        `;
        return row?.n ?? 0;
      });
    },
    async createDatabase(name) {
      await withConnection(url(), (sql) => sql.unsafe(`create database "${name.replaceAll('"', '""')}"`));
      await withConnection(url(name), (sql) => migrate(sql));
      return url(name);
    },
    async destroy() {
      if (running) await stop("immediate").catch(() => {});
      process.off("exit", killOnExit);
      await rm(root, { recursive: true, force: true });
    },
  };
}
