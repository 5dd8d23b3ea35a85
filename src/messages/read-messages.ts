// Reading messages as a participant: who may see what (docs/API.md §5) and the message JSON with real sizes.
import type { MessageJson } from "../contract/responses.ts";
import { attachmentIsCompressed, messageJson, type StoredMessage } from "../domain/message-json.ts";
import { currentBody, findMessage, listInbox, listSent, type InboxPage, type Role, type RowPage } from "../db/messages.ts";
import { forbidden } from "../domain/errors.ts";
import { hasShortText, shortText } from "../domain/short-text.ts";
import { fileSize, readHead } from "../storage/file-info.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import { messageNotFound } from "./access.ts";
import type { MessageDeps } from "./context.ts";

/** Owner, or recipient (`to` or add-to); the flags come from findMessage, where SQL decided them. */
export function isParticipant(role: Role): boolean {
  return role.is_owner || role.is_to || role.is_add_to;
}

/** A message the identity may read: owner, or recipient of a sent message (drafts are the owner's alone). */
export async function visibleMessage(deps: Pick<MessageDeps, "sql">, identity: string, id: number): Promise<StoredMessage> {
  const m = await findMessage(deps.sql, id, identity);
  if (!m) throw messageNotFound();
  if (m.is_owner || (m.time_sent !== null && isParticipant(m))) return m;
  throw forbidden("access denied");
}

/** Reads of a draft that an edit overtook are repeated up to this many times in all. */
const DRAFT_READ_ATTEMPTS = 3;

/**
 * GET /fmsg/:id. A draft can be replaced while it is read: its short text would then come from
 * another version's file, or be missing with the file removed. Read again while its row moved on.
 */
export async function readOneMessage(deps: MessageDeps, identity: string, id: number): Promise<MessageJson> {
  return readDraftsAgain(deps, async () => {
    const m = await visibleMessage(deps, identity, id);
    return { value: await shapeMessage(deps, m), drafts: m.time_sent === null ? [m] : [] };
  });
}

/** `read` again while one of the drafts it read moved on (see readOneMessage). */
export async function readDraftsAgain<T>(
  deps: Pick<MessageDeps, "sql">,
  read: () => Promise<{ value: T; drafts: { id: number; filepath: string; size: number }[] }>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const { value, drafts } = await read();
    if (attempt === DRAFT_READ_ATTEMPTS || (await Promise.all(drafts.map((d) => bodyUnchanged(deps, d)))).every(Boolean)) return value;
  }
}

/** Whether a draft's row still names the body file (path and size) it named when `d` was read. */
async function bodyUnchanged(deps: Pick<MessageDeps, "sql">, d: { id: number; filepath: string; size: number }): Promise<boolean> {
  const now = await currentBody(deps.sql, d.id);
  return now !== null && now.filepath === d.filepath && now.size === d.size;
}

/**
 * The message object; parts fmsgd stored decompressed report the length of the file actually
 * served, and a text body its opening lines (short_text).
 */
export async function shapeMessage(deps: Pick<MessageDeps, "dataDir" | "shortTextSize" | "shortTexts">, m: StoredMessage): Promise<MessageJson> {
  const { dataDir } = deps;
  const body = m.is_deflate ? ((await fileSize(dataDir, m.filepath)) ?? m.size) : undefined;
  let attachments: Map<string, number> | undefined;
  for (const a of m.attachments) {
    if (!attachmentIsCompressed(a)) continue;
    attachments ??= new Map();
    attachments.set(a.filename, (await fileSize(dataDir, a.filepath)) ?? a.size);
  }
  const text = deps.shortTextSize > 0 && hasShortText(m.type) && (body ?? m.size) > 0 ? await shortTextOf(deps, m) : undefined;
  return messageJson(m, { body, attachments, shortText: text });
}

/** Short texts of sent messages by id and body path, at most this many (each ≤ FMSG_API_SHORT_TEXT_SIZE bytes). */
export const SHORT_TEXT_CACHE_ENTRIES = 4096;

/** Remembered short texts; one per app, shared by every route and frame that shapes messages. */
export type ShortTexts = BoundedMap<string, string>;

export const shortTextCache = (): ShortTexts => new BoundedMap(SHORT_TEXT_CACHE_ENTRIES);

/**
 * The body's short text, read from its file. A sent message's body never changes (drafts are
 * replaced, sent mail is not; fmsgd writes the file before the row), so its short text is kept and
 * an inbox page polled again reads no file. A missing file is not remembered: it may be a moment late.
 */
async function shortTextOf(deps: Pick<MessageDeps, "dataDir" | "shortTextSize" | "shortTexts">, m: StoredMessage): Promise<string | undefined> {
  const key = m.time_sent === null || !deps.shortTexts ? null : `${m.id}\0${m.filepath}`;
  const known = key === null ? undefined : deps.shortTexts!.get(key);
  if (known !== undefined) return known;
  const head = await readHead(deps.dataDir, m.filepath, deps.shortTextSize);
  if (!head) return undefined;
  const text = shortText(head.bytes, head.truncated);
  if (key !== null) deps.shortTexts!.set(key, text);
  return text;
}

/** A page of a folder, and the `before_id` that reads the next one (null: this is the last page). */
export type FolderPage = { messages: MessageJson[]; nextBeforeId: number | null };

async function folderPage(deps: Pick<MessageDeps, "dataDir" | "shortTextSize" | "shortTexts">, page: RowPage): Promise<FolderPage> {
  const messages = await Promise.all(page.rows.map((m) => shapeMessage(deps, m)));
  return { messages, nextBeforeId: page.more ? page.rows.at(-1)!.id : null };
}

export async function inbox(deps: Pick<MessageDeps, "sql" | "dataDir" | "shortTextSize" | "shortTexts">, identity: string, page: InboxPage): Promise<FolderPage> {
  return folderPage(deps, await listInbox(deps.sql, identity, page));
}

export async function sentFolder(deps: Pick<MessageDeps, "sql" | "dataDir" | "shortTextSize" | "shortTexts">, identity: string, page: InboxPage): Promise<FolderPage> {
  return folderPage(deps, await listSent(deps.sql, identity, page));
}
