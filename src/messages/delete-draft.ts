// Deleting a draft: rows in one transaction, then its folder once nothing points into it.
import { parseAddress } from "../domain/address.ts";
import { lockMessage } from "../db/messages.ts";
import { deleteDraftRows } from "../db/drafts.ts";
import { removeTree } from "../storage/atomic-file.ts";
import { messageDir } from "../storage/data-dir.ts";
import { requireOwnedDraft } from "./access.ts";
import type { MessageDeps } from "./context.ts";

const DELETE_TEXTS = { notOwner: "only the owner may delete a message", sent: "sent messages cannot be deleted" };

export async function deleteDraft(deps: MessageDeps, identity: string, id: number): Promise<void> {
  const from = await deps.sql.begin(async (tx) => {
    const head = requireOwnedDraft(await lockMessage(tx, id), identity, DELETE_TEXTS);
    await deleteDraftRows(tx, id);
    return head.from_addr;
  });
  const owner = parseAddress(from);
  if (owner) await removeTree(messageDir(deps.dataDir, owner, id));
}
