// Removing a message's file that its rows no longer use, safely against the next write of the same rows.
import { findMessageHead, lockFileUse } from "../db/messages.ts";
import { removeOwnFile, type StagedFile } from "../storage/atomic-file.ts";
import { StorageFailedError } from "../storage/errors.ts";
import { requireOwnedDraft, type DraftTexts } from "./access.ts";
import type { MessageDeps } from "./context.ts";

/**
 * Removes `path`, a file of message `id` that a committed write or delete stopped using, unless a
 * row of the message points at it again. That happens: a write alternates between two paths per
 * name (finalPathFor), so the next write of the same body or attachment, which takes the row lock
 * the moment this one commits, may place its new file at exactly this path. The check and the
 * removal run under that lock, so no write can place a file here between them. Best effort: the
 * write has committed, and a file left behind is removed by the start-up sweep.
 */
export async function releaseFile(deps: Pick<MessageDeps, "sql" | "dataDir">, id: number, path: string): Promise<void> {
  try {
    await deps.sql.begin(async (tx) => {
      if (!(await lockFileUse(tx, id, path))) await removeOwnFile(deps.dataDir, path);
    });
  } catch {
    // The database is away: the file stays for the sweep (a row pointing at it must never lose it).
  }
}

/**
 * Stages a file for draft `id`. Deleting the draft removes its folder, and a write staging into
 * it at that moment fails on the missing folder: such a failure is answered as what the draft has
 * become (404 when deleted; the route's text when sent meanwhile) rather than as a failed disk.
 */
export async function stageForDraft(
  deps: Pick<MessageDeps, "sql">,
  identity: string,
  id: number,
  texts: DraftTexts,
  stage: () => Promise<StagedFile>,
): Promise<StagedFile> {
  try {
    return await stage();
  } catch (err) {
    if (err instanceof StorageFailedError) {
      const head = await findMessageHead(deps.sql, id, identity).catch(() => undefined);
      if (head !== undefined) requireOwnedDraft(head, texts);
    }
    throw err;
  }
}
