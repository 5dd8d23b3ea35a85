// Configuration (README "Configuration"): loadConfig's rules and errors, the JWT secret, .env parsing, and the
// real process: a bad configuration is one stderr line naming the variable and exit code 1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { ConfigError, decodeJwtSecret, loadConfig, parseDotEnv, type Env } from "../../src/config.ts";

const BASE: Env = { FMSG_DATA_DIR: "/var/lib/fmsg", FMSG_API_JWT_SECRET: "secret", FMSG_ID_URL: "builtin" };

function configError(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

function without(env: Env, name: string): Env {
  const copy = { ...env };
  delete copy[name];
  return copy;
}

describe("loadConfig: configured mode", () => {
  test("a minimal configuration loads, with the documented defaults", () => {
    const c = loadConfig(BASE);
    expect(c.mode).toBe("configured");
    expect(c.port).toBe(8000);
    expect(c.tls).toBeNull();
    expect(c.dataDir).toBe("/var/lib/fmsg");
    expect(c.idUrl).toBe("builtin");
    expect(c.idCacheSeconds).toBe(30);
    expect(c.rateLimit).toBe(10);
    expect(c.rateBurst).toBe(20);
    expect(c.trustedProxies).toEqual([]);
    expect(c.maxDataBytes).toBe(10 * 1024 * 1024);
    expect(c.maxAttachBytes).toBe(10 * 1024 * 1024);
    expect(c.maxMsgBytes).toBe(20 * 1024 * 1024);
    expect(c.autoMigrate).toBe(false);
    expect(c.databaseUrl).toBeNull();
    expect(Buffer.from(c.jwtKey).toString()).toBe("secret");
  });

  test.each(["FMSG_DATA_DIR", "FMSG_API_JWT_SECRET", "FMSG_ID_URL"])("%s is required and the error names it", (name) => {
    expect(configError(without(BASE, name)).message).toContain(name);
    // An empty value is as good as missing.
    expect(configError({ ...BASE, [name]: "" }).message).toContain(name);
  });

  test("any PG* variable or DATABASE_URL selects configured mode (and its requirements)", () => {
    for (const name of ["DATABASE_URL", "PGHOST", "PGDATABASE", "PGUSER"]) {
      expect(configError({ [name]: "x" }).message).toContain("FMSG_DATA_DIR");
    }
  });

  test("FMSG_ID_URL must be http(s) or builtin; a trailing slash is dropped", () => {
    expect(configError({ ...BASE, FMSG_ID_URL: "ftp://id.example.com" }).message).toContain("FMSG_ID_URL");
    expect(configError({ ...BASE, FMSG_ID_URL: "not a url" }).message).toContain("FMSG_ID_URL");
    expect(loadConfig({ ...BASE, FMSG_ID_URL: "http://fmsgid:8080/" }).idUrl).toBe("http://fmsgid:8080");
  });

  test("a relative FMSG_DATA_DIR is made absolute", () => {
    expect(loadConfig({ ...BASE, FMSG_DATA_DIR: "data/" }).dataDir).toBe(resolve(process.cwd(), "data"));
  });

  test.each([
    ["FMSG_API_MAX_DATA_SIZE", "1.5"],
    ["FMSG_API_MAX_DATA_SIZE", "abc"],
    ["FMSG_API_MAX_DATA_SIZE", "0"],
    ["FMSG_API_MAX_DATA_SIZE", "-1"],
    ["FMSG_API_MAX_DATA_SIZE", "10MB"],
    ["FMSG_API_MAX_ATTACH_SIZE", "0"],
    ["FMSG_API_MAX_ATTACH_SIZE", "2.0"],
    ["FMSG_API_MAX_MSG_SIZE", "-20"],
    ["FMSG_API_MAX_MSG_SIZE", "1e3"],
    ["FMSG_API_RATE_LIMIT", "0"],
    ["FMSG_API_RATE_BURST", "many"],
    ["FMSG_API_PORT", "70000"],
    ["FMSG_API_PORT", "http"],
    ["FMSG_API_TLS_PORT", "-443"],
    ["FMSG_ID_CACHE_SECONDS", "-1"],
    ["FMSG_API_DB_POOL_SIZE", "0"],
    ["FMSG_API_METRICS", "maybe"],
  ])("%s=%p → ConfigError naming the variable", (name, value) => {
    expect(configError({ ...BASE, [name]: value }).message).toContain(name);
  });

  test("valid sizes are MiB", () => {
    const c = loadConfig({ ...BASE, FMSG_API_MAX_DATA_SIZE: "2", FMSG_API_MAX_ATTACH_SIZE: "3", FMSG_API_MAX_MSG_SIZE: "4" });
    expect([c.maxDataBytes, c.maxAttachBytes, c.maxMsgBytes]).toEqual([2, 3, 4].map((n) => n * 1024 * 1024));
  });

  test("FMSG_API_LOG accepts info/off and rejects anything else, naming the variable", () => {
    expect(loadConfig({ ...BASE, FMSG_API_LOG: "off" }).log).toBe("off");
    expect(loadConfig({ ...BASE, FMSG_API_LOG: "INFO" }).log).toBe("info");
    for (const v of ["debug", "verbose", "0"]) {
      expect(configError({ ...BASE, FMSG_API_LOG: v }).message).toContain("FMSG_API_LOG");
    }
  });

  test("FMSG_TRUSTED_PROXIES: IPs and CIDRs, comma-separated; garbage names the variable", () => {
    expect(loadConfig({ ...BASE, FMSG_TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.1,::1, fd00::/8" }).trustedProxies).toHaveLength(4);
    for (const bad of ["nope", "10.0.0.0/33", "10.0.0.0/8,proxy.example.com", "300.1.1.1", "10.0.0.0/8/8", "::1/129", "10.0.0.0/-1"]) {
      const err = configError({ ...BASE, FMSG_TRUSTED_PROXIES: bad });
      expect(err.message).toContain("FMSG_TRUSTED_PROXIES");
    }
  });

  test("TLS: both files set enables it; exactly one set is an error naming the missing one", () => {
    const both = loadConfig({ ...BASE, FMSG_TLS_CERT: "/c.pem", FMSG_TLS_KEY: "/k.pem" });
    expect(both.tls).toEqual({ cert: "/c.pem", key: "/k.pem", port: 443 });
    expect(loadConfig({ ...BASE, FMSG_TLS_CERT: "/c.pem", FMSG_TLS_KEY: "/k.pem", FMSG_API_TLS_PORT: "8443" }).tls?.port).toBe(8443);
    expect(configError({ ...BASE, FMSG_TLS_CERT: "/c.pem" }).message).toContain("FMSG_TLS_KEY");
    expect(configError({ ...BASE, FMSG_TLS_KEY: "/k.pem" }).message).toContain("FMSG_TLS_CERT");
  });

  test("FMSG_DOMAIN must be a domain", () => {
    expect(loadConfig({ ...BASE, FMSG_DOMAIN: "example.com" }).domain).toBe("example.com");
    expect(configError({ ...BASE, FMSG_DOMAIN: "not a domain" }).message).toContain("FMSG_DOMAIN");
  });
});

describe("FMSG_CORS_ORIGINS", () => {
  test("empty by default: no CORS at all", () => {
    expect(loadConfig(BASE).corsOrigins).toEqual([]);
    expect(loadConfig({ ...BASE, FMSG_CORS_ORIGINS: " " }).corsOrigins).toEqual([]);
  });

  test("origins, comma-separated, as a browser spells them in Origin", () => {
    const c = loadConfig({ ...BASE, FMSG_CORS_ORIGINS: "https://app.example.com, http://localhost:5173,HTTPS://Web.Example.org:443, http://[::1]:8080" });
    expect(c.corsOrigins).toEqual(["https://app.example.com", "http://localhost:5173", "https://web.example.org", "http://[::1]:8080"]);
  });

  test('"*" alone allows any origin; beside other origins it is an error', () => {
    expect(loadConfig({ ...BASE, FMSG_CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
    expect(configError({ ...BASE, FMSG_CORS_ORIGINS: "*, https://app.example.com" }).message).toContain("FMSG_CORS_ORIGINS");
  });

  test.each([
    "app.example.com",
    "https://app.example.com/",
    "https://app.example.com/path",
    "https://app.example.com?x=1",
    "https://app.example.com#top",
    "https://user@app.example.com",
    "ftp://app.example.com",
    "null",
    "https://",
    "https://app.example.com:99999",
    "https://app.example.com, nope",
  ])("%p is a startup error naming the variable and the value", (bad) => {
    const message = configError({ ...BASE, FMSG_CORS_ORIGINS: bad }).message;
    expect(message).toContain("FMSG_CORS_ORIGINS");
    expect(message).toContain(bad.split(", ").at(-1)!);
  });
});

describe("FMSG_API_RATE_STORE", () => {
  test("unset, empty or memory: the counters stay in this process", () => {
    expect(loadConfig(BASE).rateStoreUrl).toBeNull();
    expect(loadConfig({ ...BASE, FMSG_API_RATE_STORE: " " }).rateStoreUrl).toBeNull();
    expect(loadConfig({ ...BASE, FMSG_API_RATE_STORE: "Memory" }).rateStoreUrl).toBeNull();
  });

  test.each(["redis://127.0.0.1:6379", "redis://cache", "redis://cache:6379/2", "rediss://fmsg:secret@cache.example.com:6380/0", "redis://[::1]:6379/15"])(
    "%s is kept as given",
    (url) => {
      expect(loadConfig({ ...BASE, FMSG_API_RATE_STORE: url }).rateStoreUrl).toBe(url);
    },
  );

  test.each(["redis", "127.0.0.1:6379", "http://cache:6379", "redis://", "redis:///0", "redis://cache:99999", "redis://cache/db1", "redis://cache/0?timeout=1", "memcached://cache"])(
    "%p is a startup error naming the variable",
    (bad) => {
      expect(configError({ ...BASE, FMSG_API_RATE_STORE: bad }).message).toContain("FMSG_API_RATE_STORE must be memory or a redis:// or rediss:// URL");
    },
  );

  test("the error never repeats a password", () => {
    const message = configError({ ...BASE, FMSG_API_RATE_STORE: "rediss://fmsg:s3cret@cache:6380/x" }).message;
    expect(message).toContain("FMSG_API_RATE_STORE");
    expect(message).not.toContain("s3cret");
  });
});

describe("PGSSLMODE (postgres.js reads only a URL's sslmode)", () => {
  test("each libpq mode maps to TLS options; a URL's sslmode wins; unset leaves it to the URL", () => {
    const ssl = (env: Env) => loadConfig({ ...BASE, ...env }).databaseSsl;
    expect(ssl({})).toBeNull();
    expect(ssl({ PGSSLMODE: "disable" })).toBe(false);
    expect(ssl({ PGSSLMODE: "allow" })).toBe("prefer");
    expect(ssl({ PGSSLMODE: "prefer" })).toBe("prefer");
    expect(ssl({ PGSSLMODE: "require" })).toBe("require");
    expect(ssl({ PGSSLMODE: "verify-full" })).toBe("verify-full");
    expect(ssl({ PGSSLMODE: "verify-ca" })).toMatchObject({ rejectUnauthorized: true });
    expect(ssl({ PGSSLMODE: "require", DATABASE_URL: "postgres://db/fmsg?sslmode=disable" })).toBeNull();
  });

  test("an unknown mode or an unreadable PGSSLROOTCERT is a configuration error naming the variable", () => {
    expect(configError({ ...BASE, PGSSLMODE: "on" }).message).toBe(
      'PGSSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full, got "on"',
    );
    expect(configError({ ...BASE, PGSSLMODE: "verify-full", PGSSLROOTCERT: "/nonexistent/ca.pem" }).message).toStartWith("PGSSLROOTCERT cannot be read:");
  });
});

describe("every problem in one error", () => {
  test("each on its own line, each naming its variable", () => {
    const err = configError({ ...BASE, FMSG_API_RATE_LIMIT: "0", FMSG_DOMAIN: "no", FMSG_ID_URL: "ftp://x", FMSG_TRUSTED_PROXIES: "nope" });
    const lines = err.message.split("\n");
    expect(lines).toHaveLength(4);
    for (const [i, name] of ["FMSG_API_RATE_LIMIT", "FMSG_ID_URL", "FMSG_DOMAIN", "FMSG_TRUSTED_PROXIES"].entries()) {
      expect(lines[i]).toContain(name);
    }
  });
});

describe("FMSG_API_JWT_SECRET_PREVIOUS", () => {
  test("unset by default; decoded like the current secret when set", () => {
    expect(loadConfig(BASE).jwtPreviousKey).toBeNull();
    expect(Buffer.from(loadConfig({ ...BASE, FMSG_API_JWT_SECRET_PREVIOUS: "old" }).jwtPreviousKey!).toString()).toBe("old");
  });
});

describe("identity provider: FMSG_JWT_JWKS_URL, FMSG_JWT_ISSUER, FMSG_JWT_AUDIENCE", () => {
  const IDP: Env = { ...BASE, FMSG_JWT_JWKS_URL: "https://id.example.com/.well-known/jwks.json", FMSG_JWT_ISSUER: "https://id.example.com" };

  test("unset by default: no identity provider", () => {
    expect(loadConfig(BASE).identityProvider).toBeNull();
  });

  test("URL and issuer set: accepted, the audience optional", () => {
    expect(loadConfig(IDP).identityProvider).toEqual({ jwksUrl: IDP.FMSG_JWT_JWKS_URL!, issuer: "https://id.example.com", audience: null });
    expect(loadConfig({ ...IDP, FMSG_JWT_AUDIENCE: "fmsg" }).identityProvider?.audience).toBe("fmsg");
  });

  test("FMSG_JWT_ISSUER is required with the URL, and the error names it", () => {
    expect(configError(without(IDP, "FMSG_JWT_ISSUER")).message).toContain("FMSG_JWT_ISSUER is required when FMSG_JWT_JWKS_URL is set");
  });

  test.each([["FMSG_JWT_ISSUER", "https://id.example.com"], ["FMSG_JWT_AUDIENCE", "fmsg"]])("%s without FMSG_JWT_JWKS_URL is an error naming both", (name, value) => {
    const message = configError({ ...BASE, [name]: value }).message;
    expect(message).toContain(name);
    expect(message).toContain("FMSG_JWT_JWKS_URL");
  });

  test.each(["http://id.example.com/jwks.json", "ftp://id.example.com/jwks", "not a url", "http://10.0.0.5/jwks"])("%s: https only (http only for this machine), naming the variable", (url) => {
    expect(configError({ ...IDP, FMSG_JWT_JWKS_URL: url }).message).toContain("FMSG_JWT_JWKS_URL must be an https URL");
  });

  test.each(["http://127.0.0.1:9000/jwks", "http://localhost/jwks", "http://[::1]:8080/jwks"])("%s: plain http to this machine is allowed", (url) => {
    expect(loadConfig({ ...IDP, FMSG_JWT_JWKS_URL: url }).identityProvider?.jwksUrl).toBe(url);
  });
});

describe("FMSG_API_JWT_SECRET", () => {
  test("a raw string is its UTF-8 bytes", () => {
    expect(Buffer.from(decodeJwtSecret("päss")).toString("hex")).toBe(Buffer.from("päss", "utf8").toString("hex"));
  });

  test("base64: is standard base64 of the key bytes", () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251, 255, 62, 63]);
    expect(Buffer.from(decodeJwtSecret(`base64:${bytes.toString("base64")}`))).toEqual(bytes);
    const c = loadConfig({ ...BASE, FMSG_API_JWT_SECRET: `base64:${bytes.toString("base64")}` });
    expect(Buffer.from(c.jwtKey)).toEqual(bytes);
  });

  test("invalid base64 is an error naming the variable", () => {
    for (const bad of ["base64:!!!!", "base64:abc", "base64:ab-_", "base64:a===", "base64:YWJj ZA=="]) {
      expect(() => decodeJwtSecret(bad)).toThrow(ConfigError);
      expect(configError({ ...BASE, FMSG_API_JWT_SECRET: bad }).message).toContain("FMSG_API_JWT_SECRET");
    }
  });

  test("an empty secret is an error (raw or base64)", () => {
    expect(configError({ ...BASE, FMSG_API_JWT_SECRET: "" }).message).toContain("FMSG_API_JWT_SECRET");
    expect(configError({ ...BASE, FMSG_API_JWT_SECRET: "base64:" }).message).toContain("FMSG_API_JWT_SECRET");
  });
});

describe("parseDotEnv", () => {
  test("KEY=VALUE lines, comments, export, quotes, CRLF", () => {
    const text = [
      "# a comment",
      "",
      "PLAIN=value",
      "  SPACED = padded value  ",
      "export EXPORTED=yes",
      'DOUBLE="quoted # not a comment"',
      'QUOTED_COMMENT="quoted" # a comment after the quotes',
      "SINGLE_COMMENT='single'  # another",
      "SINGLE='single quoted'",
      "INLINE=value # a trailing comment",
      "EMPTY=",
      "URL=postgres://u:p@h:5432/db?sslmode=require",
      "HASH=abc#def",
      "WINDOWS=crlf\r",
      "not a line",
      "1BAD=x",
    ].join("\n");
    expect(parseDotEnv(text)).toEqual({
      PLAIN: "value",
      SPACED: "padded value",
      EXPORTED: "yes",
      DOUBLE: "quoted # not a comment",
      QUOTED_COMMENT: "quoted",
      SINGLE_COMMENT: "single",
      SINGLE: "single quoted",
      INLINE: "value",
      EMPTY: "",
      URL: "postgres://u:p@h:5432/db?sslmode=require",
      HASH: "abc#def",
      WINDOWS: "crlf",
    });
  });

  test("a later line overrides an earlier one", () => {
    expect(parseDotEnv("A=1\nA=2\n")).toEqual({ A: "2" });
  });
});

describe("process: bun src/main.ts serve", () => {
  const MAIN = resolve(import.meta.dir, "../../src/main.ts");
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fmsg-config-test-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A minimal environment: nothing of the test process's own PG* or FMSG_* leaks in. */
  function baseEnv(extra: Record<string, string>): Record<string, string> {
    return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? dir, ...extra };
  }

  async function serve(dotEnv: string | null, env: Record<string, string>) {
    const cwd = await mkdtemp(join(dir, "run-"));
    if (dotEnv !== null) await writeFile(join(cwd, ".env"), dotEnv);
    const proc = Bun.spawn([process.execPath, MAIN, "serve"], { cwd, env: baseEnv(env), stdout: "pipe", stderr: "pipe" });
    // A guard against a process that starts instead of failing (that would be a failed test).
    const guard = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    clearTimeout(guard);
    return { code, stdout, stderr };
  }

  function expectOneLine(stderr: string, name: string) {
    const lines = stderr.split("\n").filter((l) => l.trim() !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(lines[0]).not.toMatch(/\bat \S+ \(|\.ts:\d+/);
  }

  test("PGSSLMODE=require against a server without TLS: no connection in plain text", async () => {
    // A database that does not exist: connecting in plain text would fail on the name instead.
    const url = `${(process.env.FMSG_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres").replace(/\/[^/]*$/, "")}/fmsg_no_such_db`;
    const migrate = async (mode: string) => {
      const proc = Bun.spawn([process.execPath, MAIN, "migrate"], { cwd: dir, env: baseEnv({ DATABASE_URL: url, PGSSLMODE: mode }), stdout: "pipe", stderr: "pipe" });
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      return { code, stderr };
    };
    const plain = await migrate("prefer");
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('database "fmsg_no_such_db" does not exist');
    const admin = postgres(process.env.FMSG_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
    const [{ ssl }] = (await admin`show ssl`) as unknown as [{ ssl: string }];
    await admin.end();
    const required = await migrate("require");
    expect(required.code).toBe(1);
    if (ssl === "on") expect(required.stderr).toContain("does not exist"); // it got there over TLS
    else expect(required.stderr).toContain("before secure TLS connection was established");
  });

  test("a variable missing from both .env and the environment: exit 1, one stderr line naming it", async () => {
    const r = await serve("FMSG_DATA_DIR=/tmp/fmsg-unused\nFMSG_ID_URL=builtin\n", { DATABASE_URL: "postgres://127.0.0.1:1/unused" });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "FMSG_API_JWT_SECRET");
  });

  test("every problem at once: one stderr line each, naming its variable", async () => {
    const r = await serve(null, {
      DATABASE_URL: "postgres://127.0.0.1:1/unused",
      FMSG_API_PORT: "http",
      FMSG_API_MAX_DATA_SIZE: "0",
      FMSG_TLS_CERT: "/tmp/cert.pem",
      FMSG_API_JWT_SECRET_PREVIOUS: "base64:!!",
    });
    expect(r.code).toBe(1);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    const named = ["FMSG_API_PORT", "FMSG_API_MAX_DATA_SIZE", "FMSG_DATA_DIR", "FMSG_API_JWT_SECRET", "FMSG_ID_URL", "FMSG_TLS_KEY", "FMSG_API_JWT_SECRET_PREVIOUS"];
    expect(lines).toHaveLength(named.length);
    for (const name of named) expect(lines.some((l) => l.startsWith("fmsg-webapi: ") && l.includes(name))).toBe(true);
  });

  test("--help and --version answer without any configuration; the version is package.json's", async () => {
    const run = async (arg: string) => {
      const proc = Bun.spawn([process.execPath, MAIN, arg], { cwd: dir, env: baseEnv({}), stdout: "pipe", stderr: "pipe" });
      const [code, stdout] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
      return { code, stdout };
    };
    const { version } = (await Bun.file(resolve(import.meta.dir, "../../package.json")).json()) as { version: string };
    expect(await run("--version")).toEqual({ code: 0, stdout: `${version}\n` });
    const help = await run("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(`fmsg-webapi ${version}`);
    for (const command of ["serve", "migrate", "token", "api-key", "healthcheck"]) expect(help.stdout).toContain(command);
  });

  test("an invalid value in .env is a one-line error naming the variable", async () => {
    const r = await serve("FMSG_DATA_DIR=/tmp/fmsg-unused\nFMSG_ID_URL=builtin\nFMSG_API_MAX_DATA_SIZE=abc\n", {
      DATABASE_URL: "postgres://127.0.0.1:1/unused",
      FMSG_API_JWT_SECRET: "s",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "FMSG_API_MAX_DATA_SIZE");
  });

  test("the real environment wins over .env", async () => {
    // .env's bad FMSG_API_MAX_DATA_SIZE (the previous test shows it fails) is overridden by the
    // environment, so the error is now the missing secret; FMSG_DATA_DIR still came from .env.
    const r = await serve("FMSG_DATA_DIR=/tmp/fmsg-unused\nFMSG_ID_URL=builtin\nFMSG_API_MAX_DATA_SIZE=abc\n", {
      DATABASE_URL: "postgres://127.0.0.1:1/unused",
      FMSG_API_MAX_DATA_SIZE: "5",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "FMSG_API_JWT_SECRET");
  });

  test("a bad FMSG_API_RATE_STORE: exit 1, one stderr line naming it", async () => {
    const r = await serve(null, {
      DATABASE_URL: "postgres://127.0.0.1:1/unused",
      FMSG_DATA_DIR: "/tmp/fmsg-unused",
      FMSG_API_JWT_SECRET: "s",
      FMSG_ID_URL: "builtin",
      FMSG_API_RATE_STORE: "redis:/cache:6379",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "FMSG_API_RATE_STORE");
  });

  test("only one of FMSG_TLS_CERT / FMSG_TLS_KEY: exit 1 naming the other", async () => {
    const r = await serve(null, {
      DATABASE_URL: "postgres://127.0.0.1:1/unused",
      FMSG_DATA_DIR: "/tmp/fmsg-unused",
      FMSG_API_JWT_SECRET: "s",
      FMSG_ID_URL: "builtin",
      FMSG_TLS_CERT: "/tmp/cert.pem",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "FMSG_TLS_KEY");
  });
});
