// FMSG_API_TOKEN_TTL: the lifetime of tokens minted from API keys (default 12h, never above FMSG_API_MAX_TOKEN_TTL).
import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";

const base = { FMSG_DATA_DIR: "/tmp/fmsg-unused", FMSG_API_JWT_SECRET: "s", FMSG_ID_URL: "builtin" };
const load = (env: Record<string, string>) => loadConfig({ ...base, ...env });

describe("FMSG_API_TOKEN_TTL", () => {
  test.each([
    [{}, 12 * 3600],
    [{ FMSG_API_TOKEN_TTL: "90s" }, 90],
    [{ FMSG_API_TOKEN_TTL: "3600" }, 3600],
    // Unset, the default gives way to a shorter maximum rather than stopping the server.
    [{ FMSG_API_MAX_TOKEN_TTL: "1h" }, 3600],
  ])("%p → %i seconds", (env, seconds) => {
    expect(load(env).apiTokenTtl).toBe(seconds);
  });

  test.each([
    [{ FMSG_API_TOKEN_TTL: "forever" }, "FMSG_API_TOKEN_TTL must look like"],
    [{ FMSG_API_TOKEN_TTL: "2d", FMSG_API_MAX_TOKEN_TTL: "1d" }, "FMSG_API_TOKEN_TTL must not exceed FMSG_API_MAX_TOKEN_TTL"],
  ])("%p is a configuration error naming the variable", (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });
});
