// HTTPS (README "Configuration"): with FMSG_TLS_CERT and FMSG_TLS_KEY the server also serves TLS on
// FMSG_API_TLS_PORT, next to the plain HTTP port.
import { afterAll, beforeAll, expect, test as anyTest } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { toolsPresent } from "../helpers/tools.ts";

const HAS_TOOLS = toolsPresent(import.meta.path, ["openssl"]);
const test = anyTest.skipIf(!HAS_TOOLS);

let dir: string;
let s: TestServer;
let httpUrl: string;
let httpsUrl: string;

beforeAll(async () => {
  if (!HAS_TOOLS) return;
  dir = await mkdtemp(join(tmpdir(), "fmsg-tls-test-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const openssl = Bun.spawnSync(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (openssl.exitCode !== 0) throw new Error(`openssl failed: ${openssl.stderr.toString()}`);
  s = await startTestServer({ env: { FMSG_TLS_CERT: cert, FMSG_TLS_KEY: key, FMSG_API_TLS_PORT: "0" } });
  const urls = s.server.urls.map((u) => u.replace(/\/$/, ""));
  httpUrl = urls.find((u) => u.startsWith("http:"))!;
  httpsUrl = urls.find((u) => u.startsWith("https:"))!;
});
afterAll(async () => {
  if (!HAS_TOOLS) return;
  await s?.stop();
  await rm(dir, { recursive: true, force: true });
});

const insecure = { tls: { rejectUnauthorized: false } } as RequestInit;

test("the running server lists a plain HTTP and an HTTPS URL on different ports", () => {
  expect(s.server.urls).toHaveLength(2);
  expect(httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(httpsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  const port = (u: string) => Number(new URL(u).port);
  expect(port(httpsUrl)).toBeGreaterThan(0);
  expect(port(httpsUrl)).not.toBe(port(httpUrl));
});

test("HTTPS /healthz answers 200", async () => {
  const res = await fetch(`${httpsUrl}/healthz`, insecure);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ status: "ok" });
});

test("HTTPS serves the API too (authenticated GET /fmsg)", async () => {
  const res = await fetch(`${httpsUrl}/fmsg`, { ...insecure, headers: { authorization: `Bearer ${s.token("@alice@example.com")}` } });
  expect(res.status).toBe(200);
  const unauth = await fetch(`${httpsUrl}/fmsg`, insecure);
  expect(unauth.status).toBe(401);
});

test("the HTTPS port really speaks TLS with the configured (self-signed) certificate", async () => {
  // Verified normally, the self-signed certificate is refused: proof that TLS is in use.
  await expect(fetch(`${httpsUrl}/healthz`)).rejects.toThrow();
  // Plain HTTP to the TLS port is not answered as HTTP.
  const plain = await fetch(`${httpsUrl.replace("https:", "http:")}/healthz`).then(
    (r) => r.status,
    () => "failed",
  );
  expect(plain).not.toBe(200);
});

test("the plain HTTP port still works", async () => {
  const res = await fetch(`${httpUrl}/healthz`);
  expect(res.status).toBe(200);
  const api = await fetch(`${httpUrl}/fmsg`, { headers: { authorization: `Bearer ${s.token("@alice@example.com")}` } });
  expect(api.status).toBe(200);
});
