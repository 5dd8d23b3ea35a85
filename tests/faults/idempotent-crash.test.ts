// kill -9 after an idempotent write has committed but before it is answered; after a restart the
// retry with the same key gets the original result (the key was recorded with the effect).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mintToken } from "../../src/lib/jwt.ts";
import { startChildServer, type ChildServer } from "../helpers/child-server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { ALICE, BOB } from "../helpers/messages.ts";
import { draft, EMBEDDED, TEST_KEY } from "../helpers/server.ts";

let db: TestDatabase;
let dataDir: string;
let server: ChildServer | null = null;

const start = (crashAt?: string) =>
  startChildServer({ databaseUrl: db.url, dataDir, env: crashAt ? { FMSG_TEST_CRASH_AT: crashAt } : {} });

function call(s: ChildServer, path: string, key: string | null, body?: string | FormData): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${mintToken(ALICE, TEST_KEY, 600)}` };
  if (key !== null) headers["idempotency-key"] = key;
  if (typeof body === "string") headers["content-type"] = "application/json";
  return fetch(`${s.url}${path}`, { method: "POST", headers, body });
}

function attachment(): FormData {
  const form = new FormData();
  form.append("file", new Blob(["attached once"], { type: "text/plain" }), "a.txt");
  return form;
}

type Case = {
  crashAt: string;
  request: (s: ChildServer, id: number, key: string) => Promise<Response>;
  /** What the database holds after the crash: the effect, exactly once, and the answer it implies. */
  expected: (id: number, key: string) => Promise<{ status: number; body: unknown }>;
};

const CASES: Case[] = [
  {
    crashAt: "create:committed",
    request: (s, _id, key) => call(s, "/fmsg", key, JSON.stringify(draft(ALICE, [BOB], { topic: key }))),
    expected: async (_id, key) => {
      const rows = await db.sql<{ id: number }[]>`select id::int from msg where topic = ${key}`;
      expect(rows).toHaveLength(1);
      return { status: 201, body: { id: rows[0]!.id } };
    },
  },
  {
    crashAt: "send:committed",
    request: (s, id, key) => call(s, `/fmsg/${id}/send`, key),
    expected: async (id) => {
      const [row] = await db.sql<{ time: number }[]>`select time_sent as time from msg where id = ${id}`;
      expect(row!.time).not.toBeNull();
      return { status: 200, body: { id, time: row!.time } };
    },
  },
  {
    crashAt: "attach:committed",
    request: (s, id, key) => call(s, `/fmsg/${id}/attach`, key, attachment()),
    expected: async (id) => {
      const rows = await db.sql`select filename, filesize from msg_attachment where msg_id = ${id}`;
      expect(rows).toHaveLength(1);
      return { status: 201, body: { filename: "a.txt", size: "attached once".length } };
    },
  },
];

describe.skipIf(EMBEDDED)("kill -9 between an idempotent write's commit and its answer (PostgreSQL)", () => {
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(join(tmpdir(), "fmsg-idem-crash-"));
    server = await start();
  });
  afterAll(async () => {
    await server?.kill("SIGTERM");
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test.each(CASES.map((c) => [c.crashAt, c] as const))("%s: the retry gets the original result", async (_name, c) => {
    const made = await call(server!, "/fmsg", null, JSON.stringify(draft(ALICE, [BOB])));
    expect(made.status).toBe(201);
    const { id } = (await made.json()) as { id: number };
    const key = `crash-${c.crashAt}-${crypto.randomUUID()}`;
    await server!.kill("SIGTERM");

    const crashing = await start(c.crashAt);
    const answered = await c.request(crashing, id, key).then(
      (res) => res.status,
      () => "no answer",
    );
    expect(answered).toBe("no answer");
    await crashing.exited;
    expect(crashing.proc.signalCode).toBe("SIGKILL");

    server = await start();
    const expected = await c.expected(id, key);
    const retry = await c.request(server, id, key);
    expect({ status: retry.status, body: await retry.json(), replayed: retry.headers.get("idempotent-replayed") }).toEqual({
      ...expected,
      replayed: "true",
    });
    await c.expected(id, key); // still exactly once
  });
});
