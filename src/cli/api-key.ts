// The operator's `api-key create | list | rotate | revoke` commands, against the same database as `serve`.
import { parseArgs } from "node:util";
import { configuredModeSelected, ConfigError, loadConfig, parseTtl, type Env } from "../config.ts";
import { insertApiKey, listApiKeys, revokeApiKey, rotateApiKey, type ApiKeyInfo } from "../db/api-keys.ts";
import { openDatabase } from "../db/open-database.ts";
import type { Sql } from "../db/pool.ts";
import { migrate } from "../db/schema.ts";
import { domainOf, isValidAddress } from "../domain/address.ts";
import { prepareEmbeddedDefaults } from "../embedded-defaults.ts";
import { formatApiKey, hashSecret, KEY_ID_PATTERN, newKeyId, newSecret } from "../lib/api-key.ts";
import { parseCidr } from "../lib/ip.ts";

export const API_KEY_USAGE = `usage: fmsg-webapi api-key create @user@domain [--ttl 90d | --expires <RFC 3339>] [--cidr 10.0.0.0/8,…] [--label text] [--json]
       fmsg-webapi api-key list [@user@domain] [--json]
       fmsg-webapi api-key rotate <key_id>
       fmsg-webapi api-key revoke <key_id>`;

/** A mistake the operator can fix: printed as one line, exit 1. */
class CommandError extends Error {}

type Output = { out: (text: string) => void; err: (text: string) => void };
const stdio: Output = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** A new key for `address`: stored as a salted hash; the returned key string exists nowhere else. */
export async function issueApiKey(
  sql: Sql,
  opts: { address: string; label?: string | null; cidrs?: readonly string[]; expiresAt?: Date | null },
): Promise<{ key: string; info: ApiKeyInfo }> {
  const keyId = newKeyId();
  const secret = newSecret();
  const { salt, hash } = hashSecret(secret);
  const info = await insertApiKey(sql, { keyId, address: opts.address, salt, hash, label: opts.label ?? null, cidrs: opts.cidrs ?? [], expiresAt: opts.expiresAt ?? null });
  return { key: formatApiKey(keyId, secret), info };
}

/** A new secret for a key that is not revoked; null when there is no such key or it is revoked. */
export async function rotateApiKeySecret(sql: Sql, keyId: string): Promise<{ key: string; info: ApiKeyInfo } | null> {
  const secret = newSecret();
  const info = await rotateApiKey(sql, keyId, hashSecret(secret));
  return info ? { key: formatApiKey(keyId, secret), info } : null;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * Milliseconds of an RFC 3339 time, or NaN. Each field must exist on the calendar: Date.parse rolls
 * 2027-02-30 over to March 2 and 24:00 to the next day, which would quietly change what was asked.
 */
function parseRfc3339(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) return Number.NaN;
  // "Z" has no offset fields: they count as 0.
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = [m[1], m[2], m[3], m[4], m[5], m[6], m[8], m[9]].map((v) => Number(v ?? 0)) as number[];
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  const fits = month! >= 1 && month! <= 12 && day! >= 1 && day! <= daysInMonth && hour! <= 23 && minute! <= 59 && second! <= 59 && offsetHours! <= 23 && offsetMinutes! <= 59;
  return fits ? Date.parse(text) : Number.NaN;
}

/** Seconds-precision UTC, the way the table shows times. */
const shownTime = (d: Date | null) => (d === null ? "-" : d.toISOString().replace(/\.\d{3}Z$/, "Z"));

function status(k: ApiKeyInfo, now: number): "active" | "revoked" | "expired" {
  if (k.revokedAt !== null) return "revoked";
  if (k.expiresAt !== null && k.expiresAt.getTime() <= now) return "expired";
  return "active";
}

function keyJson(k: ApiKeyInfo, now: number) {
  return {
    key_id: k.keyId,
    address: k.address,
    label: k.label,
    cidrs: k.cidrs,
    expires_at: k.expiresAt?.toISOString() ?? null,
    created_at: k.createdAt.toISOString(),
    rotated_at: k.rotatedAt.toISOString(),
    revoked_at: k.revokedAt?.toISOString() ?? null,
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    status: status(k, now),
  };
}

/** Columns padded to their widest cell; the last one is not padded. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

function createOptions(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ttl: { type: "string" }, expires: { type: "string" }, cidr: { type: "string" }, label: { type: "string" }, json: { type: "boolean" } },
  });
  const address = positionals[0];
  if (positionals.length !== 1 || address === undefined) throw new CommandError("create takes exactly one address");
  if (!isValidAddress(address)) throw new CommandError(`"${address}" is not a valid address (@user@domain)`);
  if (values.ttl !== undefined && values.expires !== undefined) throw new CommandError("give --ttl or --expires, not both");
  let expiresAt: Date | null = null;
  if (values.ttl !== undefined) {
    const seconds = parseTtl(values.ttl);
    if (seconds === null) throw new CommandError(`--ttl must look like 3600, 90s, 15m, 12h or 30d, got "${values.ttl}"`);
    expiresAt = new Date(Date.now() + seconds * 1000);
  }
  if (values.expires !== undefined) {
    const ms = parseRfc3339(values.expires);
    if (Number.isNaN(ms)) throw new CommandError(`--expires must be an RFC 3339 time such as 2027-01-31T00:00:00Z, got "${values.expires}"`);
    if (ms <= Date.now()) throw new CommandError(`--expires is in the past: ${values.expires}`);
    expiresAt = new Date(ms);
  }
  const cidrs: string[] = [];
  for (const entry of (values.cidr ?? "").split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const range = parseCidr(entry);
    if (!range) throw new CommandError(`--cidr: "${entry}" is not an IP address or CIDR range`);
    cidrs.push(`${range.address}/${range.prefix}`);
  }
  if (values.cidr !== undefined && cidrs.length === 0) throw new CommandError("--cidr needs at least one range, such as 203.0.113.0/24");
  const label = values.label ?? null;
  if (label !== null && (label.length > 200 || /[\u0000-\u001f\u007f]/.test(label))) {
    throw new CommandError("--label must be at most 200 characters, without control characters");
  }
  return { address, expiresAt, cidrs, label, json: values.json === true };
}

function keyIdArgument(command: string, args: string[]): string {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const keyId = positionals[0];
  if (positionals.length !== 1 || keyId === undefined) throw new CommandError(`${command} takes exactly one key id`);
  if (!KEY_ID_PATTERN.test(keyId)) throw new CommandError(`"${keyId}" is not a key id (12 or more letters and digits)`);
  return keyId;
}

const HINT = "Log in with: fmsg login <the key above>   (or set FMSG_API_KEY=<the key> for fmsg)\n";

async function run(sql: Sql, subcommand: string, args: string[], domain: string | null, io: Output): Promise<void> {
  const now = Date.now();
  if (subcommand === "create") {
    const o = createOptions(args);
    if (domain !== null && domainOf(o.address) !== domain.toLowerCase()) {
      throw new CommandError(`${o.address} is not on this host's domain ${domain} (FMSG_DOMAIN)`);
    }
    const { key, info } = await issueApiKey(sql, o);
    if (o.json) {
      io.out(`${JSON.stringify({ key, ...keyJson(info, now) })}\n`);
      return;
    }
    const details = [`expires ${info.expiresAt ? shownTime(info.expiresAt) : "never"}`];
    if (info.cidrs.length > 0) details.push(`only from ${info.cidrs.join(", ")}`);
    if (info.label !== null) details.push(`label ${JSON.stringify(info.label)}`);
    io.err(`API key ${info.keyId} for ${info.address} (${details.join("; ")}). It is shown only this once:\n`);
    io.out(`${key}\n`);
    io.err(HINT);
    return;
  }
  if (subcommand === "list") {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" } } });
    const address = positionals[0] ?? null;
    if (positionals.length > 1) throw new CommandError("list takes at most one address");
    if (address !== null && !isValidAddress(address)) throw new CommandError(`"${address}" is not a valid address (@user@domain)`);
    const keys = await listApiKeys(sql, address);
    if (values.json) {
      io.out(`${JSON.stringify(keys.map((k) => keyJson(k, now)), null, 2)}\n`);
      return;
    }
    if (keys.length === 0) {
      io.out(address ? `no API keys for ${address}\n` : "no API keys\n");
      return;
    }
    const header = ["KEY ID", "ADDRESS", "LABEL", "CIDRS", "EXPIRES", "LAST USED", "STATUS"];
    const rows = keys.map((k) => [k.keyId, k.address, k.label ?? "-", k.cidrs.join(",") || "any", k.expiresAt ? shownTime(k.expiresAt) : "never", shownTime(k.lastUsedAt), status(k, now)]);
    io.out(table([header, ...rows]));
    return;
  }
  if (subcommand === "rotate") {
    const keyId = keyIdArgument("rotate", args);
    const rotated = await rotateApiKeySecret(sql, keyId);
    if (!rotated) throw new CommandError(`no API key ${keyId} that is not revoked`);
    io.err(`New secret for API key ${keyId} (${rotated.info.address}); the old key and tokens made from it stop working. It is shown only this once:\n`);
    io.out(`${rotated.key}\n`);
    io.err(HINT);
    return;
  }
  if (subcommand === "revoke") {
    const keyId = keyIdArgument("revoke", args);
    const revoked = await revokeApiKey(sql, keyId);
    if (!revoked) throw new CommandError(`no API key ${keyId}`);
    io.out(`revoked API key ${keyId} (${revoked.address}); tokens made from it stop working within 5 seconds\n`);
    return;
  }
  throw new CommandError(subcommand === "" ? "missing subcommand" : `unknown subcommand "${subcommand}"`);
}

function explain(err: unknown): string {
  const code = err !== null && typeof err === "object" ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code === "42P01") return 'the API key table is missing: run "fmsg-webapi migrate" first';
  if (/embedded database .* is in use by process/.test(message)) return `${message}; stop the server to manage API keys in the embedded mode`;
  return `database error: ${message}`;
}

/**
 * Runs `api-key <subcommand> …` and returns the exit code. Configured mode needs only the database
 * settings (and FMSG_DOMAIN, when set, which `create` holds addresses to); the embedded mode uses
 * ./fmsg-data, migrated first as `serve` would.
 */
export async function apiKeyCommand(env: Env, args: string[], io: Output = stdio): Promise<number> {
  const [subcommand = "", ...rest] = args;
  const fail = (message: string) => {
    io.err(`fmsg-webapi: ${message}\n`);
    return 1;
  };
  if (!["create", "list", "rotate", "revoke"].includes(subcommand)) {
    return fail(`${subcommand === "" ? "missing subcommand" : `unknown subcommand "${subcommand}"`}\n${API_KEY_USAGE}`);
  }
  // Arguments are checked before any database is opened: a typo costs nothing.
  try {
    if (subcommand === "create") createOptions(rest);
    else if (subcommand === "rotate" || subcommand === "revoke") keyIdArgument(subcommand, rest);
  } catch (err) {
    if (err instanceof CommandError || (err instanceof Error && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      return fail(`${err.message}\n${API_KEY_USAGE}`);
    }
    throw err;
  }
  const config = configuredModeSelected(env)
    ? loadConfig({ FMSG_DATA_DIR: "/unused", FMSG_API_JWT_SECRET: "unused", FMSG_ID_URL: "builtin", ...env, FMSG_API_DB_POOL_SIZE: "1" })
    : loadConfig(env, await prepareEmbeddedDefaults());
  let database;
  try {
    database = await openDatabase(config);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return fail(explain(err));
  }
  try {
    if (config.autoMigrate) await migrate(database.sql);
    await run(database.sql, subcommand, rest, config.domain, io);
    return 0;
  } catch (err) {
    if (err instanceof CommandError || (err instanceof Error && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      return fail(err.message);
    }
    return fail(explain(err));
  } finally {
    await database.close();
  }
}
