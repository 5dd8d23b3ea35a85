// GET /fmsg/ws: the 101 answer names the profile of the frames in Fmsg-Profile, like every answer under /fmsg.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";

const BOB = "@bob@example.com";

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

/**
 * Sends a WebSocket handshake over a plain TCP connection and returns the answer's status line and
 * headers (neither fetch nor the WebSocket client shows the headers of a 101).
 */
async function handshake(headers: Record<string, string>): Promise<{ status: string; headers: Headers }> {
  const { hostname, port } = new URL(s.url);
  let received = "";
  let done: (head: string) => void;
  const head = new Promise<string>((resolve) => (done = resolve));
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_socket, chunk) {
        received += chunk.toString("latin1");
        const end = received.indexOf("\r\n\r\n");
        if (end >= 0) done(received.slice(0, end));
      },
      close() {
        done(received);
      },
    },
  });
  const lines = [
    "GET /fmsg/ws HTTP/1.1",
    `Host: ${hostname}:${port}`,
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  const [status = "", ...rest] = (await head).split("\r\n");
  socket.end();
  const parsed = new Headers();
  for (const line of rest) {
    const colon = line.indexOf(":");
    if (colon > 0) parsed.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  await until(() => s.server.sockets.size === 0, "the socket removed");
  return { status, headers: parsed };
}

describe("GET /fmsg/ws: the 101 answer", () => {
  test.each([
    ["no Fmsg-Profile: the host default", {}, "seed"],
    ["Fmsg-Profile: fmsg-003", { "Fmsg-Profile": "fmsg-003" }, "fmsg-003"],
  ])("%s is named in Fmsg-Profile", async (_name, asked: Record<string, string>, profile) => {
    const answer = await handshake({ Authorization: `Bearer ${s.token(BOB)}`, ...asked });
    expect(answer.status).toBe("HTTP/1.1 101 Switching Protocols");
    expect(answer.headers.get("upgrade")?.toLowerCase()).toBe("websocket");
    expect(answer.headers.get("fmsg-profile")).toBe(profile);
  });
});
