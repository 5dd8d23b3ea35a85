// Operations: request log lines (no secrets), X-Request-Id, /metrics on demand, the token command.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { verifyJwt } from "../../src/lib/jwt.ts";
import { ALICE } from "../helpers/messages.ts";
import { until } from "../helpers/poll.ts";
import { startTestServer, TEST_KEY, TEST_SECRET, type TestServer } from "../helpers/server.ts";

describe("request log and request id", () => {
  const lines: Record<string, unknown>[] = [];
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ env: { FMSG_API_LOG: "info" }, log: (l) => lines.push(l) });
  });
  afterAll(() => s.stop());

  test("one JSON line per request: method, path without query, status, duration, id, client ip — never the token", async () => {
    const token = s.token(ALICE);
    const res = await s.request("GET", "/fmsg?limit=5&access_token=supersecret", { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const line = lines.find((l) => l.request_id === id)!;
    expect(line).toMatchObject({ msg: "request", method: "GET", path: "/fmsg", status: 200, client_ip: "127.0.0.1" });
    expect(typeof line.ms).toBe("number");
    const all = JSON.stringify(lines);
    expect(all).not.toContain("supersecret");
    expect(all).not.toContain(token);
  });

  test("a wait whose client went away is logged 499, a timeout 204", async () => {
    const headers = { authorization: `Bearer ${s.token(ALICE)}` };
    const timedOut = await fetch(`${s.url}/fmsg/wait?since_id=999999&timeout=1`, { headers: { ...headers, "x-request-id": "wait-timeout" } });
    expect(timedOut.status).toBe(204);
    const ac = new AbortController();
    const left = fetch(`${s.url}/fmsg/wait?since_id=999999&timeout=30`, { headers: { ...headers, "x-request-id": "wait-left" }, signal: ac.signal }).catch(() => null);
    await until(() => s.server.waiters.size === 1, "the wait registered");
    ac.abort();
    expect(await left).toBeNull();
    await until(() => lines.some((l) => l.request_id === "wait-left"), "the log line of the abandoned wait");
    const statusOf = (id: string) => lines.find((l) => l.request_id === id)?.status;
    expect([statusOf("wait-timeout"), statusOf("wait-left")]).toEqual([204, 499]);
  });

  test("a WebSocket opened is logged 101, as Bun answered it", async () => {
    const ws = new WebSocket(`${s.url.replace("http", "ws")}/fmsg/ws?access_token=${s.token(ALICE)}`, { headers: { "x-request-id": "ws-open" } } as unknown as string[]);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ws.close();
    await until(() => lines.some((l) => l.request_id === "ws-open"), "the log line of the WebSocket");
    expect(lines.find((l) => l.request_id === "ws-open")).toMatchObject({ method: "GET", path: "/fmsg/ws", status: 101 });
  });

  test("downloads and errors carry the request id too", async () => {
    const created = await s.request("POST", "/fmsg", { json: { version: 1, from: ALICE, to: ["@b@example.com"], type: "text/plain", data: "x" } });
    const { id } = (await created.json()) as { id: number };
    const data = await s.request("GET", `/fmsg/${id}/data`, { headers: { "x-request-id": "dl-1" } });
    expect(data.headers.get("x-request-id")).toBe("dl-1");
    await data.arrayBuffer();
    const missing = await s.request("GET", "/fmsg/424242", { headers: { "x-request-id": "err-1" } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-request-id")).toBe("err-1");
    const limited = await s.request("GET", "/nope", { headers: { "x-request-id": "nf-1" } });
    expect(limited.headers.get("x-request-id")).toBe("nf-1");
  });

  test("a well-formed X-Request-Id is echoed; a hostile one is replaced", async () => {
    const echoed = await s.request("GET", "/healthz", { headers: { "x-request-id": "abc-123" } });
    expect(echoed.headers.get("x-request-id")).toBe("abc-123");
    const hostile = await s.request("GET", "/healthz", { headers: { "x-request-id": "a b\"<script>" } });
    expect(hostile.headers.get("x-request-id")).not.toContain("<");
  });
});

describe("/metrics", () => {
  test("absent unless FMSG_API_METRICS=true", async () => {
    const s = await startTestServer();
    try {
      expect((await s.request("GET", "/metrics", { as: null })).status).toBe(404);
    } finally {
      await s.stop();
    }
  });

  test("Prometheus text with requests by route and status, latency, waits, listener, rate limit, identity cache", async () => {
    const s = await startTestServer({ env: { FMSG_API_METRICS: "true" } });
    try {
      await s.request("GET", "/fmsg/123");
      await s.request("GET", "/fmsg", { as: null });
      await s.request("GET", "/fmsg/wait?timeout=x");
      await s.request("GET", "/healthz", { as: null });
      await s.request("GET", "/fmsg/1/attach/a.txt");
      const res = await s.request("GET", "/metrics", { as: null });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toStartWith("text/plain");
      const text = await res.text();
      expect(text).toContain('fmsg_api_requests_total{method="GET",route="/fmsg/:id",status="404"} 1');
      expect(text).toContain('fmsg_api_requests_total{method="GET",route="/fmsg",status="401"} 1');
      // Labelled by the handler that answered, not by a later pattern or a middleware's "/*".
      expect(text).toContain('fmsg_api_requests_total{method="GET",route="/fmsg/wait",status="400"} 1');
      expect(text).toContain('fmsg_api_requests_total{method="GET",route="/healthz",status="200"} 1');
      expect(text).toContain('fmsg_api_requests_total{method="GET",route="/fmsg/:id/attach/:filename",status="404"} 1');
      expect(text).toMatch(/fmsg_api_request_duration_seconds_bucket\{method="GET",route="\/fmsg\/:id",le="\+Inf"\} 1/);
      for (const name of ["fmsg_api_open_waits 0", "fmsg_api_open_event_waits 0", "fmsg_api_requests_in_flight 1", "fmsg_api_listener_connected 1", "fmsg_api_rate_limited_total 0", "fmsg_api_identity_cache_hits", "fmsg_api_identity_cache_misses"]) {
        expect(text).toContain(name);
      }
    } finally {
      await s.stop();
    }
  });
});

describe("token command", () => {
  const run = async (args: string[], env: Record<string, string>, cwd: string) => {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "../../src/main.ts"), "token", ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? "", HOME: cwd, ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { out: out.trim(), err: err.trim(), code };
  };

  test("prints a token signed with the configured secret, with the asked lifetime", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "fmsg-token-"));
    try {
      const { out, code } = await run([ALICE, "--ttl", "2h"], { FMSG_API_JWT_SECRET: TEST_SECRET }, cwd);
      expect(code).toBe(0);
      const now = Date.now() / 1000;
      const verified = verifyJwt(out, TEST_KEY, now);
      expect(verified.ok).toBe(true);
      if (verified.ok) {
        expect(verified.claims.sub).toBe(ALICE);
        expect(Math.abs(Number(verified.claims.exp) - now - 7200)).toBeLessThan(60);
      }
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  test("embedded mode: signs with the secret kept in ./fmsg-data (created once, reused)", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "fmsg-token-"));
    try {
      const first = await run(["@bob@example.com"], {}, cwd);
      expect(first.code).toBe(0);
      const secret = (await Bun.file(join(cwd, "fmsg-data", "jwt-secret")).text()).trim();
      const key = Uint8Array.from(Buffer.from(secret.slice("base64:".length), "base64"));
      expect(verifyJwt(first.out, key, Date.now() / 1000).ok).toBe(true);
      const second = await run(["@bob@example.com"], {}, cwd);
      expect(verifyJwt(second.out, key, Date.now() / 1000).ok).toBe(true);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  test("bad address or ttl: exit 1 with one line", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "fmsg-token-"));
    try {
      for (const args of [["alice"], [ALICE, "--ttl", "forever"], []]) {
        const r = await run(args, { FMSG_API_JWT_SECRET: TEST_SECRET }, cwd);
        expect(r.code).toBe(1);
        expect(r.err.split("\n").length).toBe(1);
        expect(r.out).toBe("");
      }
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
