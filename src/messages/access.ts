// Who may read, change, send or add to a message, as checks that throw the route's error.
import { conflict, forbidden, notFound } from "../domain/errors.ts";
import type { MessageHead } from "../db/messages.ts";

export const messageNotFound = () => notFound("message not found");

/** A route's texts for a write refused on a message that is not the caller's, or no longer a draft. */
export type DraftTexts = { notOwner: string; sent: string; sentIsConflict?: boolean };

/**
 * An owner-only write on a draft: 404, the route's owner text, then its sent-message text. Ownership
 * comes from the head's query (lower() in SQL), never from comparing addresses here.
 */
export function requireOwnedDraft(head: MessageHead | null, texts: DraftTexts): MessageHead {
  if (!head) throw messageNotFound();
  if (!head.is_owner) throw forbidden(texts.notOwner);
  if (head.time_sent !== null) throw texts.sentIsConflict ? conflict(texts.sent) : forbidden(texts.sent);
  return head;
}
