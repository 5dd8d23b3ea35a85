// GET /fmsg/ws end to end (docs/API.md "WebSocket"): frames for sends, deliveries and add-tos reach exactly the sockets allowed to see them.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { deliverFromAfar } from "../helpers/fmsgd.ts";
import { ALICE, BOB, CAROL, DAVE, EVE, createDraft, sentMessage } from "../helpers/messages.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/poll.ts";
import { openSocket } from "../helpers/raw-socket.ts";

setDefaultTimeout(30_000);

type Frame = { type: string; data: Record<string, unknown> & { id: number; topic: string } };
type Client = { frames: Frame[]; ws: WebSocket; closed: Promise<CloseEvent> };

let s: TestServer;

beforeAll(async () => {
  // FMSG_DOMAIN: recipients on example.com are delivered by the API itself, which raises `delivered`.
  s = await startTestServer({ env: { FMSG_DOMAIN: "example.com" } });
});
afterAll(() => s.stop());

function wsUrl(t: TestServer, query = ""): string {
  return `${t.url.replace(/^http/, "ws")}/fmsg/ws${query}`;
}

/** Opens a socket as `as` (token in the Authorization header, or in access_token) and records its frames. */
async function connect(t: TestServer, as: string, opts: { profile?: string; viaQuery?: boolean; token?: string } = {}): Promise<Client> {
  const token = opts.token ?? t.token(as);
  const headers: Record<string, string> = opts.viaQuery ? {} : { authorization: `Bearer ${token}` };
  if (opts.profile) headers["fmsg-profile"] = opts.profile;
  const query = opts.viaQuery ? `?access_token=${encodeURIComponent(token)}` : "";
  const ws = new WebSocket(wsUrl(t, query), { headers } as unknown as string[]);
  const frames: Frame[] = [];
  ws.addEventListener("message", (e) => frames.push(JSON.parse(String(e.data)) as Frame));
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket did not open")));
  });
  return { frames, ws, closed };
}

async function closeAll(clients: Client[]): Promise<void> {
  for (const c of clients) c.ws.close();
  await Promise.all(clients.map((c) => c.closed));
  await until(() => s.server.sockets.size === 0, "every socket removed");
}

/**
 * Sends a marker message to every identity and waits until each socket got it. Frames go out over
 * one connection in order, so any frame a socket was sent before the marker has arrived by then:
 * what a socket did NOT get can be asserted without waiting for time to pass.
 */
async function settle(clients: Client[], to: string[]): Promise<void> {
  const id = await sentMessage(s, MARKER_SENDER, to, { topic: "marker" });
  await until(() => clients.every((c) => c.frames.some((f) => f.type === "new_msg" && f.data.id === id)), "the marker on every socket");
}

/** On FMSG_DOMAIN, as a sender here must be; never one of the identities whose sockets a test watches. */
const MARKER_SENDER = "@marker@example.com";

const about = (c: Client, id: number) => c.frames.filter((f) => f.data.id === id).map((f) => f.type);

describe("GET /fmsg/ws: frames", () => {
  test("a send: new_msg to every recipient socket (any spelling, either token source, each in its profile), none to the owner or a stranger", async () => {
    const alice = await connect(s, ALICE);
    const bob = await connect(s, BOB);
    const bobShouting = await connect(s, "@BOB@EXAMPLE.COM", { viaQuery: true, profile: "fmsg-003" });
    const carol = await connect(s, CAROL, { profile: "fmsg-003" });
    const eve = await connect(s, EVE);
    const clients = [alice, bob, bobShouting, carol, eve];
    try {
      const id = await createDraft(s, ALICE, [BOB], { add_to: [CAROL] });
      const draftId = await createDraft(s, ALICE, [BOB, EVE]); // a draft is news to nobody
      expect((await s.request("POST", `/fmsg/${draftId}/add-to`, { as: ALICE, json: { add_to: [CAROL] } })).status).toBe(200);
      const sent = await s.request("POST", `/fmsg/${id}/send`, { as: ALICE });
      expect(sent.status).toBe(200);
      await settle(clients, [ALICE, BOB, CAROL, EVE]);

      expect(about(bob, id)).toEqual(["new_msg"]);
      expect(about(bobShouting, id)).toEqual(["new_msg"]);
      expect(about(carol, id)).toEqual(["new_msg"]);
      expect(about(eve, id)).toEqual([]);
      // The owner hears only of the deliveries to the local recipients, never of a recipient's news.
      expect(about(alice, id).every((t) => t === "delivered")).toBe(true);
      for (const c of clients) expect(about(c, draftId)).toEqual([]);

      // seed: add_to is the address list; fmsg-003: the batch objects, seed-only keys left out.
      const seed = bob.frames.find((f) => f.data.id === id)!.data;
      expect(seed).toMatchObject({ id, from: ALICE, to: [BOB], add_to: [CAROL], common_type: false, topic: "Hello", read: false });
      const standard = bobShouting.frames.find((f) => f.data.id === id)!.data;
      expect(standard).toMatchObject({ id, from: ALICE, to: [BOB] });
      expect(standard).not.toHaveProperty("common_type");
      expect(standard).not.toHaveProperty("add_to_batches");
      expect((standard.add_to as { to: string[] }[])[0]!.to).toEqual([CAROL]);
    } finally {
      await closeAll(clients);
    }
  });

  test("an add-to: recipients_added to every participant (owner, to, earlier and new add-to), none to a stranger", async () => {
    const id = await sentMessage(s, ALICE, [BOB], { add_to: [CAROL] });
    const alice = await connect(s, ALICE);
    const bob = await connect(s, BOB, { profile: "fmsg-003" });
    const carol = await connect(s, CAROL);
    const dave = await connect(s, DAVE);
    const eve = await connect(s, EVE);
    const clients = [alice, bob, carol, dave, eve];
    try {
      const res = await s.request("POST", `/fmsg/${id}/add-to`, { as: BOB, json: { add_to: ["@Dave@Third.net"] } });
      expect(res.status).toBe(200);
      await settle(clients, [ALICE, BOB, CAROL, DAVE, EVE]);
      for (const c of [alice, bob, carol, dave]) expect(about(c, id)).toContain("recipients_added");
      for (const c of [bob, carol, dave]) expect(about(c, id)).toEqual(["recipients_added"]);
      expect(about(eve, id)).toEqual([]);
      const frame = bob.frames.find((f) => f.type === "recipients_added" && f.data.id === id)!.data;
      expect((frame.add_to as { to: string[] }[]).map((b) => b.to)).toEqual([[CAROL], ["@Dave@Third.net"]]);
    } finally {
      await closeAll(clients);
    }
  });

  test("a local delivery: delivered to the sender's sockets only", async () => {
    const alice = await connect(s, "@Alice@Example.com");
    const bob = await connect(s, BOB);
    const eve = await connect(s, EVE);
    const clients = [alice, bob, eve];
    try {
      const id = await sentMessage(s, ALICE, [BOB]);
      await until(() => about(alice, id).includes("delivered"), "the delivered frame");
      await settle(clients, [ALICE, BOB, EVE]);
      expect(about(alice, id)).toEqual(["delivered"]);
      expect(about(bob, id)).toEqual(["new_msg"]);
      expect(about(eve, id)).toEqual([]);
      const frame = alice.frames.find((f) => f.data.id === id)!.data;
      expect((frame.to_delivery as { time_delivered: string | null }[])[0]!.time_delivered).toBeString();
    } finally {
      await closeAll(clients);
    }
  });

  // fmsgd writes through its own connection: its commits reach the sockets by NOTIFY, which the
  // embedded database (one session) does not have.
  test.skipIf(EMBEDDED)("fmsgd: a received message → new_msg to its recipient; a remote delivery → delivered to the sender", async () => {
    const id = await createDraft(s, ALICE, [CAROL]); // other.org: fmsgd's business, not local delivery
    const alice = await connect(s, ALICE, { profile: "fmsg-003" });
    const carol = await connect(s, "@carol@OTHER.org");
    const eve = await connect(s, EVE);
    const clients = [alice, carol, eve];
    try {
      expect((await s.request("POST", `/fmsg/${id}/send`, { as: ALICE })).status).toBe(200);
      await s.db.sql`update msg_to set time_delivered = extract(epoch from now()), response_code = 200 where msg_id = ${id}`;
      const [received] = await deliverFromAfar(s.db.sql, ["@CAROL@other.org"], "from afar");
      await settle(clients, [ALICE, CAROL, EVE]);
      expect(about(alice, id)).toEqual(["delivered"]);
      expect(about(carol, id)).toEqual(["new_msg"]);
      expect(about(carol, received!)).toEqual(["new_msg"]);
      for (const c of [alice, eve]) expect(about(c, received!)).toEqual([]);
      expect(about(eve, id)).toEqual([]);
    } finally {
      await closeAll(clients);
    }
  });
});

describe("GET /fmsg/ws: the handshake", () => {
  const handshake = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" };

  test.each([
    ["no token", {}, "", "auth header is empty"],
    ["a bad token in the header", { authorization: "Bearer not.a.token" }, "", "token is malformed"],
    ["a bad token in access_token", {}, "?access_token=not.a.token", "token is malformed"],
  ])("%s → 401 JSON, no upgrade", async (_name, headers, query, error) => {
    const res = await fetch(`${s.url}/fmsg/ws${query}`, { headers: { ...handshake, ...headers } });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="fmsg"');
    expect(await res.json()).toEqual({ error });
    expect(s.server.sockets.size).toBe(0);
  });

  test("access_token given twice: the first counts (a plain GET is then 426, not a validation error)", async () => {
    const res = await fetch(`${s.url}/fmsg/ws?access_token=${s.token(BOB)}&access_token=other`);
    expect(res.status).toBe(426);
    expect(await res.json()).toEqual({ error: "websocket upgrade required" });
  });

  test("access_token is read on the WebSocket route only", async () => {
    const res = await fetch(`${s.url}/fmsg?access_token=${s.token(BOB)}`);
    expect(res.status).toBe(401);
  });

  test("an unknown profile → 400; a plain GET → 426", async () => {
    const bad = await fetch(`${s.url}/fmsg/ws`, { headers: { ...handshake, authorization: `Bearer ${s.token(BOB)}`, "fmsg-profile": "nope" } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: "invalid profile" });
    const plain = await s.request("GET", "/fmsg/ws", { as: BOB });
    expect(plain.status).toBe(426);
    expect(plain.headers.get("upgrade")).toBe("websocket");
    expect(await plain.json()).toEqual({ error: "websocket upgrade required" });
  });

  test.each([
    ["version 8", { "sec-websocket-version": "8" }],
    ["no version", { "sec-websocket-version": "" }],
    ["no key", { "sec-websocket-key": "" }],
  ])("a handshake with %s → 426 JSON naming version 13, no socket", async (_name, change) => {
    const headers: Record<string, string> = { ...handshake, authorization: `Bearer ${s.token(BOB)}` };
    for (const [k, v] of Object.entries(change)) if (v === "") delete headers[k];
    else headers[k] = v;
    const res = await fetch(`${s.url}/fmsg/ws`, { headers });
    expect(res.status).toBe(426);
    expect(res.headers.get("sec-websocket-version")).toBe("13");
    expect(await res.json()).toEqual({ error: "websocket upgrade required" });
    expect(s.server.sockets.size).toBe(0);
  });
});

describe("GET /fmsg/ws: the socket's life", () => {
  test("a client frame over 4 KiB closes the socket with 1009; small ones are dropped quietly", async () => {
    const c = await connect(s, BOB);
    c.ws.send("hello");
    c.ws.send("x".repeat(4000));
    await settle([c], [BOB]); // still open and framed after the small ones
    c.ws.send("x".repeat(5000));
    expect((await c.closed).code).toBe(1009);
    await until(() => s.server.sockets.size === 0, "the socket removed");
  });


  test("a socket whose token expires is closed with 4001 \"token expired\"", async () => {
    const c = await connect(s, BOB, { token: s.token(BOB, 2) });
    const closed = await c.closed;
    expect(closed.code).toBe(4001);
    expect(closed.reason).toBe("token expired");
    await until(() => s.server.sockets.size === 0, "the expired socket removed");
  });

  test("a client that disconnects is removed at once", async () => {
    const c = await connect(s, BOB);
    expect(s.server.sockets.size).toBe(1);
    c.ws.close();
    await until(() => s.server.sockets.size === 0, "the socket removed");
  });

  test("server shutdown closes every socket with 1001", async () => {
    const t = await startTestServer();
    const c = await connect(t, BOB);
    await t.stop();
    const closed = await c.closed;
    // Closed by the server before its drain (Bun's own forced close, after the drain timeout, gives no reason).
    expect(closed.code).toBe(1001);
    expect(closed.reason).toBe("server shutting down");
  });
});

/** The frames of a server→client WebSocket byte stream (unmasked): opcode and payload of each whole frame. */
function wsFrames(bytes: Buffer): { opcode: number; payload: Buffer }[] {
  const out: { opcode: number; payload: Buffer }[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) [len, head] = [bytes.readUInt16BE(at + 2), 4];
    else if (len === 127) [len, head] = [Number(bytes.readBigUInt64BE(at + 2)), 10];
    if (at + head + len > bytes.length) break;
    out.push({ opcode: bytes[at]! & 0x0f, payload: bytes.subarray(at + head, at + head + len) });
    at += head + len;
  }
  return out;
}

// What is tested is Bun's socket buffer and the registry, whatever the database. The embedded one
// did not build the 200 frames of 255 recipients each within the test's bound (CI, 20 s), so this
// runs on PostgreSQL only.
describe.skipIf(EMBEDDED)("GET /fmsg/ws: a client that stops reading", () => {
  test("is closed with 4002 once its frames pile up, instead of the server holding them; it is told why", async () => {
    const socket = await openSocket(s.url);
    let received = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => (received = Buffer.concat([received, d])));
    const ended = new Promise<void>((done) => socket.once("close", () => done()));
    socket.write(
      `GET /fmsg/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token(DAVE)}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await until(() => received.includes("\r\n\r\n"), "the 101 answer");
    expect(received.toString("latin1")).toStartWith("HTTP/1.1 101");
    received = received.subarray(received.indexOf("\r\n\r\n") + 4);
    // From here the client reads nothing: what the server sends piles up in the kernel, then in Bun.
    socket.pause();
    await until(() => s.server.sockets.size === 1, "the socket registered");

    // 200 messages fmsgd received for DAVE, each with 254 more recipients of 130-byte addresses:
    // about 7 MB of frames, more than the kernel's buffers and the server's 1 MiB together.
    await s.db.sql`
      with m as (
        insert into msg (version, from_addr, topic, type, size, filepath, time_sent)
        select 1, '@zed@remote.example', 'bulk', 'text/plain', 0, '/nonexistent', extract(epoch from now())
        from generate_series(1, 200)
        returning id)
      insert into msg_to (msg_id, addr)
      select m.id, a.addr from m, (
        select ${DAVE}::text as addr
        union all
        select '@r' || i || repeat('y', 60) || '@' || repeat('z', 60) || '.example.org' from generate_series(1, 254) i) a`;
    await until(() => s.server.sockets.size === 0, "the stalled socket closed by the server");

    // Reading again, the client gets what was sent before the close, then the close frame and its reason.
    socket.resume();
    await ended;
    const frames = wsFrames(received);
    const close = frames.find((f) => f.opcode === 0x8);
    expect(close && { code: close.payload.readUInt16BE(0), reason: close.payload.subarray(2).toString() }).toEqual({ code: 4002, reason: "too slow: frames were not read" });
    const got = frames.filter((f) => f.opcode === 0x1).length;
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(200);
  });
});
