// Environment → typed Config: the only module that reads process.env (through loadConfig's argument).
import { parseProfile, PROFILES, type Profile } from "./domain/profile.ts";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { parseCidr, type CidrRange } from "./lib/ip.ts";
import type { IdentityProvider } from "./identity/jwks-verifier.ts";

export type Env = Record<string, string | undefined>;

/** Thrown for any configuration problem; main prints its message as one line and exits 1. */
export class ConfigError extends Error {}

const MIB = 1024 * 1024;

/** Variables whose presence selects the configured (production) mode. */
const CONFIGURED_MODE_VARS = [
  "FMSG_DATA_DIR",
  "FMSG_API_JWT_SECRET",
  "DATABASE_URL",
  "PGHOST",
  "PGPORT",
  "PGUSER",
  "PGPASSWORD",
  "PGDATABASE",
  "PGSSLMODE",
] as const;

const intVar = (name: string, min: number, max: number, dflt: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return dflt;
      if (!/^[0-9]+$/.test(raw.trim())) {
        ctx.addIssue({ code: "custom", message: `${name} must be a whole number, got "${raw}"` });
        return z.NEVER;
      }
      const n = Number(raw.trim());
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `${name} must be between ${min} and ${max}, got "${raw}"` });
        return z.NEVER;
      }
      return n;
    });

const boolVar = (name: string, dflt: boolean) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return dflt;
      const v = raw.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      ctx.addIssue({ code: "custom", message: `${name} must be true or false, got "${raw}"` });
      return z.NEVER;
    });

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === "" ? undefined : v));

const envSchema = z.object({
  FMSG_API_PORT: intVar("FMSG_API_PORT", 0, 65535, 8000),
  FMSG_API_TLS_PORT: intVar("FMSG_API_TLS_PORT", 0, 65535, 443),
  FMSG_API_HOST: z.string().optional().transform((v) => (v ? v : "0.0.0.0")),
  FMSG_TLS_CERT: optionalString,
  FMSG_TLS_KEY: optionalString,
  FMSG_DATA_DIR: optionalString,
  FMSG_API_JWT_SECRET: z.string().optional(),
  FMSG_API_JWT_SECRET_PREVIOUS: optionalString,
  FMSG_JWT_JWKS_URL: optionalString,
  FMSG_JWT_ISSUER: optionalString,
  FMSG_JWT_AUDIENCE: optionalString,
  FMSG_DOMAIN: optionalString,
  FMSG_ID_URL: optionalString,
  FMSG_ID_CACHE_SECONDS: intVar("FMSG_ID_CACHE_SECONDS", 0, 86400, 30),
  FMSG_API_RATE_LIMIT: intVar("FMSG_API_RATE_LIMIT", 1, 1_000_000, 10),
  FMSG_API_RATE_BURST: intVar("FMSG_API_RATE_BURST", 1, 1_000_000, 20),
  FMSG_API_RATE_STORE: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = (raw ?? "").trim();
      if (value === "" || value.toLowerCase() === "memory") return null;
      if (isRedisUrl(value)) return value;
      ctx.addIssue({ code: "custom", message: `FMSG_API_RATE_STORE must be memory or a redis:// or rediss:// URL (redis://host:port/db), got "${withoutPassword(value)}"` });
      return z.NEVER;
    }),
  FMSG_TRUSTED_PROXIES: z.string().optional(),
  FMSG_CORS_ORIGINS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const entries = (raw ?? "").split(",").map((e) => e.trim()).filter((e) => e !== "");
      if (entries.includes("*")) {
        if (entries.length === 1) return ["*"];
        ctx.addIssue({ code: "custom", message: 'FMSG_CORS_ORIGINS: "*" (any origin) cannot be combined with other origins' });
        return z.NEVER;
      }
      const bad = entries.filter((e) => corsOrigin(e) === null);
      if (bad.length === 0) return entries.map((e) => corsOrigin(e)!);
      const got = bad.map((e) => `"${e}"`).join(", ");
      const rule = 'origins like https://app.example.com or http://localhost:5173 (scheme and host, optional port, no path), or "*"';
      ctx.addIssue({ code: "custom", message: `FMSG_CORS_ORIGINS must be ${rule}; got ${got}` });
      return z.NEVER;
    }),
  FMSG_API_MAX_DATA_SIZE: intVar("FMSG_API_MAX_DATA_SIZE", 1, 4096, 10),
  FMSG_API_MAX_ATTACH_SIZE: intVar("FMSG_API_MAX_ATTACH_SIZE", 1, 4096, 10),
  FMSG_API_MAX_MSG_SIZE: intVar("FMSG_API_MAX_MSG_SIZE", 1, 8192, 20),
  FMSG_API_SHORT_TEXT_SIZE: intVar("FMSG_API_SHORT_TEXT_SIZE", 0, 65536, 768),
  FMSG_API_EVENT_RETENTION_DAYS: intVar("FMSG_API_EVENT_RETENTION_DAYS", 1, 36500, 30),
  FMSG_API_METRICS: boolVar("FMSG_API_METRICS", false),
  FMSG_API_AUTO_MIGRATE: boolVar("FMSG_API_AUTO_MIGRATE", false),
  FMSG_API_DB_POOL_SIZE: intVar("FMSG_API_DB_POOL_SIZE", 1, 1000, 10),
  FMSG_API_DB_STATEMENT_TIMEOUT_MS: intVar("FMSG_API_DB_STATEMENT_TIMEOUT_MS", 100, 600_000, 10_000),
  FMSG_API_DB_LOCK_TIMEOUT_MS: intVar("FMSG_API_DB_LOCK_TIMEOUT_MS", 100, 600_000, 3_000),
  FMSG_API_SHUTDOWN_TIMEOUT: intVar("FMSG_API_SHUTDOWN_TIMEOUT", 1, 3600, 10),
  FMSG_API_MAX_TOKEN_TTL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return 30 * 86400;
      const seconds = parseTtl(v);
      if (seconds !== null) return seconds;
      ctx.addIssue({ code: "custom", message: `FMSG_API_MAX_TOKEN_TTL must look like 3600, 90s, 15m, 12h or 30d, got "${v}"` });
      return z.NEVER;
    }),
  FMSG_API_TOKEN_TTL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return 12 * 3600;
      const seconds = parseTtl(v);
      if (seconds !== null) return seconds;
      ctx.addIssue({ code: "custom", message: `FMSG_API_TOKEN_TTL must look like 3600, 90s, 15m, 12h or 30d, got "${v}"` });
      return z.NEVER;
    }),
  FMSG_API_PROFILE: z
    .string()
    .optional()
    .transform((v, ctx): Profile => {
      if (v === undefined || v.trim() === "") return "seed";
      const profile = parseProfile(v);
      if (profile) return profile;
      ctx.addIssue({ code: "custom", message: `FMSG_API_PROFILE must be ${PROFILES.join(" or ")}, got "${v}"` });
      return z.NEVER;
    }),
  FMSG_API_LOG: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const level = (v ?? "").trim().toLowerCase() || "info";
      if (level === "info" || level === "off") return level;
      ctx.addIssue({ code: "custom", message: `FMSG_API_LOG must be info or off, got "${v}"` });
      return z.NEVER;
    }),
  DATABASE_URL: optionalString,
  FMSG_TEST_CRASH_AT: optionalString,
});


export type Config = {
  mode: "configured" | "embedded";
  host: string;
  port: number;
  tls: { cert: string; key: string; port: number } | null;
  /** Absolute path of the data directory shared with fmsgd. */
  dataDir: string;
  jwtKey: Uint8Array;
  /** The secret before the last rotation: still verifies tokens, never signs (FMSG_API_JWT_SECRET_PREVIOUS). */
  jwtPreviousKey: Uint8Array | null;
  /** An identity provider whose EdDSA tokens are accepted too (FMSG_JWT_*); null when not configured. */
  identityProvider: IdentityProvider | null;
  domain: string | null;
  /** Base URL of fmsgid, or "builtin". */
  idUrl: string;
  idCacheSeconds: number;
  rateLimit: number;
  rateBurst: number;
  /** A redis:// or rediss:// URL whose Redis holds the limiter's buckets for every instance; null: this process's own. */
  rateStoreUrl: string | null;
  trustedProxies: CidrRange[];
  /** Origins allowed to call the API from a browser, normalised; ["*"] for any; [] for no CORS at all. */
  corsOrigins: string[];
  maxDataBytes: number;
  maxAttachBytes: number;
  maxMsgBytes: number;
  shortTextSize: number;
  eventRetentionDays: number;
  metrics: boolean;
  autoMigrate: boolean;
  poolSize: number;
  /** Per-connection statement_timeout and lock_timeout (ms): a stuck lock fails fast with 503. */
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  /** How long SIGTERM/SIGINT lets in-flight requests finish before their connections are closed (ms). */
  shutdownTimeoutMs: number;
  /** Longest token lifetime accepted (seconds): exp − iat, or exp − now without iat. */
  maxTokenTtl: number;
  /** Lifetime (seconds) of tokens minted from API keys at POST /fmsg/token; at most maxTokenTtl. */
  apiTokenTtl: number;
  log: "info" | "off";
  /** The message shape answered when a request names none (FMSG_API_PROFILE). */
  profile: Profile;
  /** Test seam: the "<operation>:<step>" at which the process SIGKILLs itself (src/lib/crash-point.ts). */
  crashAt: string | null;
  /** A postgres.js connection URL, or null to let postgres.js read the PG* variables. */
  databaseUrl: string | null;
  /** TLS to PostgreSQL from PGSSLMODE (and PGSSLROOTCERT); null: as the URL says, else none. */
  databaseSsl: DatabaseSsl | null;
  /** The embedded database's directory (<data dir>/pglite); null in configured mode. */
  embeddedDatabaseDir: string | null;
};

/** postgres.js's `ssl` option: false, one of its mode names, or Node TLS options. */
export type DatabaseSsl = false | "prefer" | "require" | "verify-full" | { rejectUnauthorized: true; ca?: string; checkServerIdentity?: () => undefined };

const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/**
 * libpq's PGSSLMODE for postgres.js, which does not read it (it reads a URL's sslmode only):
 * without this, PGSSLMODE=require connected in plain text. A URL's own sslmode wins, as in libpq.
 * `allow` becomes `prefer` (both accept a server without TLS); verify-ca checks the certificate
 * chain but not the host name; PGSSLROOTCERT names the CA file for the two verify modes.
 */
function parseDatabaseSsl(env: Env, note: (m: string) => void): DatabaseSsl | null {
  const mode = env.PGSSLMODE?.trim() ?? "";
  if (mode === "") return null;
  if (!SSL_MODES.includes(mode)) {
    note(`PGSSLMODE must be one of ${SSL_MODES.join(", ")}, got "${mode}"`);
    return null;
  }
  if (env.DATABASE_URL && /[?&]sslmode=/.test(env.DATABASE_URL)) return null;
  if (mode === "disable") return false;
  if (mode === "allow" || mode === "prefer") return "prefer";
  if (mode === "require") return "require";
  let ca: string | undefined;
  const rootCert = env.PGSSLROOTCERT?.trim();
  if (rootCert && rootCert !== "system") {
    try {
      ca = readFileSync(rootCert, "utf8");
    } catch (err) {
      note(`PGSSLROOTCERT cannot be read: ${(err as Error).message}`);
    }
  }
  if (mode === "verify-ca") return { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
  return ca === undefined ? "verify-full" : { rejectUnauthorized: true, ca };
}

/** "90s", "15m", "1h", "7d" or plain seconds. */
export function parseTtl(text: string): number | null {
  const m = /^([1-9][0-9]{0,8})([smhd]?)$/.exec(text.trim());
  if (!m) return null;
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

/** Decodes FMSG_API_JWT_SECRET: `base64:` prefix means standard base64 key bytes. */
export function decodeJwtSecret(raw: string, name = "FMSG_API_JWT_SECRET"): Uint8Array {
  if (raw.startsWith("base64:")) {
    const b64 = raw.slice("base64:".length);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw new ConfigError(`${name}: the part after base64: is not valid standard base64`);
    }
    const bytes = Uint8Array.from(Buffer.from(b64, "base64"));
    if (bytes.length === 0) throw new ConfigError(`${name} must not be empty`);
    return bytes;
  }
  if (raw.length === 0) throw new ConfigError(`${name} must not be empty`);
  return new TextEncoder().encode(raw);
}

/**
 * An http(s) origin as a browser sends it in `Origin` (lower-case host, no default port), or null.
 * A path, query, fragment or user part is refused rather than dropped: it would never match.
 */
function corsOrigin(entry: string): string | null {
  if (!/^https?:\/\/[^/?#@\s]+$/i.test(entry)) return null;
  try {
    return new URL(entry).origin;
  } catch {
    return null;
  }
}

/**
 * FMSG_JWT_JWKS_URL with FMSG_JWT_ISSUER (required with it) and FMSG_JWT_AUDIENCE. The keys decide
 * who may sign in, so they come over https; plain http only from this machine (a local provider or
 * a test), where nobody on the network can swap them.
 */
function parseIdentityProvider(url: string | undefined, issuer: string | undefined, audience: string | undefined, note: (m: string) => void): IdentityProvider | null {
  if (url === undefined) {
    if (issuer !== undefined || audience !== undefined) note("FMSG_JWT_ISSUER and FMSG_JWT_AUDIENCE need FMSG_JWT_JWKS_URL (the identity provider's JWKS)");
    return null;
  }
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  const local = parsed !== null && ["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname);
  if (parsed === null || !(parsed.protocol === "https:" || (parsed.protocol === "http:" && local))) {
    note(`FMSG_JWT_JWKS_URL must be an https URL (http only for localhost or 127.0.0.1), got "${url}"`);
    return null;
  }
  if (issuer === undefined) {
    note("FMSG_JWT_ISSUER is required when FMSG_JWT_JWKS_URL is set (the exact iss of the provider's tokens)");
    return null;
  }
  return { jwksUrl: url, issuer, audience: audience ?? null };
}

/** A URL as it may be printed: whatever stands before an "@" after "//" (user and password) masked. */
export function withoutPassword(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}

/** redis://[user:password@]host[:port][/db] or rediss://…: a host, a database number or nothing as the path, no query. */
function isRedisUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "" && /^(\/[0-9]{0,5})?$/.test(url.pathname) && url.search === "" && url.hash === "";
}

function parseTrustedProxies(raw: string | undefined): CidrRange[] {
  if (!raw || raw.trim() === "") return [];
  return raw.split(",").map((entry) => {
    const range = parseCidr(entry);
    if (!range) throw new ConfigError(`FMSG_TRUSTED_PROXIES: "${entry.trim()}" is not an IP address or CIDR range`);
    return range;
  });
}

export function configuredModeSelected(env: Env): boolean {
  return CONFIGURED_MODE_VARS.some((name) => env[name] !== undefined && env[name] !== "");
}

/**
 * Parses the environment once. Embedded defaults (src/embedded-defaults.ts) are filled in by the caller
 * through `embedded` when no configured-mode variable is set.
 */
export function loadConfig(env: Env, embedded?: { dataDir: string; jwtSecret: string; databaseDir: string }): Config {
  // Every variable is parsed on its own, and every problem is collected: an operator fixes them all
  // in one go instead of meeting them one run at a time.
  const problems: string[] = [];
  const note = (message: string) => problems.push(message);
  const values: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(envSchema.shape)) {
    const result = (schema as z.ZodType).safeParse(env[name]);
    if (result.success) values[name] = result.data;
    else {
      const message = result.error.issues[0]?.message ?? "invalid";
      note(message.includes(name) ? message : `${name}: ${message}`);
    }
  }
  const e = values as Partial<z.output<typeof envSchema>>;
  const mode = configuredModeSelected(env) ? "configured" : "embedded";
  if (mode === "embedded" && !embedded) {
    throw new ConfigError("internal: embedded mode needs its generated defaults");
  }

  let dataDir = "";
  let jwtSecret = "";
  let idUrl = "";
  if (mode === "configured") {
    if (!e.FMSG_DATA_DIR) note("FMSG_DATA_DIR is required");
    if (e.FMSG_API_JWT_SECRET === undefined || e.FMSG_API_JWT_SECRET === "") note("FMSG_API_JWT_SECRET is required");
    if (!e.FMSG_ID_URL) note('FMSG_ID_URL is required (the fmsgid base URL, or "builtin")');
    dataDir = e.FMSG_DATA_DIR ?? "";
    jwtSecret = e.FMSG_API_JWT_SECRET ?? "";
    idUrl = e.FMSG_ID_URL ?? "";
  } else {
    dataDir = embedded!.dataDir;
    jwtSecret = embedded!.jwtSecret;
    idUrl = e.FMSG_ID_URL ?? "builtin";
  }
  if (idUrl !== "builtin" && idUrl !== "") {
    let u: URL | null = null;
    try {
      u = new URL(idUrl);
    } catch {
      u = null;
    }
    if (u === null || (u.protocol !== "http:" && u.protocol !== "https:")) {
      note(`FMSG_ID_URL must be an http(s) URL or "builtin", got "${idUrl}"`);
    }
    idUrl = idUrl.replace(/\/+$/, "");
  }
  if (!dataDir.startsWith("/")) dataDir = `${process.cwd()}/${dataDir}`;
  dataDir = dataDir.replace(/\/+$/, "") || "/";

  if (Boolean(e.FMSG_TLS_CERT) !== Boolean(e.FMSG_TLS_KEY)) {
    note(e.FMSG_TLS_CERT ? "FMSG_TLS_KEY is required when FMSG_TLS_CERT is set" : "FMSG_TLS_CERT is required when FMSG_TLS_KEY is set");
  }
  if (e.FMSG_API_MAX_DATA_SIZE !== undefined && e.FMSG_API_MAX_MSG_SIZE !== undefined && e.FMSG_API_MAX_DATA_SIZE > e.FMSG_API_MAX_MSG_SIZE) {
    note("FMSG_API_MAX_DATA_SIZE must not exceed FMSG_API_MAX_MSG_SIZE");
  }
  if (e.FMSG_API_RATE_BURST !== undefined && e.FMSG_API_RATE_LIMIT !== undefined && e.FMSG_API_RATE_BURST < e.FMSG_API_RATE_LIMIT) {
    note("FMSG_API_RATE_BURST must be at least FMSG_API_RATE_LIMIT");
  }
  // Unset, the default 12h shrinks to a shorter maximum; set, it must fit (the server would refuse its own tokens).
  const apiTokenTtlSet = env.FMSG_API_TOKEN_TTL !== undefined && env.FMSG_API_TOKEN_TTL.trim() !== "";
  if (apiTokenTtlSet && e.FMSG_API_TOKEN_TTL !== undefined && e.FMSG_API_MAX_TOKEN_TTL !== undefined && e.FMSG_API_TOKEN_TTL > e.FMSG_API_MAX_TOKEN_TTL) {
    note("FMSG_API_TOKEN_TTL must not exceed FMSG_API_MAX_TOKEN_TTL");
  }
  if (e.FMSG_DOMAIN !== undefined && !/^(localhost|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)$/.test(e.FMSG_DOMAIN)) {
    note(`FMSG_DOMAIN is not a valid domain: "${e.FMSG_DOMAIN}"`);
  }
  const key = (name: string, raw: string | undefined): Uint8Array | null => {
    if (raw === undefined || raw === "") return null;
    try {
      return decodeJwtSecret(raw, name);
    } catch (err) {
      note(err instanceof Error ? err.message : String(err));
      return null;
    }
  };
  const jwtKey = jwtSecret === "" ? null : key("FMSG_API_JWT_SECRET", jwtSecret);
  const jwtPreviousKey = key("FMSG_API_JWT_SECRET_PREVIOUS", e.FMSG_API_JWT_SECRET_PREVIOUS);
  const identityProvider = parseIdentityProvider(e.FMSG_JWT_JWKS_URL, e.FMSG_JWT_ISSUER, e.FMSG_JWT_AUDIENCE, note);
  const databaseSsl = mode === "configured" ? parseDatabaseSsl(env, note) : null;
  let trustedProxies: CidrRange[] = [];
  try {
    trustedProxies = parseTrustedProxies(e.FMSG_TRUSTED_PROXIES);
  } catch (err) {
    note(err instanceof Error ? err.message : String(err));
  }
  if (problems.length > 0 || jwtKey === null) throw new ConfigError(problems.join("\n"));

  const v = e as z.output<typeof envSchema>;
  return {
    mode,
    host: v.FMSG_API_HOST,
    port: v.FMSG_API_PORT,
    tls: v.FMSG_TLS_CERT && v.FMSG_TLS_KEY ? { cert: v.FMSG_TLS_CERT, key: v.FMSG_TLS_KEY, port: v.FMSG_API_TLS_PORT } : null,
    dataDir,
    jwtKey,
    jwtPreviousKey,
    identityProvider,
    domain: v.FMSG_DOMAIN ?? null,
    idUrl,
    idCacheSeconds: v.FMSG_ID_CACHE_SECONDS,
    rateLimit: v.FMSG_API_RATE_LIMIT,
    rateBurst: v.FMSG_API_RATE_BURST,
    rateStoreUrl: v.FMSG_API_RATE_STORE,
    trustedProxies,
    corsOrigins: v.FMSG_CORS_ORIGINS,
    maxDataBytes: v.FMSG_API_MAX_DATA_SIZE * MIB,
    maxAttachBytes: v.FMSG_API_MAX_ATTACH_SIZE * MIB,
    maxMsgBytes: v.FMSG_API_MAX_MSG_SIZE * MIB,
    shortTextSize: v.FMSG_API_SHORT_TEXT_SIZE,
    eventRetentionDays: v.FMSG_API_EVENT_RETENTION_DAYS,
    metrics: v.FMSG_API_METRICS,
    autoMigrate: mode === "embedded" ? true : v.FMSG_API_AUTO_MIGRATE,
    poolSize: v.FMSG_API_DB_POOL_SIZE,
    statementTimeoutMs: v.FMSG_API_DB_STATEMENT_TIMEOUT_MS,
    lockTimeoutMs: v.FMSG_API_DB_LOCK_TIMEOUT_MS,
    shutdownTimeoutMs: v.FMSG_API_SHUTDOWN_TIMEOUT * 1000,
    maxTokenTtl: v.FMSG_API_MAX_TOKEN_TTL,
    apiTokenTtl: Math.min(v.FMSG_API_TOKEN_TTL, v.FMSG_API_MAX_TOKEN_TTL),
    profile: v.FMSG_API_PROFILE,
    log: v.FMSG_API_LOG,
    databaseUrl: v.DATABASE_URL ?? null,
    databaseSsl,
    embeddedDatabaseDir: mode === "embedded" ? embedded!.databaseDir : null,
    crashAt: v.FMSG_TEST_CRASH_AT ?? null,
  };
}

/** Reads KEY=VALUE lines of a .env file; existing variables win. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    let value = m[2] ?? "";
    // A quoted value may be followed by a comment: KEY="value" # note.
    const quoted = /^(["'])(.*?)\1(?:\s+#.*)?$/.exec(value);
    if (quoted) value = quoted[2] ?? "";
    else value = value.replace(/\s+#.*$/, "");
    out[m[1]!] = value;
  }
  return out;
}
