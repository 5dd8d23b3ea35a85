// A wait outlives the server's idle timeout, while other idle connections are still cut (src/server.ts IDLE_TIMEOUT_SECONDS).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ idleTimeoutSeconds: 1 });
});
afterAll(() => s.stop());

test("a 3-second wait on a 1-second idle timeout ends with 204, not a reset", async () => {
  const res = await s.request("GET", "/fmsg/wait?timeout=3", { as: "@quiet@example.com" });
  expect(res.status).toBe(204);
});

test("a connection that stalls half-way through its request head is still closed (slowloris)", async () => {
  const url = new URL(s.url);
  const closed = await new Promise<boolean>((resolve) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    socket.on("close", () => resolve(true));
    socket.on("error", () => resolve(true));
  });
  expect(closed).toBe(true);
});
