// Attachments of drafts: streamed upload with limits re-checked under the row lock, replace by name, delete.
import { crashPoint } from "../lib/crash-point.ts";
import { isValidFilename } from "../domain/filename.ts";
import { parseMediaType, typeFromFilename } from "../domain/media-type.ts";
import {
  attachmentTotals,
  bodySize,
  deleteAttachment,
  findAttachment,
  insertAttachment,
  nextAttachmentPosition,
  replaceAttachment,
} from "../db/attachments.ts";
import { mayHaveCommitted } from "../db/errors.ts";
import { findMessageHead, lockMessage } from "../db/messages.ts";
import { beginKnown } from "../db/outcome.ts";
import { invalid, notFound, tooLarge } from "../domain/errors.ts";
import { MAX_ATTACHMENTS } from "../domain/limits.ts";
import { SizeLimitError, stageFile, writeWithRow } from "../storage/atomic-file.ts";
import { releaseFile, stageForDraft } from "./files.ts";
import { attachmentDir, folderOfDraft } from "../storage/data-dir.ts";
import { requireOwnedDraft } from "./access.ts";
import type { Once } from "./idempotency.ts";
import type { MessageDeps } from "./context.ts";

const ATTACH_TOO_LARGE = "attachment exceeds maximum size";
const TOTAL_TOO_LARGE = "total message size exceeds limit";
const UPLOAD_TEXTS = { notOwner: "only the owner may upload attachments", sent: "attachments cannot be added to a sent message" };
const DELETE_TEXTS = { notOwner: "only the owner may delete attachments", sent: "attachments of a sent message cannot be deleted" };

/** One uploaded file as the transport hands it over. */
export type FilePart = {
  /** The part's filename exactly as sent (no path stripping: "a/b" stays "a/b" and is refused). */
  filename: string;
  /** The part's Content-Type header as sent (not yet validated); null when the part had none. */
  contentType: string | null;
  /** Ends at the part's boundary; throws (never hangs) if the body breaks off or the upload is abandoned. */
  stream: AsyncIterable<Uint8Array>;
};

export const invalidFilename = () => invalid("invalid filename");

/** Owner and draft checks before a single byte of the upload is read; the draft's attach/ folder. */
export async function checkUploadAllowed(deps: MessageDeps, identity: string, id: number): Promise<string> {
  const head = requireOwnedDraft(await findMessageHead(deps.sql, id, identity), UPLOAD_TEXTS);
  return attachmentDir(deps.dataDir, folderOfDraft(deps.dataDir, id, head)!);
}

async function currentTotals(deps: MessageDeps, id: number, filename: string) {
  return deps.sql.begin(async (tx) => ({ body: await bodySize(tx, id), others: await attachmentTotals(tx, id, filename) }));
}

/**
 * Streams the part to a temp file in the draft's attach/ folder, cut off at the tighter of the
 * per-file and whole-message limits as known now; then, under the message's row lock, re-checks
 * that it is still a draft and still within the limits, renames and inserts the row.
 */
export async function uploadAttachment(
  deps: MessageDeps,
  identity: string,
  id: number,
  dir: string,
  part: FilePart,
  once?: Once<{ filename: string; size: number }>,
): Promise<{ filename: string; size: number }> {
  const { filename } = part;
  if (!isValidFilename(filename)) throw invalidFilename();
  // A valid type is stored as type/subtype (parameters dropped); an absent or invalid one is inferred.
  const sent = part.contentType === null ? null : parseMediaType(part.contentType);
  const type = sent?.essence ?? typeFromFilename(filename);

  const seen = await currentTotals(deps, id, filename);
  const room = deps.maxMsgBytes - seen.body - seen.others.bytes;
  const limit = Math.max(0, Math.min(deps.maxAttachBytes, room));
  let staged;
  try {
    staged = await stageForDraft(deps, identity, id, UPLOAD_TEXTS, () => stageFile(dir, filename, part.stream, limit));
  } catch (err) {
    if (err instanceof SizeLimitError) throw tooLarge(limit === deps.maxAttachBytes ? ATTACH_TOO_LARGE : TOTAL_TOO_LARGE);
    throw err;
  }

  const size = staged.size;
  await writeWithRow("attach", staged, (path) => releaseFile(deps, id, path), (place) =>
    beginKnown(deps.sql, async (tx) => {
      // After the whole part is staged (its hash is part of the key's fingerprint), before place().
      await once?.claim(tx);
      requireOwnedDraft(await lockMessage(tx, id, identity), UPLOAD_TEXTS);
      const others = await attachmentTotals(tx, id, filename);
      if (others.count >= MAX_ATTACHMENTS) throw invalid(`a message holds at most ${MAX_ATTACHMENTS} attachments`);
      if ((await bodySize(tx, id)) + others.bytes + size > deps.maxMsgBytes) throw tooLarge(TOTAL_TOO_LARGE);
      const old = await findAttachment(tx, id, filename);
      const filepath = await place(old?.filepath ?? null);
      const row = { type, filename, size, filepath };
      if (old) {
        // Same name (case-insensitively): the new upload takes the old one's place in the list.
        await replaceAttachment(tx, id, old.filename, row);
      } else {
        await insertAttachment(tx, id, { ...row, position: await nextAttachmentPosition(tx, id) });
      }
      await once?.record(tx, { filename, size });
    }),
    mayHaveCommitted,
  );
  return { filename, size };
}

export async function removeAttachment(deps: MessageDeps, identity: string, id: number, filename: string): Promise<void> {
  requireOwnedDraft(await findMessageHead(deps.sql, id, identity), DELETE_TEXTS);
  const gone = await beginKnown(deps.sql, async (tx) => {
    requireOwnedDraft(await lockMessage(tx, id, identity), DELETE_TEXTS);
    const found = await findAttachment(tx, id, filename);
    if (!found) throw notFound("attachment not found");
    return deleteAttachment(tx, id, found.filename);
  });
  // The row is gone and committed: nothing points to the file any more, until an upload of the same
  // name places its file at the same path (releaseFile checks under the lock).
  crashPoint("detach", "committed");
  if (gone) await releaseFile(deps, id, gone.filepath);
}
