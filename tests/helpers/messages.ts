// Shortcuts for message tests: create/send drafts through the API, snapshot rows and files.
import { expect } from "bun:test";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { draft, type TestServer } from "./server.ts";

export const ALICE = "@alice@example.com";
export const BOB = "@bob@example.com";
export const CAROL = "@carol@other.org";
export const DAVE = "@dave@third.net";
export const EVE = "@eve@stranger.io";

export async function createDraft(s: TestServer, from: string, to: string[], extra: Record<string, unknown> = {}): Promise<number> {
  const res = await s.request("POST", "/fmsg", { as: from, json: draft(from, to, extra) });
  const body = (await res.json()) as { id: number };
  expect(res.status).toBe(201);
  return body.id;
}

export async function sendDraft(s: TestServer, from: string, id: number): Promise<number> {
  const res = await s.request("POST", `/fmsg/${id}/send`, { as: from });
  expect(res.status).toBe(200);
  return ((await res.json()) as { time: number }).time;
}

export async function sentMessage(s: TestServer, from: string, to: string[], extra: Record<string, unknown> = {}): Promise<number> {
  const id = await createDraft(s, from, to, extra);
  await sendDraft(s, from, id);
  return id;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      // Folders count too: a refused write leaves no empty one behind.
      if (e.isDirectory()) {
        out.push(`${p}/`);
        await walk(p);
      } else out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Every row of every table the API writes, plus every file and folder in the data directory. */
export async function snapshot(s: TestServer): Promise<string> {
  const sql = s.db.sql;
  const tables = {
    msg: await sql`select * from msg order by id`,
    msg_to: await sql`select * from msg_to order by id`,
    msg_add_to_batch: await sql`select * from msg_add_to_batch order by id`,
    msg_add_to: await sql`select * from msg_add_to order by id`,
    msg_add_to_notify: await sql`select * from msg_add_to_notify order by id`,
    msg_attachment: await sql`select * from msg_attachment order by msg_id, position`,
  };
  return JSON.stringify({ tables, files: await listFiles(s.dataDir) });
}

export async function errorOf(res: Response): Promise<{ status: number; error: string }> {
  const body = (await res.json()) as { error: string };
  return { status: res.status, error: body.error };
}

/** Who may read a message (GET it, its body, its thread), by role and state: the owner always; recipients once it is sent. */
export const READ_ACCESS: ["owner" | "to" | "addTo" | "stranger", "draft" | "sent", 200 | 403][] = [
  ["owner", "draft", 200],
  ["to", "draft", 403],
  ["addTo", "draft", 403],
  ["stranger", "draft", 403],
  ["owner", "sent", 200],
  ["to", "sent", 200],
  ["addTo", "sent", 200],
  ["stranger", "sent", 403],
];
