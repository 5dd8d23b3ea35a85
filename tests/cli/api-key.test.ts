// `fmsg-webapi api-key create | list | rotate | revoke` as the operator runs it (bun src/main.ts …),
// in the configured mode (PostgreSQL) and the embedded default (./fmsg-data).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findApiKey } from "../../src/db/api-keys.ts";
import { EMBEDDED_POOL_OPTIONS, startEmbeddedDatabase } from "../../src/db/embedded.ts";
import { openPool } from "../../src/db/pool.ts";
import { parseApiKey, secretMatches } from "../../src/lib/api-key.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { EMBEDDED, startTestServer } from "../helpers/server.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");
const KEY_LINE = /^fmsgk_[A-Za-z0-9]{12,}_[A-Za-z0-9_-]{43}$/;

let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), "fmsg-api-key-cli-"));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

/** Runs the command with only `env` (nothing of the test process's own PG* or FMSG_* leaks in). */
async function apiKey(args: string[], env: Record<string, string> = {}, dir = cwd) {
  const proc = Bun.spawn([process.execPath, MAIN, "api-key", ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: dir, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out, err, code };
}

/** The key a create or rotate printed: the only line on stdout. */
function printedKey(r: { out: string; code: number; err: string }): string {
  expect(r.code, r.err).toBe(0);
  const lines = r.out.split("\n").filter((l) => l !== "");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(KEY_LINE);
  expect(r.err).toContain("fmsg login");
  return lines[0]!;
}

describe.skipIf(EMBEDDED)("configured mode (PostgreSQL)", () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    env = { DATABASE_URL: db.url, FMSG_DOMAIN: "example.com" };
  });
  afterAll(() => db?.drop());

  test("create prints the key once, with a hint; the server takes it at POST /fmsg/token", async () => {
    const key = printedKey(await apiKey(["create", "@alice@example.com", "--label", "laptop", "--ttl", "30d"], env));
    const s = await startTestServer({ database: db });
    try {
      const res = await s.request("POST", "/fmsg/token", { as: null, headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(200);
      expect((await res.json()) as object).toHaveProperty("access_token");
    } finally {
      await s.stop();
    }
  });

  test("list: an aligned table of every key (or one address's), never a secret; --json for scripts", async () => {
    const bob = printedKey(await apiKey(["create", "@bob@example.com", "--cidr", "10.0.0.0/8,192.0.2.1", "--expires", "2099-01-31T00:00:00Z"], env));
    const all = await apiKey(["list"], env);
    expect(all.code).toBe(0);
    const lines = all.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^KEY ID +ADDRESS +LABEL +CIDRS +EXPIRES +LAST USED +STATUS$/);
    expect(lines).toHaveLength(3);
    const bobLine = lines.find((l) => l.includes("@bob@example.com"))!;
    expect(bobLine).toContain("10.0.0.0/8,192.0.2.1/32");
    expect(bobLine).toContain("2099-01-31T00:00:00Z");
    expect(lines.find((l) => l.includes("@alice@example.com"))).toContain("laptop");
    // Aligned: every column starts where its header does.
    for (const header of ["ADDRESS", "STATUS"]) {
      const at = lines[0]!.indexOf(header);
      for (const line of lines.slice(1)) expect(line[at - 1]).toBe(" ");
    }
    expect(all.out).not.toContain(parseApiKey(bob)!.secret);

    const one = await apiKey(["list", "@BOB@example.com", "--json"], env);
    expect(one.code).toBe(0);
    const rows = JSON.parse(one.out) as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key_id: parseApiKey(bob)!.keyId, address: "@bob@example.com", cidrs: ["10.0.0.0/8", "192.0.2.1/32"], status: "active", last_used_at: null });
    expect(Object.keys(rows[0]!).some((k) => /secret|hash|salt|^key$/.test(k))).toBe(false);
  });

  test("rotate: a new secret for the same id; the old one no longer matches", async () => {
    const old = printedKey(await apiKey(["create", "@carol@example.com"], env));
    const { keyId, secret } = parseApiKey(old)!;
    const fresh = printedKey(await apiKey(["rotate", keyId], env));
    expect(parseApiKey(fresh)!.keyId).toBe(keyId);
    const stored = (await findApiKey(db.sql, keyId))!;
    expect(secretMatches(parseApiKey(fresh)!.secret, stored)).toBe(true);
    expect(secretMatches(secret, stored)).toBe(false);
  });

  test("revoke: the key shows as revoked and cannot be rotated any more", async () => {
    const { keyId } = parseApiKey(printedKey(await apiKey(["create", "@dave@example.com"], env)))!;
    const revoked = await apiKey(["revoke", keyId], env);
    expect(revoked.code).toBe(0);
    expect(revoked.out).toContain(`revoked API key ${keyId}`);
    expect((await apiKey(["list", "@dave@example.com"], env)).out).toMatch(/ revoked\n$/);
    const again = await apiKey(["rotate", keyId], env);
    expect(again.code).toBe(1);
    expect(again.err).toContain(keyId);
  });

  test("--expires on a leap day with an offset is taken as written", async () => {
    const r = await apiKey(["create", "@leap@example.com", "--expires", "2096-02-29T12:00:00+02:00", "--json"], env);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { expires_at: string }).expires_at).toBe("2096-02-29T10:00:00.000Z");
  });

  test.each([
    [["create", "alice"], "not a valid address"],
    [["create", "@alice@elsewhere.org"], "FMSG_DOMAIN"],
    [["create", "@alice@example.com", "--ttl", "forever"], "--ttl"],
    [["create", "@alice@example.com", "--expires", "2001-01-01T00:00:00Z"], "past"],
    [["create", "@alice@example.com", "--expires", "2099-02-30T00:00:00Z"], "RFC 3339"],
    [["create", "@alice@example.com", "--expires", "2099-04-31T00:00:00Z"], "RFC 3339"],
    [["create", "@alice@example.com", "--expires", "2099-01-01T24:00:00Z"], "RFC 3339"],
    [["create", "@alice@example.com", "--expires", "2099-01-01T00:00:00+25:00"], "RFC 3339"],
    [["create", "@alice@example.com", "--cidr", "10.0.0.0/33"], "--cidr"],
    [["revoke", "NoSuchKey000000"], "no API key NoSuchKey000000"],
    [["rotate", "short"], "not a key id"],
    [["destroy"], "unknown subcommand"],
  ])("%p → exit 1, saying why on stderr", async (args, why) => {
    const r = await apiKey(args, env);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err.split("\n")[0]).toStartWith("fmsg-webapi: ");
    expect(r.err).toContain(why);
  });
});

describe("embedded mode (./fmsg-data)", () => {
  test("create, list, rotate and revoke work on the embedded database, which keeps the key's hash", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fmsg-api-key-embedded-"));
    try {
      const key = printedKey(await apiKey(["create", "@erin@example.com", "--label", "phone"], {}, dir));
      const { keyId } = parseApiKey(key)!;
      const listed = await apiKey(["list", "--json"], {}, dir);
      expect(listed.code).toBe(0);
      expect(JSON.parse(listed.out)).toMatchObject([{ key_id: keyId, address: "@erin@example.com", label: "phone", status: "active" }]);
      const rotated = printedKey(await apiKey(["rotate", keyId], {}, dir));
      expect((await apiKey(["revoke", keyId], {}, dir)).code).toBe(0);

      const database = await startEmbeddedDatabase(join(dir, "fmsg-data", "pglite"));
      const sql = openPool({ url: database.url, ...EMBEDDED_POOL_OPTIONS });
      try {
        const stored = (await findApiKey(sql, keyId))!;
        expect(secretMatches(parseApiKey(rotated)!.secret, stored)).toBe(true);
        expect(stored.revokedAt).not.toBeNull();
      } finally {
        await sql.end({ timeout: 5 });
        await database.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
