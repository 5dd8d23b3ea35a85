// Sending a draft: time_sent, the pending batch's time and notify rows, atomically; then local delivery.
import { findMessageHead, lockMessage, recipientsOf, type MessageHead } from "../db/messages.ts";
import { markSent } from "../db/drafts.ts";
import { mayHaveCommitted } from "../db/errors.ts";
import { askUntilAnswered, beginKnown } from "../db/outcome.ts";
import { resolveLocalRecipients } from "../delivery/local-delivery.ts";
import { crashPoint } from "../lib/crash-point.ts";
import { requireOwnedDraft } from "./access.ts";
import type { Once } from "./idempotency.ts";
import type { MessageDeps } from "./context.ts";

const SEND_TEXTS = { notOwner: "only the owner may send a message", sent: "message already sent", sentIsConflict: true };

/** `once` (an Idempotency-Key): claimed before the row lock, so a retry of a send gets its answer, not 409. */
export async function sendDraft(deps: MessageDeps, identity: string, id: number, once?: Once<number>): Promise<number> {
  const time = once ? await sendOnce(deps, identity, id, once) : await sendNow(deps, identity, id);
  crashPoint("send", "committed");
  // A look-up, not a list: it runs only where no trigger's NOTIFY reaches the waiters (embedded).
  await deps.wake({ kind: "new_msg", msgId: id, addresses: () => recipientsOf(deps.sql, id) });
  await resolveLocalRecipients(deps, id);
  return time;
}

/**
 * Without an Idempotency-Key the send is one statement on its own. When it matched nothing, a read
 * names why (404, 403, or 409: a concurrent send that committed first made this UPDATE wait for its
 * row lock and then match nothing, and the read after it sees the message sent).
 */
async function sendNow(deps: MessageDeps, identity: string, id: number): Promise<number> {
  let sent: Awaited<ReturnType<typeof markSent>>;
  try {
    sent = await markSent(deps.sql, id, identity, deps.domain);
  } catch (err) {
    // One statement, its answer lost with the connection: the message's time_sent tells.
    if (!mayHaveCommitted(err)) throw err;
    const time = await askUntilAnswered(async () => (await findMessageHead(deps.sql, id, identity))?.time_sent ?? null);
    if (time == null) throw err;
    return time;
  }
  return sent !== null ? sent.time : refused(await findMessageHead(deps.sql, id, identity));
}

/** The key is claimed before the row lock, and its answer recorded in the same transaction. */
function sendOnce(deps: MessageDeps, identity: string, id: number, once: Once<number>): Promise<number> {
  return beginKnown(deps.sql, async (tx) => {
    await once.claim(tx);
    const sent = await markSent(tx, id, identity, deps.domain);
    if (sent === null) return refused(await lockMessage(tx, id, identity));
    await once.record(tx, sent.time);
    return sent.time;
  });
}

/** Why a send matched nothing, from the message as it stands now: 404, 403 or 409. */
function refused(head: MessageHead | null): never {
  requireOwnedDraft(head, SEND_TEXTS);
  throw new Error("an owned draft was not sent");
}
