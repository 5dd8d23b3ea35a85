// msg_attachment rows: look-up by name (case-insensitive), insert/replace at a position, delete and renumber.
import type { StoredAttachment } from "../domain/message-json.ts";
import type { Sql, Tx } from "./pool.ts";

export type AttachmentRecord = StoredAttachment & { position: number };

export async function findAttachment(sql: Sql | Tx, msgId: number, filename: string): Promise<AttachmentRecord | null> {
  const rows = await sql<AttachmentRecord[]>`
    select filename, filesize as size, flags, type, filepath, position from msg_attachment
    where msg_id = ${msgId} and lower(filename) = lower(${filename})
    order by (filename = ${filename}) desc limit 1`;
  return rows[0] ?? null;
}

/** Count and total bytes of a message's attachments, optionally leaving out one name (being replaced). */
export async function attachmentTotals(tx: Tx, msgId: number, except: string | null = null): Promise<{ count: number; bytes: number }> {
  const [row] = await tx<{ count: number; bytes: number }[]>`
    select count(*)::int as count, coalesce(sum(filesize), 0)::int8 as bytes
    from msg_attachment
    where msg_id = ${msgId} and (${except}::text is null or lower(filename) <> lower(${except}::text))`;
  return { count: row?.count ?? 0, bytes: row?.bytes ?? 0 };
}

export async function nextAttachmentPosition(tx: Tx, msgId: number): Promise<number> {
  const [row] = await tx<{ p: number }[]>`
    select coalesce(max(position) + 1, 0)::int as p from msg_attachment where msg_id = ${msgId}`;
  return row?.p ?? 0;
}

export type NewAttachment = { position: number; type: string; filename: string; size: number; filepath: string };

export async function insertAttachment(tx: Tx, msgId: number, a: NewAttachment): Promise<void> {
  await tx`
    insert into msg_attachment (msg_id, position, flags, type, filename, filesize, filepath)
    values (${msgId}, ${a.position}, 0, ${a.type}, ${a.filename}, ${a.size}, ${a.filepath})`;
}

/** Points an existing attachment (found by its stored name) at a new upload; its position stays. */
export async function replaceAttachment(tx: Tx, msgId: number, oldName: string, a: Omit<NewAttachment, "position">): Promise<void> {
  await tx`
    update msg_attachment set filename = ${a.filename}, type = ${a.type}, flags = 0, filesize = ${a.size}, filepath = ${a.filepath}
    where msg_id = ${msgId} and filename = ${oldName}`;
}

/** Deletes one attachment row and closes the gap, so positions stay 0…n-1. */
export async function deleteAttachment(tx: Tx, msgId: number, filename: string): Promise<AttachmentRecord | null> {
  const rows = await tx<AttachmentRecord[]>`
    delete from msg_attachment where msg_id = ${msgId} and filename = ${filename}
    returning filename, filesize as size, flags, type, filepath, position`;
  const gone = rows[0] ?? null;
  if (gone) {
    await tx`update msg_attachment set position = position - 1 where msg_id = ${msgId} and position > ${gone.position}`;
  }
  return gone;
}

export async function bodySize(tx: Tx, msgId: number): Promise<number> {
  const [row] = await tx<{ size: number }[]>`select size from msg where id = ${msgId}`;
  return row?.size ?? 0;
}
