// Sending a draft: time_sent, the pending batch's time and notify rows, atomically; then local delivery.
import { lockMessage, recipientsOf } from "../db/messages.ts";
import { insertNotifyRows, markSent, stampBatches } from "../db/drafts.ts";
import { resolveLocalRecipients } from "../delivery/local-delivery.ts";
import { crashPoint } from "../lib/crash-point.ts";
import { requireOwnedDraft } from "./access.ts";
import type { Once } from "./idempotency.ts";
import type { MessageDeps } from "./context.ts";

const SEND_TEXTS = { notOwner: "only the owner may send a message", sent: "message already sent", sentIsConflict: true };

/** `once` (an Idempotency-Key): claimed before the row lock, so a retry of a send gets its answer, not 409. */
export async function sendDraft(deps: MessageDeps, identity: string, id: number, once?: Once<number>): Promise<number> {
  const time = await deps.sql.begin(async (tx) => {
    await once?.claim(tx);
    // The row lock makes the second of two concurrent sends see the first one's time_sent: 409.
    requireOwnedDraft(await lockMessage(tx, id, identity), SEND_TEXTS);
    const sentAt = await markSent(tx, id);
    if (sentAt === null) throw new Error("draft vanished under its row lock");
    for (const batch of await stampBatches(tx, id, sentAt)) await insertNotifyRows(tx, id, batch, deps.domain);
    await once?.record(tx, sentAt);
    return sentAt;
  });
  crashPoint("send", "committed");
  // A look-up, not a list: it runs only where no trigger's NOTIFY reaches the waiters (embedded).
  await deps.wake({ kind: "new_msg", msgId: id, addresses: () => recipientsOf(deps.sql, id) });
  await resolveLocalRecipients(deps, id);
  return time;
}
