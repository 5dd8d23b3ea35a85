// Add-to: a new batch on a sent message (with its notify rows), or more addresses for a draft's pending batch.
import { sameAddress } from "../domain/address.ts";
import { lockMessage, participation } from "../db/messages.ts";
import {
  existingRecipients,
  insertBatch,
  insertBatchRecipients,
  insertNotifyRows,
  pendingBatch,
} from "../db/drafts.ts";
import { resolveLocalRecipients } from "../delivery/local-delivery.ts";
import { ApiError } from "../http/errors.ts";
import { MAX_RECIPIENTS } from "../http/message-input.ts";
import { notFound } from "./access.ts";
import type { MessageDeps } from "./context.ts";

const NOT_PARTICIPANT = "only existing participants may add recipients";

export async function addRecipients(deps: MessageDeps, identity: string, id: number, addresses: string[]): Promise<number> {
  const sent = await deps.sql.begin(async (tx) => {
    // Locking the message serialises add-tos, so the duplicate check below cannot be raced.
    const head = await lockMessage(tx, id);
    if (!head) throw notFound();
    const owner = sameAddress(head.from_addr, identity);
    // A draft exists only for its owner; on a sent message its `to` recipients may add too.
    const allowed = owner || (head.time_sent !== null && (await participation(tx, id, identity)).to);
    if (!allowed) throw new ApiError(403, NOT_PARTICIPANT);
    const already = await existingRecipients(tx, id, addresses);
    if (already.length > 0) throw new ApiError(400, `duplicate recipient: ${already[0]}`);

    if (head.time_sent === null) {
      const pending = await pendingBatch(tx, id);
      if ((pending?.count ?? 0) + addresses.length > MAX_RECIPIENTS) {
        throw new ApiError(400, `add_to list must hold at most ${MAX_RECIPIENTS} addresses`);
      }
      const batch = pending?.id ?? (await insertBatch(tx, id, head.from_addr, null));
      await insertBatchRecipients(tx, id, batch, addresses);
      return false;
    }
    const batch = await insertBatch(tx, id, identity, null);
    await insertBatchRecipients(tx, id, batch, addresses);
    await insertNotifyRows(tx, id, batch, deps.domain);
    return true;
  });
  if (sent) {
    deps.announce?.(addresses);
    await resolveLocalRecipients(deps, id);
  }
  return addresses.length;
}
