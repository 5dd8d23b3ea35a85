// Sending a draft: time_sent, the pending batch's time and notify rows, atomically; then local delivery.
import { lockMessage, recipientsOf } from "../db/messages.ts";
import { insertNotifyRows, markSent, stampBatches } from "../db/drafts.ts";
import { resolveLocalRecipients } from "../delivery/local-delivery.ts";
import { requireOwnedDraft } from "./access.ts";
import type { MessageDeps } from "./context.ts";

const SEND_TEXTS = { notOwner: "only the owner may send a message", sent: "message already sent", sentStatus: 409 as const };

export async function sendDraft(deps: MessageDeps, identity: string, id: number): Promise<number> {
  const time = await deps.sql.begin(async (tx) => {
    // The row lock makes the second of two concurrent sends see the first one's time_sent: 409.
    requireOwnedDraft(await lockMessage(tx, id, identity), SEND_TEXTS);
    const sentAt = await markSent(tx, id);
    if (sentAt === null) throw new Error("draft vanished under its row lock");
    for (const batch of await stampBatches(tx, id, sentAt)) await insertNotifyRows(tx, id, batch, deps.domain);
    return sentAt;
  });
  if (deps.announce) {
    // The send has committed: a failed look-up here must not turn it into an error for the client.
    // Waiters then find the mail at their timeout's end at worst (embedded mode only).
    const recipients = await recipientsOf(deps.sql, id).catch((err: unknown) => {
      deps.log({ level: "error", msg: "wake-up after send failed", id, error: String(err) });
      return [];
    });
    deps.announce(recipients);
  }
  await resolveLocalRecipients(deps, id);
  return time;
}
