// Broken uploads — truncated, abandoned, stalled, with extra file parts — never stop the server and
// never leave a file descriptor or a temp file behind (busboy's error paths must destroy every part
// stream, or a late error stops the process; its file limit counts every file part, not just ours).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mintToken } from "../../src/lib/jwt.ts";
import { startChildServer, type ChildServer } from "../helpers/child-server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB } from "../helpers/messages.ts";
import { openSocket } from "../helpers/raw-socket.ts";
import { draft, startTestServer, TEST_KEY, type TestServer } from "../helpers/server.ts";

const BOUNDARY = "----fmsgfaultboundary";
const FILE = "x".repeat(256 * 1024);

/**
 * A server under test, in this process or a child; `fds` lists what its descriptors point at.
 * Both run with a pool of one connection, so a pool growing lazily is never counted as a leak.
 */
type Target = { url: string; dataDir: string; fds: () => string[]; alive: () => boolean };

const partHead = (name: string, filename: string) =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
const CLOSING = `\r\n--${BOUNDARY}--\r\n`;
const WHOLE_BODY = `${partHead("file", "up.bin")}${FILE}${CLOSING}`;

function requestHead(id: number, framing: string): string {
  return (
    `POST /fmsg/${id}/attach HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    `Authorization: Bearer ${mintToken(ALICE, TEST_KEY, 600)}\r\n` +
    `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nConnection: close\r\n${framing}\r\n`
  );
}

/** Sends `bytes` and reads until the server closes: the status and body of its answer. */
async function exchange(t: Target, bytes: string): Promise<{ status: number; text: string }> {
  const socket = await openSocket(t.url);
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((done) => socket.once("close", () => done()));
  socket.write(bytes);
  await closed;
  const text = Buffer.concat(chunks).toString("latin1");
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.name === "pglite") continue; // the embedded database's own files
    if (e.isDirectory()) await walk(join(dir, e.name), out);
    else out.push(e.name);
  }
  return out;
}
const tempFiles = async (t: Target) => (await walk(t.dataDir)).filter((n) => n.startsWith(".tmp-"));

async function eventually(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await Bun.sleep(25);
  }
}

/** Sends the request head and half the file, and returns once the server has a temp file open for it. */
async function halfUpload(t: Target, id: number): Promise<Socket> {
  const before = new Set(await tempFiles(t));
  const socket = await openSocket(t.url);
  socket.write(requestHead(id, `Content-Length: ${WHOLE_BODY.length}\r\n`));
  socket.write(`${partHead("file", "up.bin")}${FILE.slice(0, FILE.length / 2)}`);
  const started = await eventually(async () => (await tempFiles(t)).some((n) => !before.has(n)));
  if (!started) throw new Error("the server never started writing the upload");
  return socket;
}

const fdCount = (t: Target) => t.fds().length;
const tempFds = (t: Target) => t.fds().filter((p) => p.includes("/.tmp-"));

/** The server is up, no temp file or descriptor is left, and the draft got no attachment. */
async function expectCleanAfter(t: Target, sql: TestDatabase["sql"], id: number, fdsBefore: number) {
  const clean = await eventually(async () => t.alive() && fdCount(t) <= fdsBefore && (await tempFiles(t)).length === 0);
  expect(t.alive()).toBe(true);
  expect(await tempFiles(t)).toEqual([]);
  expect(tempFds(t)).toEqual([]);
  if (!clean) expect(fdCount(t)).toBeLessThanOrEqual(fdsBefore);
  const health = await fetch(`${t.url}/healthz`, { headers: { connection: "close" } });
  expect(health.status).toBe(200);
  const [row] = await sql`select count(*)::int as n from msg_attachment where msg_id = ${id}`;
  expect(row!.n).toBe(0);
}

async function createDraftAt(t: Target, from = ALICE): Promise<number> {
  const res = await fetch(`${t.url}/fmsg`, {
    method: "POST",
    headers: { authorization: `Bearer ${mintToken(from, TEST_KEY, 600)}`, "content-type": "application/json", connection: "close" },
    body: JSON.stringify(draft(from, [BOB])),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: number }).id;
}

/** `body` (which never ends the form) framed by Content-Length, or by chunked encoding that ends properly. */
function truncated(id: number, body: string, framing: "content-length" | "chunked"): string {
  if (framing === "content-length") return requestHead(id, `Content-Length: ${body.length}\r\n`) + body;
  const half = Math.floor(body.length / 2);
  const chunk = (s: string) => (s.length ? `${s.length.toString(16)}\r\n${s}\r\n` : "");
  return `${requestHead(id, "Transfer-Encoding: chunked\r\n")}${chunk(body.slice(0, half))}${chunk(body.slice(half))}0\r\n\r\n`;
}

const CUTS = [
  ["inside the part's headers", WHOLE_BODY.slice(0, 40)],
  ["half-way through a large file", WHOLE_BODY.slice(0, partHead("file", "up.bin").length + FILE.length / 2)],
  ["after a large file, before the closing boundary", WHOLE_BODY.slice(0, -CLOSING.length)],
  // Small enough that the parser fails before the consumer has started reading the part.
  ["after a small file, before the closing boundary", `${partHead("file", "up.bin")}small`],
] as const;

/**
 * The runtime opens a few descriptors once, on first use (it duplicates stdio lazily): one good
 * upload before measuring, so the counts compare leaks only.
 */
async function warmUp(t: Target): Promise<void> {
  const id = await createDraftAt(t);
  const res = await exchange(t, requestHead(id, `Content-Length: ${WHOLE_BODY.length}\r\n`) + WHOLE_BODY);
  if (res.status !== 201) throw new Error(`warm-up upload failed: ${res.text}`);
}

const inProcess = (s: TestServer): Target => ({
  url: s.url,
  dataDir: s.dataDir,
  fds: () => readdirSync("/proc/self/fd").map((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return ""; // closed between listing and reading
    }
  }),
  alive: () => true, // an unhandled error here would end this test process
});

describe("in-process server", () => {
  let s: TestServer;
  let t: Target;
  beforeAll(async () => {
    s = await startTestServer({ idleTimeoutSeconds: 1, env: { FMSG_API_DB_POOL_SIZE: "1", FMSG_API_MAX_ATTACH_SIZE: "1" } });
    t = inProcess(s);
    await warmUp(t);
  });
  afterAll(() => s.stop());

  for (const framing of ["content-length", "chunked"] as const) {
    test.each(CUTS)(`body cut off ${framing === "chunked" ? "(chunked) " : ""}%s → 400 malformed multipart body`, async (_label, body) => {
      const id = await createDraftAt(t);
      const before = fdCount(t);
      const res = await exchange(t, truncated(id, body, framing));
      expect(res.status).toBe(400);
      expect(res.text).toContain('{"error":"malformed multipart body"}');
      await expectCleanAfter(t, s.db.sql, id, before);
    });
  }

  test.each([
    ["over the size limit", "big.bin", 413, "attachment exceeds maximum size"],
    ["with a refused file name", "../x", 400, "invalid filename"],
  ] as const)("a large upload %s is refused before its body ends, and nothing is left", async (_label, name, status, error) => {
    const id = await createDraftAt(t);
    const before = fdCount(t);
    const body = `${partHead("file", name)}${"y".repeat(1536 * 1024)}${CLOSING}`;
    const res = await exchange(t, requestHead(id, `Content-Length: ${body.length}\r\n`) + body);
    expect(res.status).toBe(status);
    expect(res.text).toContain(JSON.stringify({ error }));
    await expectCleanAfter(t, s.db.sql, id, before);
  });

  test("client disconnects mid-file: temp file and its descriptor are released", async () => {
    const id = await createDraftAt(t);
    const before = fdCount(t);
    (await halfUpload(t, id)).destroy();
    await expectCleanAfter(t, s.db.sql, id, before);
  });

  test("a stalled upload is cut by the idle timeout, and what it held is released", async () => {
    const id = await createDraftAt(t);
    const before = fdCount(t);
    const socket = await halfUpload(t, id);
    await new Promise<void>((done) => socket.once("close", () => done())); // the server's idle timeout
    await expectCleanAfter(t, s.db.sql, id, before);
  });

  test("50 uploads abandoned in a row leave nothing open", async () => {
    const id = await createDraftAt(t);
    const before = fdCount(t);
    for (let i = 0; i < 50; i++) (await halfUpload(t, id)).destroy();
    await expectCleanAfter(t, s.db.sql, id, before);
  });

  test("other file parts before `file` are skipped, and `file` is stored byte-exact", async () => {
    const id = await createDraftAt(t);
    const body =
      `${partHead("avatar", "a.png")}${"a".repeat(70_000)}\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n` +
      `${partHead("other", "b.bin")}bbbb\r\n` +
      `${partHead("file", "kept.txt")}the kept bytes\r\n` +
      `${partHead("later", "c.bin")}cccc${CLOSING}`;
    const res = await s.request("POST", `/fmsg/${id}/attach`, {
      body,
      headers: { "content-type": `multipart/form-data; boundary=${BOUNDARY}`, connection: "close" },
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ filename: "kept.txt", size: 14 });
    const rows = await s.db.sql`select filename from msg_attachment where msg_id = ${id}`;
    expect(rows.map((r) => r.filename)).toEqual(["kept.txt"]);
    const back = await s.request("GET", `/fmsg/${id}/attach/kept.txt`, { headers: { connection: "close" } });
    expect(await back.text()).toBe("the kept bytes");
  });

  test("after all that abuse a normal upload still works", async () => {
    const id = await createDraftAt(t);
    const res = await exchange(t, requestHead(id, `Content-Length: ${WHOLE_BODY.length}\r\n`) + WHOLE_BODY);
    expect(res.status).toBe(201);
    expect(res.text).toContain(`{"filename":"up.bin","size":${FILE.length}}`);
    expect(await tempFiles(t)).toEqual([]);
  });
});

describe("a real server process", () => {
  let db: TestDatabase;
  let dataDir: string;
  let child: ChildServer;
  let t: Target;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(join(tmpdir(), "fmsg-upload-faults-"));
    child = await startChildServer({ databaseUrl: db.url, dataDir, env: { FMSG_API_DB_POOL_SIZE: "1" } });
    const fdDir = `/proc/${child.proc.pid}/fd`;
    t = {
      url: child.url,
      dataDir,
      fds: () => {
        try {
          return readdirSync(fdDir).map((fd) => {
            try {
              return readlinkSync(`${fdDir}/${fd}`);
            } catch {
              return "";
            }
          });
        } catch {
          return []; // the process is gone; alive() says so
        }
      },
      alive: () => child.alive(),
    };
    await warmUp(t);
  });
  afterAll(async () => {
    await child?.kill();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test("survives every kind of broken upload, still answering /healthz, with nothing left open", async () => {
    const abuse: [string, (id: number) => Promise<unknown>][] = [
      ...CUTS.map(([label, body]): [string, (id: number) => Promise<unknown>] => [`cut off ${label}`, (id) => exchange(t, truncated(id, body, "content-length"))]),
      ...CUTS.map(([label, body]): [string, (id: number) => Promise<unknown>] => [`cut off (chunked) ${label}`, (id) => exchange(t, truncated(id, body, "chunked"))]),
      ["client disconnect", async (id) => (await halfUpload(t, id)).destroy()],
      ["20 disconnects in a row", async (id) => {
        for (let i = 0; i < 20; i++) (await halfUpload(t, id)).destroy();
      }],
    ];
    for (const [label, run] of abuse) {
      const id = await createDraftAt(t);
      const before = fdCount(t);
      await run(id);
      try {
        await expectCleanAfter(t, db.sql, id, before);
      } catch (err) {
        // A crash shows as a refused request first; give the exit a moment to be reported.
        const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(2000).then(() => false)]);
        throw new Error(`after "${label}": ${String(err)}\nserver ${exited ? "exited" : "still running"}:\n${child.lines.slice(-20).join("\n")}`);
      }
    }
    const id = await createDraftAt(t);
    const res = await exchange(t, requestHead(id, `Content-Length: ${WHOLE_BODY.length}\r\n`) + WHOLE_BODY);
    expect(res.status).toBe(201);
  });
});
