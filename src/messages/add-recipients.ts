// Add-to: a new batch on a sent message (with its notify rows), or more addresses for a draft's pending batch.
import { participantsOf } from "../db/audience.ts";
import { addToCheck, lockMessage, participation } from "../db/messages.ts";
import { insertBatch, insertBatchRecipients, insertNotifyRows, pendingBatch } from "../db/drafts.ts";
import { beginKnown } from "../db/outcome.ts";
import { resolveLocalRecipients } from "../delivery/local-delivery.ts";
import { forbidden, invalid } from "../domain/errors.ts";
import { MAX_ADD_TO_TOTAL, MAX_RECIPIENTS } from "../domain/limits.ts";
import { messageNotFound } from "./access.ts";
import type { Once } from "./idempotency.ts";
import type { MessageDeps } from "./context.ts";

const NOT_PARTICIPANT = "only existing participants may add recipients";

/** `once` (an Idempotency-Key): claimed first, so a retry is answered before the duplicate checks refuse it. */
export async function addRecipients(deps: MessageDeps, identity: string, id: number, addresses: string[], once?: Once<number>): Promise<number> {
  const sent = await beginKnown(deps.sql, async (tx) => {
    await once?.claim(tx);
    // Locking the message serialises add-tos, so the duplicate and total checks below cannot be raced.
    const head = await lockMessage(tx, id, identity);
    if (!head) throw messageNotFound();
    // A draft exists only for its owner; on a sent message its `to` recipients may add too.
    const allowed = head.is_owner || (head.time_sent !== null && (await participation(tx, id, identity)).to);
    if (!allowed) throw forbidden(NOT_PARTICIPANT);
    // PostgreSQL's lower() decides what counts as the same address (docs/design/address-case.md).
    const { repeated, total } = await addToCheck(tx, id, addresses);
    if (repeated !== null) throw invalid(`duplicate recipient: ${repeated}`);
    if (total + addresses.length > MAX_ADD_TO_TOTAL) {
      throw invalid(`a message holds at most ${MAX_ADD_TO_TOTAL} add-to recipients`);
    }

    if (head.time_sent === null) {
      const pending = await pendingBatch(tx, id);
      if ((pending?.count ?? 0) + addresses.length > MAX_RECIPIENTS) {
        throw invalid(`add_to list must hold at most ${MAX_RECIPIENTS} addresses`);
      }
      const batch = pending?.id ?? (await insertBatch(tx, id, head.from_addr, null));
      await insertBatchRecipients(tx, id, batch, addresses);
      await once?.record(tx, addresses.length);
      return false;
    }
    const batch = await insertBatch(tx, id, identity, null);
    await insertBatchRecipients(tx, id, batch, addresses);
    await insertNotifyRows(tx, id, batch, deps.domain);
    await once?.record(tx, addresses.length);
    return true;
  });
  if (sent) {
    // As the recipients_added trigger does: the sender and every recipient, old and new, hear of it.
    await deps.wake({ kind: "recipients_added", msgId: id, addresses: () => participantsOf(deps.sql, id) });
    await resolveLocalRecipients(deps, id);
  }
  return addresses.length;
}
