// Reading messages as a participant: who may see what (docs/API.md §5) and the message JSON with real sizes.
import type { MessageJson } from "../contract/responses.ts";
import { attachmentIsCompressed, messageJson, type StoredMessage } from "../domain/message-json.ts";
import { findMessage, listInbox, listSent, type InboxPage, type Role, type RowPage } from "../db/messages.ts";
import { forbidden } from "../domain/errors.ts";
import { hasShortText, shortText } from "../domain/short-text.ts";
import { fileSize, readHead } from "../storage/file-info.ts";
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

/**
 * The message object; parts fmsgd stored decompressed report the length of the file actually
 * served, and a text body its opening lines (short_text).
 */
export async function shapeMessage(deps: Pick<MessageDeps, "dataDir" | "shortTextSize">, m: StoredMessage): Promise<MessageJson> {
  const { dataDir } = deps;
  const body = m.is_deflate ? ((await fileSize(dataDir, m.filepath)) ?? m.size) : undefined;
  let attachments: Map<string, number> | undefined;
  for (const a of m.attachments) {
    if (!attachmentIsCompressed(a)) continue;
    attachments ??= new Map();
    attachments.set(a.filename, (await fileSize(dataDir, a.filepath)) ?? a.size);
  }
  let text: string | undefined;
  if (deps.shortTextSize > 0 && hasShortText(m.type) && (body ?? m.size) > 0) {
    const head = await readHead(dataDir, m.filepath, deps.shortTextSize);
    if (head) text = shortText(head.bytes, head.truncated);
  }
  return messageJson(m, { body, attachments, shortText: text });
}

/** A page of a folder, and the `before_id` that reads the next one (null: this is the last page). */
export type FolderPage = { messages: MessageJson[]; nextBeforeId: number | null };

async function folderPage(deps: Pick<MessageDeps, "dataDir" | "shortTextSize">, page: RowPage): Promise<FolderPage> {
  const messages = await Promise.all(page.rows.map((m) => shapeMessage(deps, m)));
  return { messages, nextBeforeId: page.more ? page.rows.at(-1)!.id : null };
}

export async function inbox(deps: Pick<MessageDeps, "sql" | "dataDir" | "shortTextSize">, identity: string, page: InboxPage): Promise<FolderPage> {
  return folderPage(deps, await listInbox(deps.sql, identity, page));
}

export async function sentFolder(deps: Pick<MessageDeps, "sql" | "dataDir" | "shortTextSize">, identity: string, page: InboxPage): Promise<FolderPage> {
  return folderPage(deps, await listSent(deps.sql, identity, page));
}
