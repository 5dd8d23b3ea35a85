// Deleting a draft: rows in one transaction, then its folder once nothing points into it.
import { lstat } from "node:fs/promises";
import { crashPoint } from "../lib/crash-point.ts";
import { lockMessage } from "../db/messages.ts";
import { deleteDraftRows } from "../db/drafts.ts";
import { beginKnown } from "../db/outcome.ts";
import { removeTree } from "../storage/atomic-file.ts";
import { folderOfDraft } from "../storage/data-dir.ts";
import { requireOwnedDraft } from "./access.ts";
import type { MessageDeps } from "./context.ts";

const DELETE_TEXTS = { notOwner: "only the owner may delete a message", sent: "sent messages cannot be deleted" };

export async function deleteDraft(deps: MessageDeps, identity: string, id: number): Promise<void> {
  const gone = await beginKnown(deps.sql, async (tx) => {
    const head = requireOwnedDraft(await lockMessage(tx, id, identity), DELETE_TEXTS);
    await deleteDraftRows(tx, id);
    return head;
  });
  // Committed: no row points into the folder any more (a crash here leaves it to the start-up sweep).
  crashPoint("delete", "committed");
  const dir = folderOfDraft(deps.dataDir, id, gone);
  if (!dir) return;
  // An upload or edit that started before the delete may still create a temp file in the folder
  // while it is being removed (it finds no row afterwards and removes its own file and folders).
  // The folder then cannot go, and rm does not always say so (Bun 1.4.5 with force): look, and
  // remove again.
  for (let attempt = 1; attempt <= 3; attempt++) {
    await removeTree(dir).catch(() => {});
    if ((await lstat(dir).catch(() => null)) === null) return;
  }
}
