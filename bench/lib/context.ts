// What every scenario gets: the bench database, secrets, temp folders, settings and report helpers.
import { mintToken } from "../../src/lib/jwt.ts";
import type { Spread } from "./util.ts";

export type Settings = {
  /** Length of one measured run (s). */
  seconds: number;
  /** Warm-up before the measured runs of each target and concurrency (s), never counted. */
  warmup: number;
  /** Measured runs per figure; the report shows their median with min/max. */
  runs: number;
  /** Fixed concurrency levels (connections / workers). */
  conns: number[];
  /** FMSG_API_DB_POOL_SIZE of every server (ours and the baselines). */
  poolSize: number;
  /** Scenario 4: concurrent waiters, and single-waiter wake-ups measured. */
  waiters: number;
  waiterProcesses: number;
  wakeSends: number;
  /** Scenario 7: open WebSockets, and the client processes holding them. */
  webSockets: number;
  webSocketProcesses: number;
  /** Scenario 5: size of the uploaded file (MiB). */
  attachMiB: number;
  /** Scenario 4 contrast: stop opening connections after this many. */
  contrastCap: number;
};

export type Ctx = {
  dbName: string;
  dbUrl: string;
  secret: string;
  key: Uint8Array;
  /** Temp root of this run (data directories, files); removed at the end. */
  tmp: string;
  settings: Settings;
  /** Environment of `bun src/main.ts serve` for this bench (plus scenario extras). */
  serverEnv(dataDir: string, extra?: Record<string, string>): Record<string, string>;
  token(address: string): string;
};

export function makeCtx(dbName: string, dbUrl: string, tmp: string, settings: Settings): Ctx {
  const secret = `bench-secret-${crypto.randomUUID()}`;
  const key = new TextEncoder().encode(secret);
  return {
    dbName,
    dbUrl,
    secret,
    key,
    tmp,
    settings,
    serverEnv: (dataDir, extra = {}) => ({
      DATABASE_URL: dbUrl,
      FMSG_DATA_DIR: dataDir,
      FMSG_API_JWT_SECRET: secret,
      FMSG_ID_URL: "builtin",
      FMSG_API_HOST: "127.0.0.1",
      FMSG_API_RATE_LIMIT: "1000000",
      FMSG_API_RATE_BURST: "1000000",
      FMSG_API_LOG: "off",
      FMSG_API_DB_POOL_SIZE: String(settings.poolSize),
      FMSG_API_METRICS: "false",
      FMSG_API_AUTO_MIGRATE: "false",
      // Defined (empty) so a developer's .env cannot change the bench's configuration.
      FMSG_DOMAIN: "",
      FMSG_TLS_CERT: "",
      FMSG_TLS_KEY: "",
      FMSG_TRUSTED_PROXIES: "",
      NODE_ENV: "production",
      ...extra,
    }),
    token: (address) => mintToken(address, key, 6 * 3600),
  };
}

/** One line of the summary table: ours, its baseline, the ratio and the goal side by side. */
export type Figure = {
  scenario: string;
  figure: string;
  conns: string;
  ours: string;
  baseline: string;
  ratio: string;
  goal: string;
  result: "PASS" | "MISS" | "info";
  /** Printed when the goal is missed. */
  shortfall?: string;
};

export type ScenarioResult = {
  id: string;
  title: string;
  figures: Figure[];
  /** Markdown of the scenario's detail section. */
  markdown: string;
  /** Raw data for the JSON results file. */
  data: unknown;
};

export const fmtNum = (v: number, digits = 0) =>
  Number.isFinite(v) ? v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "n/a";

/** "12,345 (11,900–12,600)": the median of the runs with min and max. */
export const fmtSpread = (s: Spread, digits = 0, unit = "") =>
  `${fmtNum(s.median, digits)}${unit} (${fmtNum(s.min, digits)}–${fmtNum(s.max, digits)})`;

export const fmtRatio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}` : "n/a");

export const mib = (bytes: number) => bytes / (1024 * 1024);

export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}
