// Error responses (docs/API.md "Errors", "Limits"): every failure is {"error": …} JSON with the right status,
// never a 500, a stack trace or SQL; JSON bodies are checked for type, shape, size and UTF-8.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { until } from "../helpers/poll.ts";
import { openSocket } from "../helpers/raw-socket.ts";
import { draft, startTestServer, type TestServer } from "../helpers/server.ts";

const ALICE = "@alice@example.com";
const MIB = 1024 * 1024;

let s: TestServer;
/** The server's log lines. */
const logged: Record<string, unknown>[] = [];

beforeAll(async () => {
  // 1 MiB message data: the streaming cap of a message JSON body is then a few MiB.
  s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "1" }, log: (line) => logged.push(line) });
});
afterAll(async () => {
  await s?.stop();
});

/** No stack frames, file paths or SQL in anything a client sees. */
function expectNoLeak(text: string) {
  expect(text).not.toMatch(/^\s*at\s/m);
  expect(text).not.toMatch(/\bat \S+ \(|\.ts:\d+|\/work\/|node_modules/);
  expect(text).not.toMatch(/\b(select|insert into|update \w+ set|delete from)\b/i);
  expect(text).not.toMatch(/postgres|syntax error|relation "/i);
}

/** Checks the JSON error shape and returns the error text. */
async function expectError(res: Response, status: number, text?: string): Promise<string> {
  const raw = await res.text();
  expectNoLeak(raw);
  expect(res.status).not.toBe(500);
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const body = JSON.parse(raw) as Record<string, unknown>;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error).toBe("string");
  expect((body.error as string).length).toBeGreaterThan(0);
  if (text !== undefined) expect(body.error).toBe(text);
  return body.error as string;
}

const msgCount = async () => Number((await s.db.sql`select count(*)::int as n from msg`)[0]!.n);

const postRaw = (body: string | Uint8Array, contentType: string | null) =>
  s.request("POST", "/fmsg", { as: ALICE, body, headers: contentType === null ? {} : { "content-type": contentType } });

describe("unknown routes and methods", () => {
  test("unknown route outside /fmsg → 404 JSON", async () => {
    await expectError(await s.request("GET", "/nope", { as: null }), 404);
    await expectError(await s.request("POST", "/nope/deeper?x=1", { as: null }), 404);
  });

  test("unknown route under /fmsg with a valid token → 404 JSON", async () => {
    await expectError(await s.request("GET", "/fmsg/1/nope", { as: ALICE }), 404);
    await expectError(await s.request("GET", "/fmsg/1/send/now", { as: ALICE }), 404);
  });

  test("wrong method on a known path → 404/405 JSON", async () => {
    for (const [method, path] of [
      ["PATCH", "/fmsg"],
      ["DELETE", "/fmsg"],
      ["POST", "/fmsg/wait"],
      ["PATCH", "/fmsg/1"],
    ] as const) {
      const res = await s.request(method, path, { as: ALICE });
      expect([404, 405]).toContain(res.status);
      await expectError(res, res.status);
    }
  });
});

describe("JSON bodies (POST /fmsg)", () => {
  test("malformed JSON → 400", async () => {
    for (const text of ['{"version": 1,', "{version: 1}", "{'a': 1}", "nul", '{"a":1}}']) {
      await expectError(await postRaw(text, "application/json"), 400);
    }
  });

  test("empty body → 400", async () => {
    await expectError(await postRaw("", "application/json"), 400);
  });

  test.each([["[]"], ['[{"version":1}]'], ['"hello"'], ["42"], ["null"], ["true"]])(
    "JSON %s instead of an object → 400",
    async (text) => {
      await expectError(await postRaw(text, "application/json"), 400);
    },
  );

  test("no content type → 415", async () => {
    const body = new TextEncoder().encode(JSON.stringify(draft(ALICE, ["@bob@example.com"])));
    const res = await postRaw(body, null);
    await expectError(res, 415);
  });

  test("text/plain → 415", async () => {
    await expectError(await postRaw(JSON.stringify(draft(ALICE, ["@bob@example.com"])), "text/plain"), 415);
  });

  test("another JSON-ish type (application/xml, application/jsonx) → 415", async () => {
    const body = JSON.stringify(draft(ALICE, ["@bob@example.com"]));
    await expectError(await postRaw(body, "application/xml"), 415);
    await expectError(await postRaw(body, "application/jsonx"), 415);
  });

  test("application/json; charset=utf-8 is accepted", async () => {
    const before = await msgCount();
    for (const type of ["application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"]) {
      const res = await postRaw(JSON.stringify(draft(ALICE, ["@bob@example.com"])), type);
      expect(res.status).toBe(201);
      const body = (await res.json()) as { id: unknown };
      expect(typeof body.id).toBe("number");
    }
    expect(await msgCount()).toBe(before + 3);
  });

  test("invalid UTF-8 → 400 and no row", async () => {
    const before = await msgCount();
    const json = JSON.stringify(draft(ALICE, ["@bob@example.com"], { data: "XX" }));
    const bytes = new TextEncoder().encode(json);
    const at = json.indexOf("XX");
    bytes[at] = 0xc3; // a lead byte followed by "X": not UTF-8
    bytes[at + 1] = 0x28;
    await expectError(await postRaw(bytes, "application/json"), 400);
    const lone = new TextEncoder().encode(json);
    lone[at] = 0xff;
    await expectError(await postRaw(lone, "application/json"), 400);
    expect(await msgCount()).toBe(before);
  });
});

describe("size limits (FMSG_API_MAX_DATA_SIZE=1)", () => {
  test("a ~4 MiB JSON body → 413 message data exceeds maximum size, no row", async () => {
    const before = await msgCount();
    const json = JSON.stringify(draft(ALICE, ["@bob@example.com"], { data: "x".repeat(4 * MIB) }));
    await expectError(await postRaw(json, "application/json"), 413, "message data exceeds maximum size");
    expect(await msgCount()).toBe(before);
  });

  test("a ~4 MiB JSON body streamed without Content-Length → 413, no row", async () => {
    const before = await msgCount();
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"version":1,"from":"@alice@example.com","to":["@bob@example.com"],"type":"text/plain","data":"'));
      },
      pull(controller) {
        if (sent >= 4 * MIB) {
          controller.enqueue(new TextEncoder().encode('"}'));
          controller.close();
          return;
        }
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${s.url}/fmsg`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token(ALICE)}`, "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    await expectError(res, 413, "message data exceeds maximum size");
    expect(await msgCount()).toBe(before);
  });

  /** Sends half of a message's JSON body (its framing says more follows), closes, and returns the request id. */
  async function cutOff(framing: "content-length" | "chunked"): Promise<string> {
    const json = JSON.stringify(draft(ALICE, ["@bob@example.com"], { data: "z".repeat(64 * 1024) }));
    const half = json.slice(0, json.length / 2);
    const requestId = crypto.randomUUID();
    const socket = await openSocket(s.url);
    socket.write(
      `POST /fmsg HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${s.token(ALICE)}\r\nX-Request-Id: ${requestId}\r\n` +
        `Content-Type: application/json\r\n` +
        (framing === "chunked" ? `Transfer-Encoding: chunked\r\n\r\n${half.length.toString(16)}\r\n${half}\r\n` : `Content-Length: ${json.length}\r\n\r\n${half}`),
    );
    socket.end();
    return requestId;
  }

  test.each(["content-length", "chunked"] as const)("a JSON body cut off (%s) → 400 in the log, no row, the server goes on", async (framing) => {
    const before = await msgCount();
    const requestId = await cutOff(framing);
    await until(() => logged.some((l) => l.request_id === requestId), "the cut-off request's log line");
    const line = logged.find((l) => l.request_id === requestId)!;
    expect(line.status).toBe(400);
    expect(logged.filter((l) => l.level === "error")).toEqual([]);
    expect(await msgCount()).toBe(before);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  test("data just over the limit inside a body under the stream cap → 413, no row", async () => {
    const before = await msgCount();
    const json = JSON.stringify(draft(ALICE, ["@bob@example.com"], { data: "y".repeat(MIB + 1) }));
    await expectError(await postRaw(json, "application/json"), 413, "message data exceeds maximum size");
    expect(await msgCount()).toBe(before);
  });

  test("data exactly at the limit is accepted", async () => {
    const res = await postRaw(JSON.stringify(draft(ALICE, ["@bob@example.com"], { data: "z".repeat(MIB) })), "application/json");
    expect(res.status).toBe(201);
  });
});

describe("validation errors are 400 JSON with the first problem", () => {
  test("a JSON object that is not a valid message → 400, no row", async () => {
    const before = await msgCount();
    await expectError(await s.request("POST", "/fmsg", { as: ALICE, json: {} }), 400);
    await expectError(await s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, []) }), 400);
    await expectError(await s.request("POST", "/fmsg", { as: ALICE, json: draft(ALICE, ["not-an-address"]) }), 400);
    expect(await msgCount()).toBe(before);
  });

  test("invalid ids and query parameters → 400 JSON, never 500", async () => {
    await expectError(await s.request("GET", "/fmsg/abc", { as: ALICE }), 400, "invalid message id");
    await expectError(await s.request("GET", "/fmsg/0", { as: ALICE }), 400, "invalid message id");
    await expectError(await s.request("GET", "/fmsg/-1", { as: ALICE }), 400, "invalid message id");
    await expectError(await s.request("GET", "/fmsg/99999999999999999999", { as: ALICE }), 400, "invalid message id");
    await expectError(await s.request("GET", "/fmsg/wait?timeout=abc", { as: ALICE }), 400, "invalid timeout");
  });
});
