// Sending a draft: time_sent, the pending batch's time and notify rows, atomically; then local delivery.
import { lockMessage, recipientsOf } from "../db/messages.ts";
import { insertNotifyRows, markSent } from "../db/drafts.ts";
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
    // One statement in the usual case; when it matched nothing, the locked row says why (404, 403,
    // or 409 — the second of two concurrent sends waited for the first one's row lock).
    const sent = await markSent(tx, id, identity);
    if (sent === null) {
      requireOwnedDraft(await lockMessage(tx, id, identity), SEND_TEXTS);
      throw new Error("an owned draft was not sent");
    }
    for (const batch of sent.batches) await insertNotifyRows(tx, id, batch, deps.domain);
    await once?.record(tx, sent.time);
    return sent.time;
  });
  crashPoint("send", "committed");
  // A look-up, not a list: it runs only where no trigger's NOTIFY reaches the waiters (embedded).
  await deps.wake({ kind: "new_msg", msgId: id, addresses: () => recipientsOf(deps.sql, id) });
  await resolveLocalRecipients(deps, id);
  return time;
}
